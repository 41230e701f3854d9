"""Writes for people and roles."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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
    user.forget_roles()
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
    user.forget_roles()
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

    _ensure_user_admin(actor)
    user = User.objects.create_user(
        email=email,
        password=password,
        full_name=full_name,
        preferred_language=preferred_language,
        authority_limit=Decimal(authority_limit if authority_limit is not None else settings.DEFAULT_OFFICER_AUTHORITY_LIMIT).quantize(Decimal("0.01")),
    )
    audit_log(
        actor=actor,
        action="user.created",
        obj=user,
        after={"email": user.email, "full_name": full_name, "authority_limit": user.authority_limit},
    )
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

    task = PeriodicTask.objects.select_for_update(no_key=True).get(name=name)
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


# --- staff administration (the Django admin's user pages call these) ------------------


def _ensure_user_admin(actor, user: User | None = None) -> None:
    """Only someone who administers users changes them, and never their own roles, limit or MFA."""
    from .errors import ForbiddenError

    if actor is SYSTEM:
        return
    if not (actor is not None and actor.is_authenticated and actor.has_perm("portal.change_user")):
        raise ForbiddenError("permission_denied", _("You do not have permission to do this."))
    if user is not None and user.pk is not None and actor.pk == user.pk:
        raise ForbiddenError("own_record", _("Another administrator must change your own roles, authority limit or sign-in factors."))


@transaction.atomic
def user_password_set(*, user: User, password: str, actor) -> User:
    """An administrator sets another user's password (their own goes through the password page,
    which asks for the current one). Audited without the password."""
    _ensure_user_admin(actor, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_log(actor=actor, action="user.password_set", obj=user)
    return user


def user_password_changed_record(*, user: User, how: str) -> None:
    """Audit a password the user changed or reset themselves (allauth's flows do the change)."""
    audit_log(actor=user, action=f"user.password_{how}", obj=user)


def _role_names(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


@transaction.atomic
def user_set_roles(*, user: User, roles: set[Role] | frozenset[Role], actor) -> User:
    """Give ``user`` exactly ``roles`` (e.g. a member of staff who is also a client). Audited: before and after."""
    from .errors import PortalError

    _ensure_user_admin(actor, user)
    roles = {Role(r) for r in roles}
    if not roles:
        raise PortalError("no_role", _("A user needs at least one role; deactivate the account instead."))
    before = _role_names(user)
    after = sorted(r.value for r in roles)
    if before == after:
        return user
    groups = [Group.objects.get_or_create(name=name)[0] for name in after]
    user.groups.set(groups)
    was_staff = user.is_staff
    user.is_staff = bool(roles & ADMIN_SITE_ROLES)
    user.save(update_fields=["is_staff"])
    user.forget_roles()
    audit_log(
        actor=actor,
        action="user.roles_changed",
        obj=user,
        before={"roles": before, "is_staff": was_staff},
        after={"roles": after, "is_staff": user.is_staff, "granted": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after))},
    )
    return user


@transaction.atomic
def user_set_authority_limit(*, user: User, limit: Decimal, actor) -> User:
    """The largest facility an officer may approve alone. Audited."""
    from .errors import PortalError

    _ensure_user_admin(actor, user)
    limit = Decimal(limit).quantize(Decimal("0.01"))
    if limit < 0 or limit >= Decimal("1e14"):
        raise PortalError("invalid_limit", _("An authority limit is an amount from HK$0 up to HK$99,999,999,999,999.99."))
    before = user.authority_limit
    if before == limit:
        return user
    user.authority_limit = limit
    user.save(update_fields=["authority_limit"])
    audit_log(actor=actor, action="user.authority_limit_changed", obj=user, before={"authority_limit": before}, after={"authority_limit": limit})
    return user


PROFILE_FIELDS = ("email", "full_name", "preferred_language", "is_active")


@transaction.atomic
def user_update(*, user: User, actor, **changes) -> User:
    """Change a user's email, name, language or active flag from the admin. Audited with before and after."""
    from .audit import snapshot

    _ensure_user_admin(actor)
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"user_update cannot change {sorted(unknown)}")
    current = User.objects.select_for_update(no_key=True).get(pk=user.pk)
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return user
    if "is_active" in changed and user.pk == getattr(actor, "pk", None):
        from .errors import ForbiddenError

        raise ForbiddenError("own_record", _("Another administrator must deactivate your account."))
    before = snapshot(current, changed)
    for name in changed:
        setattr(user, name, changes[name])
    if "email" in changed:
        user.email = User.objects.normalize_email(user.email).lower()
    user.save(update_fields=changed)
    audit_log(actor=actor, action="user.updated", obj=user, before=before, after=snapshot(user, changed))
    return user


@transaction.atomic
def user_mfa_reset(*, user: User, actor) -> int:
    """Remove the user's authenticators (TOTP and recovery codes), e.g. after a lost phone. Staff must
    enrol again before they reach any staff page. Audited; returns how many were removed."""
    from allauth.mfa.models import Authenticator

    _ensure_user_admin(actor, user)
    authenticators = list(Authenticator.objects.select_for_update(no_key=True).filter(user=user).values_list("type", flat=True))
    Authenticator.objects.filter(user=user).delete()
    user._has_mfa = False
    audit_log(actor=actor, action="user.mfa_reset", obj=user, before={"authenticators": sorted(authenticators)}, after={"authenticators": []})
    return len(authenticators)
