"""Deployment checks the portal adds to ``manage.py check --deploy``."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def trusted_proxies_named(app_configs, **kwargs):
    if settings.BEHIND_PROXY and not settings.TRUSTED_PROXIES:
        return [
            Warning(
                "BEHIND_TLS_PROXY is on but TRUSTED_PROXIES names no proxy.",
                hint="Set TRUSTED_PROXIES to the proxy's address or network: until then audit rows carry the "
                "proxy's address and sign-in lock-out counts failures per account only.",
                id="portal.W001",
            )
        ]
    return []
