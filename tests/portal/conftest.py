"""Fixtures for the foundation's own tests."""

from __future__ import annotations

import pytest

from portal import navigation


@pytest.fixture(autouse=True)
def shell_only(monkeypatch):
    """The page shell without other apps' panels and menus.

    These tests prove the foundation; each app's tests cover its own panels. It
    also keeps query counts pinned to the shell alone.
    """
    monkeypatch.setattr(navigation, "CLIENT_PANELS", [])
    monkeypatch.setattr(navigation, "STAFF_PANELS", [])
    monkeypatch.setattr(navigation, "CLIENT_NAV", [i for i in navigation.CLIENT_NAV if ":" not in i.url_name])
    monkeypatch.setattr(navigation, "STAFF_NAV", [i for i in navigation.STAFF_NAV if ":" not in i.url_name])


@pytest.fixture
def auth_throttle(monkeypatch):
    """Set the rate of the ``auth`` throttle scope (DRF reads it once, at import)."""
    from rest_framework.throttling import ScopedRateThrottle

    def set_rate(rate: str) -> None:
        monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "auth": rate})

    set_rate("1000/min")
    return set_rate


def password_sign_in(client, user, password: str = "Correct-Horse-42!"):
    """The first stage of allauth's real sign-in: email and password."""
    return client.post("/accounts/login/", {"login": user.email, "password": password})


def mfa_verified(client):
    """Nothing to do: ``force_login`` stands for a completed sign-in, second factor included
    (tests/conftest.py); kept as a marker where a test depends on it."""
    return client
