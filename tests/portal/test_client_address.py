"""The client's address comes from the trusted proxy hop only, is always a valid IP or nothing, and a
header never fails a write. Lock-out is per account, and per address only where it is the client's own."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from portal.context import client_address
from portal.models import AuditEvent
from tests.helpers import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "Correct-Horse-42!"


def _address(xff=None, remote="10.0.0.1"):
    meta = {"REMOTE_ADDR": remote}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    return client_address(RequestFactory().get("/", **meta))


def _sign_up(client, email, **headers):
    return client.post("/accounts/signup/", {"email": email, "password1": "Sturdy-Passphrase-77", "password2": "Sturdy-Passphrase-77"}, **headers)


def test_a_malformed_forwarded_for_never_fails_an_audited_write(client):
    response = _sign_up(client, "dora@example.com", HTTP_X_FORWARDED_FOR="not-an-ip", REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="user.role_assigned").ip_address == "192.0.2.10"


def test_a_client_written_forwarded_for_is_ignored_without_a_trusted_proxy(client):
    _sign_up(client, "dora@example.com", HTTP_X_FORWARDED_FOR="6.6.6.6", REMOTE_ADDR="192.0.2.10")
    assert AuditEvent.objects.get(action="user.role_assigned").ip_address == "192.0.2.10"


def test_behind_a_trusted_proxy_the_audit_trail_records_the_hop_it_wrote(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    _sign_up(client, "dora@example.com", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.9", REMOTE_ADDR="10.0.0.1")
    assert AuditEvent.objects.get(action="user.role_assigned").ip_address == "198.51.100.9"


@pytest.mark.parametrize(
    ("proxies", "xff", "remote", "expected"),
    [
        ([], "6.6.6.6", "192.0.2.10", ("192.0.2.10", True)),  # no proxy named: the peer is the client
        (["10.0.0.1"], "6.6.6.6, 198.51.100.9", "10.0.0.1", ("198.51.100.9", True)),  # left-most is the client's claim
        (["10.0.0.0/8"], "198.51.100.9, 10.0.0.2", "10.0.0.1", ("198.51.100.9", True)),  # two proxies deep
        (["10.0.0.1"], "198.51.100.9, not-an-ip", "10.0.0.1", ("10.0.0.1", False)),  # garbage where the proxy writes
        (["10.0.0.1"], None, "10.0.0.1", ("10.0.0.1", False)),  # the proxy forwarded nothing
        (["10.0.0.1"], "2001:db8::7", "10.0.0.1", ("2001:db8::7", True)),
        (["10.0.0.1"], "198.51.100.9", "192.0.2.99", ("192.0.2.99", True)),  # not from the proxy: header ignored
        ([], None, "", (None, False)),
    ],
)
def test_client_address(settings, proxies, xff, remote, expected):
    settings.TRUSTED_PROXIES = proxies
    address = _address(xff, remote)
    assert (address.ip, address.trusted) == expected


def test_behind_an_unnamed_proxy_the_address_is_not_trusted(settings):
    settings.BEHIND_PROXY = True
    assert _address("198.51.100.9", "10.0.0.1").trusted is False


def _fail(client, email, **meta):
    client.post("/accounts/login/", {"login": email, "password": "not-the-password"}, **meta)


def _signed_in(client, user, **meta) -> bool:
    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD}, **meta)
    ok = client.session.get("_auth_user_id") == str(user.pk)
    client.logout()
    return ok


def test_behind_a_proxy_failures_by_others_lock_nobody_else_out(client, settings, alice):
    settings.BEHIND_PROXY = True  # every request arrives from the proxy's address
    for n in range(6):
        _fail(client, f"guess{n}@example.com", REMOTE_ADDR="10.0.0.1")
    assert _signed_in(client, alice, REMOTE_ADDR="10.0.0.1")


def test_the_guessed_account_is_locked_behind_a_proxy(client, settings, alice):
    settings.BEHIND_PROXY = True
    for _ in range(5):
        _fail(client, alice.email, REMOTE_ADDR="10.0.0.1")
    assert not _signed_in(client, alice, REMOTE_ADDR="10.0.0.1")


def test_a_real_client_address_that_guesses_many_accounts_is_locked(client, settings, alice):
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    for n in range(5):
        _fail(client, f"guess{n}@example.com", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert not _signed_in(client, alice, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert _signed_in(client, make_user("client", email="eve@example.com"), REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")


def test_deploy_check_warns_when_the_proxy_is_not_named(settings):
    from portal.checks import trusted_proxies_named

    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXIES = []
    assert [w.id for w in trusted_proxies_named(None)] == ["portal.W001"]
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    assert trusted_proxies_named(None) == []
