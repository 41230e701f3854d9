"""API authentication: sessions for everyone, tokens for clients only."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


class ClientTokenAuthentication(TokenAuthentication):
    """API tokens authenticate clients only; staff ride on an MFA-verified browser session.

    A token that belongs to a member of staff (e.g. one made in the token admin, or
    issued before the person became staff) is refused, never treated as a sign-in.
    """

    def authenticate_credentials(self, key):
        from .adapters import email_confirmed
        from .mfa import requires_mfa

        user, token = super().authenticate_credentials(key)
        if requires_mfa(user):
            raise exceptions.AuthenticationFailed(_("Staff use the web sign-in with multi-factor authentication."))
        if not email_confirmed(user):
            raise exceptions.AuthenticationFailed(_("Confirm your email address first: open the link we sent you."))
        return user, token
