"""Who may open what: every staff page and API by role and permission, MFA first for staff."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator

from portal.notifications import notify
from tests.helpers import make_user, totp_code
from tests.portal.conftest import password_sign_in

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["/workbench/", "/workbench/audit/", "/admin/"]


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and (
        response["Location"].startswith("/accounts/login/") or response["Location"].startswith("/admin/login/")
    )


@pytest.mark.parametrize("path", [*STAFF_PAGES, "/dashboard/", "/notifications/", "/"])
def test_anonymous_visitor_is_sent_to_sign_in(client, path):
    assert _is_login_redirect(client.get(path))


@pytest.mark.parametrize("path", ["/workbench/", "/workbench/audit/"])
def test_client_is_refused_staff_pages(client, alice, path):
    client.force_login(alice)
    assert client.get(path).status_code == 403


def test_client_cannot_open_the_admin_site(client, alice):
    client.force_login(alice)
    # Django's admin answers non-staff with its own login page, never the index.
    response = client.get("/admin/")
    assert _is_login_redirect(response)


def test_staff_are_refused_the_client_dashboard(client, bob):
    client.force_login(bob)
    assert client.get("/dashboard/").status_code == 403


@pytest.mark.parametrize(
    ("role", "workbench", "audit", "admin"),
    [
        ("account_officer", 200, 403, 302),
        ("credit_manager", 200, 403, 302),
        ("compliance", 200, 200, 200),
        ("admin", 200, 200, 200),
    ],
)
def test_staff_pages_by_role(client, role, workbench, audit, admin):
    user = make_user(role, email=f"{role}@example.com")
    client.force_login(user)
    assert client.get("/workbench/").status_code == workbench
    assert client.get("/workbench/audit/").status_code == audit
    assert client.get("/admin/").status_code == admin


def test_home_sends_each_user_to_their_start_page(client, alice, bob):
    client.force_login(alice)
    assert client.get("/")["Location"] == "/dashboard/"
    client.force_login(bob)
    assert client.get("/")["Location"] == "/workbench/"


class TestAuditApi:
    def test_anonymous_is_refused(self, api_client):
        response = api_client.get("/api/v1/audit/")
        assert response.status_code in (401, 403)
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_client_is_refused(self, client, alice):
        client.force_login(alice)
        response = client.get("/api/v1/audit/")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"

    def test_account_officer_without_the_permission_is_refused(self, client, bob):
        client.force_login(bob)
        assert client.get("/api/v1/audit/").status_code == 403

    @pytest.mark.parametrize("role", ["compliance", "admin"])
    def test_compliance_and_admin_read_it(self, client, role, alice):
        user = make_user(role, email=f"{role}@example.com")
        client.force_login(user)
        response = client.get("/api/v1/audit/", {"action": "user.created"})
        assert response.status_code == 200
        emails = {row["after"]["email"] for row in response.json()["results"]}
        assert emails == {"alice@example.com", f"{role}@example.com"}

    def test_staff_token_would_not_be_enough(self, api_client, compliance_user):
        # Staff never hold tokens; even one made by hand does not open staff APIs,
        # because only an MFA-verified session does.
        from rest_framework.authtoken.models import Token

        token = Token.objects.create(user=compliance_user)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = api_client.get("/api/v1/audit/")
        assert response.status_code == 401  # the credential is refused, with the reason
        assert response.json()["error"]["message"] == "Staff use the web sign-in with multi-factor authentication."


class TestStaffMfa:
    @pytest.fixture
    def unenrolled(self, db):
        return make_user("compliance", email="newstaff@example.com", mfa=False)

    @pytest.mark.parametrize("path", ["/", "/workbench/", "/workbench/audit/", "/admin/", "/notifications/"])
    def test_staff_without_totp_are_sent_to_enrol_on_every_page(self, client, unenrolled, path):
        client.force_login(unenrolled)
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == "/accounts/2fa/totp/activate/"

    @pytest.mark.parametrize("path", ["/api/v1/audit/", "/api/v1/me/", "/api/v1/notifications/"])
    def test_staff_without_totp_get_mfa_required_from_the_api(self, client, unenrolled, path):
        client.force_login(unenrolled)
        response = client.get(path)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "mfa_required"

    def test_after_enrolment_the_pages_open(self, client, unenrolled):
        from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

        TOTP.activate(unenrolled, generate_totp_secret())
        client.force_login(unenrolled)
        assert client.get("/workbench/").status_code == 200
        assert client.get("/workbench/audit/").status_code == 200
        assert client.get("/api/v1/audit/").status_code == 200

    @pytest.mark.django_db(transaction=True)
    def test_enrolling_through_the_page_opens_the_workbench(self, client, unenrolled):
        response = password_sign_in(client, unenrolled)
        assert response.status_code == 302
        # Signed in, the first page they reach is the enrolment (allauth asks
        # for the password once more before a security change).
        assert client.get(response["Location"])["Location"] == "/accounts/2fa/totp/activate/"
        response = client.get("/accounts/2fa/totp/activate/")
        assert response["Location"].startswith("/accounts/reauthenticate/")
        response = client.post(response["Location"], {"password": "Correct-Horse-42!"})
        assert response["Location"] == "/accounts/2fa/totp/activate/"
        page = client.get("/accounts/2fa/totp/activate/")
        assert page.status_code == 200
        secret = page.context["form"].secret
        # Entering the new authenticator's code was this session's second factor (allauth announces the
        # authenticator on commit, so this test commits for real).
        response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
        assert response.status_code == 302
        assert Authenticator.objects.filter(user=unenrolled, type=Authenticator.Type.TOTP).exists()
        assert client.get("/workbench/").status_code == 200

    def test_clients_are_not_forced_to_enrol(self, client, alice):
        client.force_login(alice)
        assert client.get("/dashboard/").status_code == 200


class TestNotificationsAreOwnersOnly:
    @pytest.fixture
    def alices_note(self, alice):
        return notify(user=alice, kind="test", title="Alice private note", body="For alice only", email=False)

    def test_anonymous_is_refused(self, client, api_client, alices_note):
        assert _is_login_redirect(client.get("/notifications/"))
        assert api_client.get("/api/v1/notifications/").status_code in (401, 403)

    def test_owner_sees_her_notification(self, client, alice, alices_note):
        client.force_login(alice)
        assert "Alice private note" in client.get("/notifications/").content.decode()
        ids = [n["id"] for n in client.get("/api/v1/notifications/").json()["results"]]
        assert ids == [alices_note.id]

    @pytest.mark.parametrize("who", ["bob", "charlie"])
    def test_staff_and_outsider_never_see_it(self, client, request, alices_note, who):
        user = request.getfixturevalue(who)
        client.force_login(user)
        assert "Alice private note" not in client.get("/notifications/").content.decode()
        assert client.get("/api/v1/notifications/").json()["results"] == []

    @pytest.mark.parametrize("who", ["bob", "charlie"])
    def test_staff_and_outsider_cannot_mark_it_read(self, client, request, alices_note, who):
        user = request.getfixturevalue(who)
        client.force_login(user)
        assert client.post(
            "/api/v1/notifications/read/", {"ids": [alices_note.id]}, content_type="application/json"
        ).json() == {"marked": 0}
        client.post("/notifications/read/", {"id": [str(alices_note.id)]})
        alices_note.refresh_from_db()
        assert alices_note.read_at is None


def test_workbench_links_the_admin_site_for_those_who_may_use_it(client, admin_user, bob):
    client.force_login(admin_user)
    assert 'data-testid="admin-link"><a href="/admin/">' in client.get("/workbench/").content.decode()
    client.force_login(bob)  # an account officer has no admin site
    assert 'data-testid="admin-link"' not in client.get("/workbench/").content.decode()
