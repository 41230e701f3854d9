"""Staff creation, role grants and removals, authority limits and MFA resets done in the Django admin
go through the audited services: one audit row per change, by the administrator, in the same transaction."""

from __future__ import annotations

from decimal import Decimal

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import Group

from portal.models import AuditEvent, User
from tests.helpers import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _change_form(user, **overrides):
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "preferred_language": user.preferred_language,
        "authority_limit": str(user.authority_limit),
        "is_active": "on" if user.is_active else "",
        "roles": sorted(user.role_names),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def _events(user, action):
    return list(AuditEvent.objects.filter(object_type="portal.user", object_id=str(user.pk), action=action))


def test_staff_created_in_the_admin_are_audited(admin_client, admin_user):
    response = admin_client.post(
        "/admin/portal/user/add/",
        {"email": "Nora@Example.com", "full_name": "Nora Officer", "role": "account_officer", "authority_limit": "2000000",
         "password1": "Sturdy-Passphrase-77", "password2": "Sturdy-Passphrase-77"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    nora = User.objects.get(email="nora@example.com")
    assert nora.role_names == {"account_officer"} and nora.authority_limit == Decimal("2000000.00")
    [created] = _events(nora, "user.created")
    assert created.actor == admin_user
    assert created.after == {"email": "nora@example.com", "full_name": "Nora Officer", "authority_limit": "2000000.00"}
    [role] = _events(nora, "user.role_assigned")
    assert role.actor == admin_user and role.after["roles"] == ["account_officer"]


def test_a_role_grant_and_removal_in_the_admin_is_one_audit_row(admin_client, admin_user, officer):
    response = admin_client.post(f"/admin/portal/user/{officer.pk}/change/", _change_form(officer, roles=["credit_manager", "client"]))
    assert response.status_code == 302
    officer = User.objects.get(pk=officer.pk)
    assert officer.role_names == {"credit_manager", "client"}
    [event] = _events(officer, "user.roles_changed")
    assert event.actor == admin_user
    assert event.before == {"roles": ["account_officer"], "is_staff": False}
    assert event.after["granted"] == ["client", "credit_manager"] and event.after["removed"] == ["account_officer"]
    assert AuditEvent.objects.filter(object_id=str(officer.pk), action__startswith="user.").exclude(action__in=["user.created", "user.role_assigned"]).count() == 1


def test_an_authority_limit_change_in_the_admin_is_audited(admin_client, officer):
    admin_client.post(f"/admin/portal/user/{officer.pk}/change/", _change_form(officer, authority_limit="7500000.00"))
    assert User.objects.get(pk=officer.pk).authority_limit == Decimal("7500000.00")
    [event] = _events(officer, "user.authority_limit_changed")
    assert (event.before, event.after) == ({"authority_limit": "5000000.00"}, {"authority_limit": "7500000.00"})


def test_saving_without_changes_writes_nothing(admin_client, officer):
    before = AuditEvent.objects.count()
    admin_client.post(f"/admin/portal/user/{officer.pk}/change/", _change_form(officer))
    assert AuditEvent.objects.count() == before


def test_raw_groups_superuser_and_permissions_cannot_be_posted(admin_client, officer):
    admin_group = Group.objects.get(name="admin")
    admin_client.post(
        f"/admin/portal/user/{officer.pk}/change/",
        {**_change_form(officer), "groups": [admin_group.pk], "is_superuser": "on", "is_staff": "on", "user_permissions": [1]},
    )
    officer = User.objects.get(pk=officer.pk)
    assert officer.role_names == {"account_officer"} and not officer.is_superuser and not officer.is_staff
    assert not officer.user_permissions.exists()


def test_an_mfa_reset_in_the_admin_is_audited_and_the_user_must_enrol_again(admin_client, admin_user, officer, client):
    assert Authenticator.objects.filter(user=officer).exists()
    response = admin_client.post("/admin/portal/user/", {"action": "reset_mfa", "_selected_action": [officer.pk]})
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=officer).exists()
    [event] = _events(officer, "user.mfa_reset")
    assert event.actor == admin_user and event.before == {"authenticators": ["totp"]}


def test_an_administrator_cannot_change_their_own_roles_or_limit(admin_client, admin_user):
    response = admin_client.post(f"/admin/portal/user/{admin_user.pk}/change/", _change_form(admin_user, roles=["admin", "credit_manager"], authority_limit="99999999"))
    assert response.status_code == 200
    assert "Another administrator must change your own roles." in response.content.decode()
    admin_user = User.objects.get(pk=admin_user.pk)
    assert admin_user.role_names == {"admin"} and admin_user.authority_limit == Decimal("5000000.00")
    assert not _events(admin_user, "user.roles_changed")


def test_the_services_refuse_someone_who_does_not_administer_users(officer, credit_manager):
    from portal.errors import ForbiddenError
    from portal.services import user_mfa_reset, user_set_authority_limit, user_set_roles

    with pytest.raises(ForbiddenError):
        user_set_roles(user=credit_manager, roles={"admin"}, actor=officer)
    with pytest.raises(ForbiddenError):
        user_set_authority_limit(user=credit_manager, limit=Decimal("1"), actor=officer)
    with pytest.raises(ForbiddenError):
        user_mfa_reset(user=credit_manager, actor=officer)


def test_authenticators_and_tokens_have_no_raw_admin(client):
    root = make_user("admin", email="root@example.com")
    User.objects.filter(pk=root.pk).update(is_superuser=True)
    client.force_login(User.objects.get(pk=root.pk))
    assert client.get("/admin/mfa/authenticator/").status_code == 404
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404


def test_a_password_set_in_the_admin_is_audited_without_the_password(admin_client, admin_user, officer):
    response = admin_client.post(
        f"/admin/portal/user/{officer.pk}/password/",
        {"password1": "Another-Sturdy-Phrase-88", "password2": "Another-Sturdy-Phrase-88", "set_usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    officer = User.objects.get(pk=officer.pk)
    assert officer.check_password("Another-Sturdy-Phrase-88")
    [event] = _events(officer, "user.password_set")
    assert event.actor == admin_user
    assert "Another-Sturdy-Phrase-88" not in str(event.before) + str(event.after)


def test_an_administrator_cannot_set_their_own_password_in_the_admin(admin_client, admin_user):
    response = admin_client.post(
        f"/admin/portal/user/{admin_user.pk}/password/",
        {"password1": "Another-Sturdy-Phrase-88", "password2": "Another-Sturdy-Phrase-88", "set_usable_password": "true"},
    )
    assert response.status_code == 200
    assert not User.objects.get(pk=admin_user.pk).check_password("Another-Sturdy-Phrase-88")
    assert not _events(admin_user, "user.password_set")


def test_a_password_the_user_changes_is_audited(client, alice):
    client.force_login(alice)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": "Correct-Horse-42!", "password1": "Brand-New-Secret-99", "password2": "Brand-New-Secret-99"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert User.objects.get(pk=alice.pk).check_password("Brand-New-Secret-99")
    [event] = _events(alice, "user.password_changed")
    assert event.actor == alice and "Brand-New-Secret-99" not in str(event.after)
