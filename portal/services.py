"""Writes for people and roles."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

from .audit import SYSTEM, audit_log
from .models import User
from .permissions import ADMIN_SITE_ROLES, ROLE_PERMISSIONS, Role, role_permission_keys


@transaction.atomic
def roles_sync() -> None:
    """Create the role groups and give each exactly the permissions in its role table. Safe to rerun."""
    for role in ROLE_PERMISSIONS:
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = Q(pk__in=[])
        by_app: dict[str, list[str]] = {}
        for app_label, codename in role_permission_keys(role):
            by_app.setdefault(app_label, []).append(codename)
        for app_label, codenames in by_app.items():
            wanted |= Q(content_type__app_label=app_label, codename__in=codenames)
        group.permissions.set(Permission.objects.filter(wanted))


@transaction.atomic
def user_assign_role(*, user: User, role: Role, actor=SYSTEM) -> User:
    """Give ``user`` exactly one role. Staff roles and client roles never mix."""
    before = sorted(user.groups.values_list("name", flat=True))
    group, _ = Group.objects.get_or_create(name=role.value)
    user.groups.set([group])
    user.is_staff = role in ADMIN_SITE_ROLES
    user.save(update_fields=["is_staff"])
    if hasattr(user, "_role_names"):
        del user._role_names
    audit_log(
        actor=actor,
        action="user.role_assigned",
        obj=user,
        before={"roles": before},
        after={"roles": [role.value], "is_staff": user.is_staff},
    )
    return user


@transaction.atomic
def user_add_role(*, user: User, role: Role, actor=SYSTEM) -> User:
    """Add a role, e.g. a member of staff who is also a client of the firm."""
    before = sorted(user.groups.values_list("name", flat=True))
    group, _ = Group.objects.get_or_create(name=role.value)
    user.groups.add(group)
    user.is_staff = user.is_staff or role in ADMIN_SITE_ROLES
    user.save(update_fields=["is_staff"])
    if hasattr(user, "_role_names"):
        del user._role_names
    audit_log(actor=actor, action="user.role_added", obj=user, before={"roles": before}, after={"roles": sorted({*before, role.value})})
    return user


@transaction.atomic
def user_create(
    *,
    email: str,
    password: str | None,
    role: Role,
    full_name: str = "",
    preferred_language: str = "en",
    authority_limit: Decimal | None = None,
    actor=SYSTEM,
) -> User:
    from django.conf import settings

    user = User.objects.create_user(
        email=email,
        password=password,
        full_name=full_name,
        preferred_language=preferred_language,
        authority_limit=authority_limit if authority_limit is not None else settings.DEFAULT_OFFICER_AUTHORITY_LIMIT,
    )
    audit_log(actor=actor, action="user.created", obj=user, after={"email": user.email, "full_name": full_name})
    user_assign_role(user=user, role=role, actor=actor)
    return user


@transaction.atomic
def user_set_language(*, user: User, language: str) -> User:
    if user.preferred_language != language:
        user.preferred_language = language
        user.save(update_fields=["preferred_language"])
    return user


@transaction.atomic
def periodic_job_set_enabled(*, name: str, enabled: bool, actor) -> None:
    """Pause or resume a periodic job (django-celery-beat picks the change up within seconds). Audited."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.select_for_update().get(name=name)
    if task.enabled == enabled:
        return
    task.enabled = enabled
    task.save(update_fields=["enabled"])
    audit_log(
        actor=actor,
        action="periodic_job.resumed" if enabled else "periodic_job.paused",
        obj=task,
        before={"enabled": not enabled},
        after={"enabled": enabled},
    )
