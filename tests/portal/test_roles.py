"""Each role holds exactly its declared permissions: the named ones in portal.permissions and the
admin-site model actions, nothing matched by a codename pattern."""

from __future__ import annotations

import pytest
from django.apps import apps

from portal.permissions import ADMIN_APPS, READ_ONLY_ADMIN_APPS, ROLE_MODEL_ACTIONS, ROLE_PERMISSIONS, Perm, Role
from tests.helpers import make_user

pytestmark = pytest.mark.django_db


def _expected(role: Role) -> set[str]:
    expected = {str(p) for p in ROLE_PERMISSIONS[role]}
    for app_label in ADMIN_APPS + READ_ONLY_ADMIN_APPS:
        actions = ROLE_MODEL_ACTIONS.get(role, ())
        if app_label in READ_ONLY_ADMIN_APPS:
            actions = [a for a in actions if a == "view"]
        for model in apps.get_app_config(app_label).get_models():
            expected |= {f"{model._meta.app_label}.{a}_{model._meta.model_name}" for a in actions}
    return expected


@pytest.mark.parametrize("role", list(Role))
def test_every_role_holds_exactly_its_declared_permissions(role):
    user = make_user(role.value, email=f"{role.value}@example.com")
    assert user.get_all_permissions() == _expected(role)


def test_an_admin_does_not_hold_the_risk_board_permission():
    admin = make_user("admin", email="a@example.com")
    assert not admin.has_perm(Perm.RISK_VIEW)
    assert not admin.has_perm(Perm.STRESS_TEST_RUN)


def test_nobody_may_edit_role_groups_or_permissions_in_the_admin():
    admin = make_user("admin", email="a@example.com")
    assert admin.has_perm("auth.view_group")
    assert not admin.has_perm("auth.change_group") and not admin.has_perm("auth.add_permission")


def test_roles_sync_removes_a_permission_someone_added_by_hand():
    from django.contrib.auth.models import Group, Permission

    from portal.services import roles_sync

    group = Group.objects.get(name=Role.ADMIN.value)
    group.permissions.add(Permission.objects.get(codename=Perm.RISK_VIEW.codename))
    roles_sync()
    assert not group.permissions.filter(codename=Perm.RISK_VIEW.codename).exists()
