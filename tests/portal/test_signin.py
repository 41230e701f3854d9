"""Sign-in as people really do it: allauth's pages, the TOTP stage, lock-out, sign-up, reset."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from portal.models import AuditEvent, User
from tests.helpers import PASSWORD, make_user, totp_code
from tests.portal.conftest import password_sign_in

pytestmark = pytest.mark.django_db


def _session_user_id(client):
    return client.session.get("_auth_user_id")


class TestStaffSignInWithTotp:
    def test_password_alone_does_not_sign_staff_in(self, client, bob):
        response = password_sign_in(client, bob)
        assert response.status_code == 302
        assert response["Location"] == "/accounts/2fa/authenticate/"
        assert _session_user_id(client) is None
        assert client.get("/workbench/")["Location"].startswith("/accounts/login/")

    def test_password_then_code_reaches_the_workbench(self, client, bob):
        password_sign_in(client, bob)
        assert client.get("/accounts/2fa/authenticate/").status_code == 200
        response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(bob.totp_secret)})
        assert response.status_code == 302
        assert _session_user_id(client) == str(bob.pk)
        assert client.get(response["Location"], follow=True).redirect_chain[-1][0] == "/workbench/"
        assert client.get("/workbench/").status_code == 200

    def test_a_wrong_code_is_refused(self, client, bob):
        password_sign_in(client, bob)
        good = totp_code(bob.totp_secret)
        wrong = f"{(int(good) + 1) % 1_000_000:06d}"
        response = client.post("/accounts/2fa/authenticate/", {"code": wrong})
        assert response.status_code == 200
        assert response.context["form"].errors
        assert _session_user_id(client) is None

    def test_client_without_mfa_signs_in_with_the_password(self, client, alice):
        response = password_sign_in(client, alice)
        assert response.status_code == 302
        assert _session_user_id(client) == str(alice.pk)
        assert client.get("/", follow=True).redirect_chain[-1][0] == "/dashboard/"


class TestApiTokens:
    def test_client_obtains_a_token_and_uses_it(self, api_client, alice, auth_throttle):
        response = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD})
        assert response.status_code == 200
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        assert api_client.get("/api/v1/me/").json()["email"] == alice.email

    def test_a_client_with_an_authenticator_needs_its_code_for_a_token(self, api_client, auth_throttle):
        """The web sign-in asks an enrolled client for the second factor; the token endpoint must too, or the
        password alone would draw down and release collateral through the API."""
        from rest_framework.authtoken.models import Token

        from tests.helpers import make_user, totp_code

        erin = make_user("client", email="erin@example.com", mfa=True)
        response = api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD})
        assert response.status_code == 400 and response.json()["error"]["code"] == "otp_code_required"
        assert "otp_code" in response.json()["error"]["fields"]
        response = api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD, "otp_code": "000000"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "stepup_invalid"
        assert not Token.objects.filter(user=erin).exists()
        code = totp_code(erin.totp_secret)
        response = api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD, "otp_code": code})
        assert response.status_code == 200 and response.json()["token"]
        # The same code cannot be used twice.
        again = api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD, "otp_code": code})
        assert again.status_code == 403

    def test_wrong_codes_count_towards_the_lock_out(self, api_client, auth_throttle):
        from tests.helpers import make_user, totp_code

        erin = make_user("client", email="erin@example.com", mfa=True)
        for _ in range(5):
            api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD, "otp_code": "000000"})
        response = api_client.post("/api/v1/auth/token/", {"email": erin.email, "password": PASSWORD, "otp_code": totp_code(erin.totp_secret)})
        assert response.status_code != 200 and "token" not in response.json()

    def test_enrolling_an_authenticator_revokes_the_tokens_the_password_alone_obtained(self, api_client, alice, auth_throttle):
        from allauth.mfa import signals
        from allauth.mfa.models import Authenticator
        from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
        from rest_framework.authtoken.models import Token

        token = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD}).json()["token"]
        authenticator = TOTP.activate(alice, generate_totp_secret()).instance
        signals.authenticator_added.send(sender=Authenticator, request=None, user=alice, authenticator=authenticator)
        assert not Token.objects.filter(key=token).exists()
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert api_client.get("/api/v1/me/").status_code in (401, 403)

    def test_staff_cannot_obtain_a_token(self, api_client, bob, auth_throttle):
        from rest_framework.authtoken.models import Token

        response = api_client.post("/api/v1/auth/token/", {"email": bob.email, "password": PASSWORD})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "staff_use_session"
        assert not Token.objects.filter(user=bob).exists()

    def test_a_client_who_never_confirmed_their_email_gets_no_token(self, api_client, client, auth_throttle):
        from allauth.account.models import EmailAddress
        from rest_framework.authtoken.models import Token

        from tests.helpers import make_user

        dana = make_user("client", email="dana@example.com")
        EmailAddress.objects.filter(user=dana).update(verified=False)
        # The web sign-in refuses her the same way: it asks her to confirm first.
        assert password_sign_in(client, dana)["Location"] == "/accounts/confirm-email/"
        response = api_client.post("/api/v1/auth/token/", {"email": dana.email, "password": PASSWORD})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "email_unconfirmed"
        assert not Token.objects.filter(user=dana).exists()
        # A token issued before (or by other means) stops working too.
        token = Token.objects.create(user=dana)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = api_client.get("/api/v1/me/")
        assert response.status_code in (401, 403) and response.json()["error"]["code"] == "authentication_failed"

    def test_wrong_password_is_refused_without_saying_which_part(self, api_client, alice, auth_throttle):
        response = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": "wrong-password-1"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_credentials"

    def test_the_token_endpoint_is_throttled(self, api_client, alice, auth_throttle):
        auth_throttle("3/min")
        for _ in range(3):
            assert (
                api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD}).status_code == 200
            )
        response = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "throttled"
        assert "Retry-After" in response


class TestLockOut:
    def test_five_wrong_passwords_lock_out_even_the_right_one(self, client, alice):
        for _ in range(5):
            response = password_sign_in(client, alice, "not-the-password")
            assert _session_user_id(client) is None
        response = password_sign_in(client, alice)
        assert response.status_code in (403, 429)
        assert _session_user_id(client) is None
        assert "Too many failed sign-in attempts" in response.content.decode()

    def test_four_wrong_passwords_then_the_right_one_signs_in(self, client, alice):
        for _ in range(4):
            password_sign_in(client, alice, "not-the-password")
        password_sign_in(client, alice)
        assert _session_user_id(client) == str(alice.pk)

    def test_a_successful_sign_in_resets_the_count(self, client, alice):
        for _ in range(4):
            password_sign_in(client, alice, "not-the-password")
        password_sign_in(client, alice)
        client.logout()
        for _ in range(4):
            password_sign_in(client, alice, "not-the-password")
        password_sign_in(client, alice)
        assert _session_user_id(client) == str(alice.pk)

    def test_the_account_is_locked_whatever_address_the_guesses_come_from(self, client, alice):
        # A distributed guess: each attempt from another address, all at one account.
        for n in range(5):
            client.post(
                "/accounts/login/", {"login": alice.email, "password": "not-the-password"}, REMOTE_ADDR=f"203.0.113.{n}"
            )
        client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
        assert _session_user_id(client) is None

    def test_failures_on_other_accounts_do_not_lock_this_one(self, client, alice, charlie):
        for n in range(5):
            client.post(
                "/accounts/login/",
                {"login": charlie.email, "password": "not-the-password"},
                REMOTE_ADDR=f"203.0.113.{n}",
            )
        client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
        assert _session_user_id(client) == str(alice.pk)
        client.logout()
        client.post("/accounts/login/", {"login": charlie.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
        assert _session_user_id(client) is None

    def test_the_email_is_counted_whatever_its_case(self, client, alice):
        for n in range(5):
            client.post(
                "/accounts/login/",
                {"login": alice.email.upper(), "password": "not-the-password"},
                REMOTE_ADDR=f"203.0.113.{n}",
            )
        client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
        assert _session_user_id(client) is None

    def test_token_endpoint_failures_count_towards_the_lock_out(self, api_client, alice, auth_throttle):
        for _ in range(5):
            api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": "not-the-password"})
        response = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD})
        assert response.status_code != 200
        assert "token" not in response.json()


class TestSignUp:
    def _sign_up(self, client, email="dora@example.com"):
        return client.post(
            "/accounts/signup/",
            {"email": email, "password1": "Sturdy-Passphrase-77", "password2": "Sturdy-Passphrase-77"},
        )

    def test_sign_up_creates_a_client_and_audits_it(self, client):
        self._sign_up(client)
        user = User.objects.get(email="dora@example.com")
        assert user.role_names == {"client"}
        assert not user.is_portal_staff
        assert AuditEvent.objects.filter(action="user.role_assigned", object_id=str(user.pk)).count() == 1

    def test_email_must_be_verified_before_signing_in(self, client):
        response = self._sign_up(client)
        assert response["Location"] == "/accounts/confirm-email/"
        assert _session_user_id(client) is None
        assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")
        # Signing in with the password alone still does not let them in.
        response = client.post("/accounts/login/", {"login": "dora@example.com", "password": "Sturdy-Passphrase-77"})
        assert _session_user_id(client) is None

    def test_the_emailed_link_verifies_and_then_they_sign_in(self, client, settings):
        settings.PORTAL_BASE_URL = "https://portal.example"
        self._sign_up(client)
        assert len(mail.outbox) == 1
        # On the configured site address, not the host the request came in on.
        link = re.search(r"https://portal\.example(/accounts/confirm-email/[^\s]+/)", mail.outbox[0].body).group(1)
        response = client.post(link)
        assert response.status_code == 302
        assert EmailAddress.objects.get(email="dora@example.com").verified
        client.post("/accounts/login/", {"login": "dora@example.com", "password": "Sturdy-Passphrase-77"})
        assert client.get("/dashboard/").status_code == 200

    def test_the_verification_email_carries_the_portals_name_and_design_in_the_signup_language(self, client, settings):
        settings.PORTAL_BASE_URL = "https://portal.example"
        client.post("/language/", {"language": "zh-hant", "next": "/"})
        self._sign_up(client, email="wing.signup@example.com")
        message = mail.outbox[0]
        assert message.subject.startswith("[虛擬資產保證金融資平台] ")
        assert "Hello from" not in message.body and "testserver" not in message.body
        assert "虛擬資產保證金融資平台" in message.body
        html = dict((mime, body) for body, mime in message.alternatives)["text/html"]
        assert "虛擬資產保證金融資平台" in html and "https://portal.example/accounts/confirm-email/" in html

    def test_sign_up_cannot_choose_a_staff_role(self, client):
        client.post(
            "/accounts/signup/",
            {
                "email": "eve@example.com",
                "password1": "Sturdy-Passphrase-77",
                "password2": "Sturdy-Passphrase-77",
                "role": "admin",
                "is_staff": "on",
            },
        )
        user = User.objects.get(email="eve@example.com")
        assert user.role_names == {"client"}
        assert not user.is_staff


def test_password_reset_sends_an_email_and_the_new_password_works(client, alice, settings):
    settings.PORTAL_BASE_URL = "http://testserver"  # links are built on the configured site address
    response = client.post("/accounts/password/reset/", {"email": alice.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [alice.email]
    link = re.search(r"http://testserver(/accounts/password/reset/key/[^\s]+/)", mail.outbox[0].body).group(1)
    response = client.get(link)
    set_url = response["Location"] if response.status_code == 302 else link
    response = client.post(set_url, {"password1": "Brand-New-Secret-99", "password2": "Brand-New-Secret-99"})
    assert response.status_code == 302
    assert User.objects.get(pk=alice.pk).check_password("Brand-New-Secret-99")
    [event] = AuditEvent.objects.filter(action="user.password_reset", object_id=str(alice.pk))
    assert event.actor == alice


def test_password_reset_for_an_unknown_email_sends_nothing_revealing(client):
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302
    # allauth may tell the address "no account here"; it never reveals that on the page.
    assert all("nobody@example.com" in m.to for m in mail.outbox)


def test_staff_made_by_make_user_helper_have_totp(bob):
    assert make_user  # the helper enrols staff in TOTP; the sign-in tests above rely on it
    assert bob.totp_secret
