"""The API's shared behaviour: one error shape, idempotent retries, a schema and offline docs."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

from portal.models import IdempotencyKey, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(api_client, alice):
    api_client.force_authenticate(alice)
    return api_client


@pytest.mark.urls("tests.portal.urls_idempotency")
class TestIdempotency:
    URL = "/api/test/notes/"

    def test_without_a_key_each_post_creates(self, alice_api, alice):
        alice_api.post(self.URL, {"title": "a"})
        alice_api.post(self.URL, {"title": "a"})
        assert Notification.objects.filter(user=alice).count() == 2

    def test_a_replay_returns_the_same_answer_and_creates_once(self, alice_api, alice):
        first = alice_api.post(self.URL, {"title": "Drawdown"}, HTTP_IDEMPOTENCY_KEY="k-1")
        second = alice_api.post(self.URL, {"title": "Drawdown"}, HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert Notification.objects.filter(user=alice).count() == 1
        assert IdempotencyKey.objects.filter(user=alice, scope="test.note", key="k-1").count() == 1

    def test_the_same_key_with_another_body_is_a_conflict(self, alice_api, alice):
        alice_api.post(self.URL, {"title": "HK$100"}, HTTP_IDEMPOTENCY_KEY="k-2")
        response = alice_api.post(self.URL, {"title": "HK$900"}, HTTP_IDEMPOTENCY_KEY="k-2")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert list(Notification.objects.filter(user=alice).values_list("title", flat=True)) == ["HK$100"]

    def test_keys_belong_to_one_user(self, api_client, alice, charlie):
        api_client.force_authenticate(alice)
        api_client.post(self.URL, {"title": "alice"}, HTTP_IDEMPOTENCY_KEY="shared")
        api_client.force_authenticate(charlie)
        response = api_client.post(self.URL, {"title": "charlie"}, HTTP_IDEMPOTENCY_KEY="shared")
        assert response.status_code == 201
        assert response.json()["title"] == "charlie"
        assert Notification.objects.filter(user=charlie).count() == 1

    def test_a_failed_request_is_not_remembered(self, alice_api, alice):
        bad = alice_api.post(self.URL, {"title": ""}, HTTP_IDEMPOTENCY_KEY="k-3")
        assert bad.status_code == 400
        good = alice_api.post(self.URL, {"title": "fixed"}, HTTP_IDEMPOTENCY_KEY="k-3")
        assert good.status_code == 201
        assert Notification.objects.filter(user=alice).count() == 1

    def test_an_overlong_key_is_refused(self, alice_api, alice):
        response = alice_api.post(self.URL, {"title": "x"}, HTTP_IDEMPOTENCY_KEY="k" * 101)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_idempotency_key"
        assert not Notification.objects.filter(user=alice).exists()


class TestErrorShape:
    def test_validation_error(self, api_client, auth_throttle):
        response = api_client.post("/api/v1/auth/token/", {"email": "not-an-email"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert set(error["fields"]) == {"email", "password"}
        assert error["message"] in error["fields"]["email"] + error["fields"]["password"]

    def test_not_found_page(self, alice_api):
        response = alice_api.get("/api/v1/notifications/", {"page": 99})
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Invalid page.", "fields": {}}}

    def test_unknown_api_address(self, alice_api):
        response = alice_api.get("/api/v1/no-such-thing/")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}

    def test_unknown_page_is_still_a_page(self, client):
        response = client.get("/no-such-page/")
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")

    def test_not_authenticated(self, api_client):
        """Anonymous is 401 with the scheme to use; signed in without the right is 403."""
        response = api_client.get("/api/v1/me/")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
        assert set(response.json()["error"]) == {"code", "message", "fields"}
        assert api_client.get("/api/v1/audit/").status_code == 401

    def test_bad_filter_on_the_audit_api(self, client, compliance_user):
        client.force_login(compliance_user)
        response = client.get("/api/v1/audit/", {"since": "yesterday"})
        assert response.status_code == 400
        assert "since" in response.json()["error"]["fields"]

    def test_pagination(self, alice_api, alice):
        from portal.notifications import notify

        for n in range(3):
            notify(user=alice, kind="test", title=f"n{n}", email=False)
        body = alice_api.get("/api/v1/notifications/", {"page_size": 2}).json()
        assert body["count"] == 3
        assert len(body["results"]) == 2
        assert body["next"]


class TestSchemaAndDocs:
    def test_schema_is_openapi_3(self, client):
        response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        schema = response.json()
        assert schema["openapi"].startswith("3.")
        paths = schema["paths"]
        for path in ["/api/v1/me/", "/api/v1/auth/token/", "/api/v1/notifications/", "/api/v1/audit/"]:
            assert path in paths
        assert "MeApiOutput" in schema["components"]["schemas"]

    def test_docs_serve_their_assets_locally(self, client):
        response = client.get("/api/docs/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
        assert "cdn" not in html.lower()
        assert "https://" not in html.replace("https://swagger.io", "")
        # Shipped in the installed sidecar package (runserver / collectstatic serve it).
        assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")

    def test_redoc_serves_its_assets_locally(self, client):
        html = client.get("/api/redoc/").content.decode()
        assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in html
        assert "cdn" not in html.lower()
