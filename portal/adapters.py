from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from .permissions import Role


class PortalAccountAdapter(DefaultAccountAdapter):
    """Self sign-up creates clients only; staff accounts are made by an administrator."""

    def save_user(self, request, user, form, commit=True):
        from .services import user_assign_role

        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_assign_role(user=user, role=Role.CLIENT, actor=user)
        return user


def email_confirmed(user) -> bool:
    """Whether ``user`` may sign in as far as email confirmation goes: the one rule the web
    sign-in (allauth, ``ACCOUNT_EMAIL_VERIFICATION``) and the token API share."""
    from allauth.account import app_settings
    from allauth.account.utils import has_verified_email

    if app_settings.EMAIL_VERIFICATION != app_settings.EmailVerificationMethod.MANDATORY:
        return True
    return has_verified_email(user, user.email)


def axes_username(request, credentials=None) -> str | None:
    """The sign-in email that django-axes counts failures against.

    allauth authenticates with ``{"email": ..., "password": ...}`` and the token
    API with ``login``/``email``; without this axes found no username and counted
    every failure against ``None``, so five failures on any accounts locked
    everyone out.
    """
    credentials = credentials or {}
    value = credentials.get("login") or credentials.get("email") or credentials.get("username")
    if not value:
        value = request.POST.get("login") or request.POST.get("email")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None
