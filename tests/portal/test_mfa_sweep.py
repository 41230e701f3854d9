"""Sign in every way the portal offers: without the second factor, no staff route opens.

The ways: allauth's password step alone for a TOTP-enrolled member of staff, the Django
admin's own sign-in form, the token API (and a token an admin might have created), a
session made without allauth's MFA step, and a superuser who never enrolled. Only after
the second factor do the workbench and the admin open.
"""

from __future__ import annotations

import re

import pytest
from rest_framework.authtoken.models import Token

from tests.helpers import make_user, totp_code
from tests.portal.test_url_sweep import PUBLIC, _concrete, _routes

pytestmark = pytest.mark.django_db

PASSWORD = "Correct-Horse-42!"
SIGN_IN = re.compile(r"^(/accounts/login/|/accounts/2fa/(authenticate|reauthenticate|totp/activate)/)")


def _protected_paths():
    for route in _routes():
        path = _concrete(route)
        if path is not None and not PUBLIC.match(path):
            yield path


def _assert_nothing_opens(client, **extra):
    opened = []
    for path in _protected_paths():
        response = client.get(path, **extra)
        if response.status_code in (301, 302):
            if not SIGN_IN.match(response["Location"]) and "/admin/login/" not in response["Location"]:
                opened.append(f"{path} → {response['Location']}")
        elif response.status_code not in (401, 403, 404, 405):
            opened.append(f"{path} answered {response.status_code}")
    assert not opened, opened
    return True


def _session_without_mfa(client, user):
    """A signed-in session that never went through allauth's MFA step (as Django's own login makes)."""
    from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY

    client.force_login(user)
    session = client.session
    session.pop(AUTHENTICATION_METHODS_SESSION_KEY, None)
    session.save()


@pytest.fixture(params=["admin", "compliance", "credit_manager"])
def staff(request):
    return make_user(request.param, email=f"{request.param}@example.com")


def test_password_step_alone_opens_nothing(client, staff):
    response = client.post("/accounts/login/", {"login": staff.email, "password": PASSWORD})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session
    _assert_nothing_opens(client)


def test_the_django_admin_sign_in_form_is_never_served(client, staff):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/admin/")
    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    _assert_nothing_opens(client)


def test_the_token_api_gives_staff_nothing(api_client, staff):
    response = api_client.post("/api/v1/auth/token/", {"email": staff.email, "password": PASSWORD}, format="json")
    assert response.status_code == 403
    # Even a token made for them by other means (e.g. the token admin) opens no staff route.
    token = Token.objects.create(user=staff)
    _assert_nothing_opens(api_client, HTTP_AUTHORIZATION=f"Token {token.key}")


def test_a_session_without_the_second_factor_opens_nothing(client, staff):
    _session_without_mfa(client, staff)
    assert client.get("/workbench/")["Location"].startswith("/accounts/2fa/reauthenticate/?next=/workbench/")
    assert client.get("/admin/")["Location"].startswith("/accounts/2fa/reauthenticate/")
    api = client.get("/api/v1/audit/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "mfa_required"
    _assert_nothing_opens(client)
    # Giving the second factor opens the staff pages.
    response = client.post("/accounts/2fa/reauthenticate/?next=/workbench/", {"code": totp_code(staff.totp_secret)})
    assert response.status_code == 302
    assert client.get("/workbench/").status_code == 200


def test_a_superuser_without_a_role_or_authenticator_must_enrol(client):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser(email="root@example.com", password=PASSWORD)
    _session_without_mfa(client, root)
    assert client.get("/admin/")["Location"] == "/accounts/2fa/totp/activate/"
    _assert_nothing_opens(client)


def test_the_real_sign_in_with_the_second_factor_opens_the_admin(client):
    admin = make_user("admin", email="adm@example.com")
    client.post("/accounts/login/", {"login": admin.email, "password": PASSWORD})
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(admin.totp_secret)})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/login/")["Location"] == "/admin/"
