from __future__ import annotations

from allauth.mfa.models import Authenticator


def user_has_mfa(user) -> bool:
    """Whether ``user`` has an active TOTP authenticator (recovery codes alone don't count)."""
    cached = getattr(user, "_has_mfa", None)
    if cached is None:
        cached = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        user._has_mfa = cached
    return cached
