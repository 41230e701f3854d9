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
