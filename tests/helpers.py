"""Helpers the whole suite shares."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection


def make_user(role: str, *, email: str, full_name: str = "", mfa: bool | None = None, password: str = "Correct-Horse-42!", language: str = "en", authority_limit: Decimal | None = None):
    """A verified user with ``role``; staff get a TOTP authenticator unless ``mfa=False``."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from portal.permissions import STAFF_ROLES, Role
    from portal.services import user_create

    role = Role(role)
    user = user_create(email=email, password=password, role=role, full_name=full_name, preferred_language=language, authority_limit=authority_limit)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    if mfa is None:
        mfa = role in STAFF_ROLES
    if mfa:
        secret = generate_totp_secret()
        TOTP.activate(user, secret)
        user.totp_secret = secret
    return user


def totp_code(secret: str, *, margin: float = 10.0) -> str:
    """The current TOTP code, taken early enough in its 30-second window to still be valid when
    the server checks it (allauth accepts only the current window), even on a loaded machine."""
    import time

    from allauth.mfa import app_settings

    from portal.demo import current_totp

    period = app_settings.TOTP_PERIOD
    left = period - (time.time() % period)
    if left < margin:
        time.sleep(left + 0.05)
    return current_totp(secret)


def _need(available: bool, what: str) -> None:
    if available:
        return
    if settings.REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (PORTAL_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


def need_postgres() -> None:
    _need(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL)")


def need_redis() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    ok = url.startswith("redis://")
    if ok:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except redis.RedisError:
            ok = False
    _need(ok, "Redis broker (set CELERY_BROKER_URL=redis://…)")
    return url


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    _need(bool(path), "Debian's chromium")
    return path


PASSWORD = "Correct-Horse-42!"


def browser_sign_in(page, user, *, password: str = PASSWORD) -> None:
    """Sign in through the real allauth pages, answering the TOTP step for staff."""
    page.goto("/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", password)
    page.click("main form button[type=submit]")  # not the header's language or sign-out buttons
    secret = getattr(user, "totp_secret", None)
    if secret:
        page.wait_for_selector("input[name=code]")
        page.fill("input[name=code]", totp_code(secret))
        page.click("main form button[type=submit]")  # not the header's language or sign-out buttons
    page.wait_for_load_state("networkidle")
