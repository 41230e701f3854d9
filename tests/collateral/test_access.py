"""Who may reach the collateral pages and API; the machine key imports and can do nothing else."""

from decimal import Decimal

import pytest

from lending.collateral import services
from lending.collateral.models import ImportBatch, Instrument, MachineKey
from portal.models import AuditEvent
from tests.collateral.conftest import positions_csv

pytestmark = pytest.mark.django_db

PAGES = ["/collateral/operations/", "/collateral/instruments/"]
STAFF_GETS = ["/api/v1/collateral/staff/imports/", "/api/v1/collateral/staff/breaks/", "/api/v1/collateral/staff/instruments/",
              "/api/v1/collateral/staff/keys/"]
STAFF_POSTS = ["/api/v1/collateral/staff/imports/positions_eod/", "/api/v1/collateral/staff/breaks/1/resolve/",
               "/api/v1/collateral/staff/instruments/", "/api/v1/collateral/staff/keys/", "/api/v1/collateral/staff/keys/1/rotate/",
               "/api/v1/collateral/staff/keys/1/revoke/"]
MACHINE = "/api/v1/collateral/imports/positions_eod/"


def _key_header(key):
    return {"HTTP_AUTHORIZATION": f"Api-Key {key.token}"}


def test_anonymous_is_refused_everywhere(client, api_client, db):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    for path in STAFF_GETS + [MACHINE + "X/"]:
        assert api_client.get(path).status_code in (401, 403), path
    for path in STAFF_POSTS + [MACHINE]:
        assert api_client.post(path, {}, format="json").status_code in (401, 403), path


def test_clients_are_refused(client, api_client, alice):
    client.force_login(alice)
    api_client.force_login(alice)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    for path in STAFF_GETS:
        assert api_client.get(path).status_code == 403, path
    for path in STAFF_POSTS:
        assert api_client.post(path, {}, format="json").status_code == 403, path
    assert api_client.post(MACHINE, {}, format="json").status_code == 401  # a session is no machine credential


def test_wrong_role_is_refused(client, api_client, compliance_user, officer):
    client.force_login(compliance_user)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    api_client.force_login(officer)  # an officer operates imports but cannot issue machine keys
    assert api_client.get("/api/v1/collateral/staff/imports/").status_code == 200
    assert api_client.get("/api/v1/collateral/staff/keys/").status_code == 403
    assert api_client.post("/api/v1/collateral/staff/keys/", {"name": "x"}, format="json").status_code == 403


def test_staff_session_cannot_use_the_machine_endpoint(api_client, officer, accounts):
    api_client.force_login(officer)
    response = api_client.post(MACHINE, {"batch_id": "S", "as_of": "2026-03-02", "lines": []}, format="json")
    assert response.status_code in (401, 403)


def test_a_rejected_batch_sent_again_answers_as_it_did_the_first_time(api_client, machine_key, accounts):
    body = positions_csv("API-BAD", [("M-1001", "00005", 800), ("M-9999", "00005", 1)])
    first = api_client.post(MACHINE, body, content_type="text/csv", **_key_header(machine_key))
    assert first.status_code == 422, first.content
    again = api_client.post(MACHINE, body, content_type="text/csv", **_key_header(machine_key))
    assert again.status_code == 422, again.content
    assert again.json()["error"] == first.json()["error"] and again.json()["batch"]["replayed"] is True
    assert again.json()["batch"]["errors"] == first.json()["batch"]["errors"] != []
    assert ImportBatch.objects.count() == 1


def test_machine_key_imports_a_batch_and_the_result_is_idempotent(api_client, machine_key, accounts, alice):
    body = positions_csv("API-1", [("M-1001", "00005", 800)])
    first = api_client.post(MACHINE, body, content_type="text/csv", **_key_header(machine_key))
    assert first.status_code == 201 and first.json()["status"] == "applied" and first.json()["replayed"] is False
    again = api_client.post(MACHINE, body, content_type="text/csv", **_key_header(machine_key))
    assert again.status_code == 200 and again.json()["replayed"] is True
    batch = ImportBatch.objects.get()
    assert batch.machine_key == machine_key and batch.channel == "api"
    event = AuditEvent.objects.get(action="collateral.import.positions_eod.applied")
    assert event.actor is None and event.actor_label == machine_key.label
    got = api_client.get(MACHINE + "API-1/", **_key_header(machine_key))
    assert got.status_code == 200 and got.json()["applied_count"] == 1
    assert MachineKey.objects.get(pk=machine_key.pk).last_used_at is not None


def test_machine_key_gets_a_line_by_line_report_for_a_bad_batch(api_client, machine_key, accounts):
    response = api_client.post(MACHINE, {"batch_id": "API-2", "as_of": "2026-03-02", "lines": [
        {"account": "M-1001", "instrument": "00005", "quantity": "10"}, {"account": "M-1001", "instrument": "12345", "quantity": "10"}]},
        format="json", **_key_header(machine_key))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "batch_rejected" and error["fields"]["lines"] == ["line 2: Unknown instrument 12345 (not in the instrument master)."]


def test_machine_key_can_do_nothing_else(api_client, machine_key, alice):
    """The key is not a credential anywhere but the import endpoints."""
    header = _key_header(machine_key)
    for path in ["/api/v1/me/", "/api/v1/lending/applications/", "/api/v1/risk/staff/board/", "/api/v1/audit/", *STAFF_GETS]:
        assert api_client.get(path, **header).status_code in (401, 403), path
    for path in ["/api/v1/lending/applications/", "/api/v1/risk/staff/prices/quotes/", *STAFF_POSTS]:
        assert api_client.post(path, {}, format="json", **header).status_code in (401, 403), path
    from django.test import Client

    browser = Client(**header)
    for path in ["/workbench/", "/collateral/operations/", "/admin/"]:
        assert browser.get(path).status_code in (302, 403), path


def test_revoked_or_rotated_keys_stop_working(api_client, machine_key, credit_manager, accounts):
    new, token = services.machine_key_rotate(actor=credit_manager, key_id=machine_key.pk)
    body = positions_csv("API-3", [("M-1001", "00005", 1)])
    assert api_client.post(MACHINE, body, content_type="text/csv", **_key_header(machine_key)).status_code == 401
    assert api_client.post(MACHINE, body, content_type="text/csv", HTTP_AUTHORIZATION=f"Api-Key {token}").status_code == 201
    services.machine_key_revoke(actor=credit_manager, key_id=new.pk, reason="test")
    assert api_client.post(MACHINE, positions_csv("API-4", [("M-1001", "00005", 2)]), content_type="text/csv",
                           HTTP_AUTHORIZATION=f"Api-Key {token}").status_code == 401
    assert AuditEvent.objects.filter(action__in=["collateral.machine_key.created", "collateral.machine_key.rotated", "collateral.machine_key.revoked"]).count() == 3


def test_only_the_hash_of_the_key_is_stored(machine_key):
    stored = MachineKey.objects.get(pk=machine_key.pk)
    secret = machine_key.token.split("_", 2)[2]
    assert secret not in stored.secret_sha256 and len(stored.secret_sha256) == 64
    assert services.machine_key_authenticate(machine_key.token).pk == machine_key.pk
    assert services.machine_key_authenticate(machine_key.token + "x") is None


def test_credit_manager_creates_a_key_through_the_api_and_sees_the_token_once(api_client, credit_manager):
    api_client.force_login(credit_manager)
    response = api_client.post("/api/v1/collateral/staff/keys/", {"name": "Custody platform"}, format="json")
    assert response.status_code == 201 and response.json()["token"].startswith("vmk_")
    listed = api_client.get("/api/v1/collateral/staff/keys/").json()
    assert "token" not in listed[0] and "secret_sha256" not in listed[0]


def test_operations_page_lists_breaks_and_batches_at_constant_queries(client, officer, holdings, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.audit import SYSTEM

    client.force_login(officer)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/collateral/operations/").status_code == 200
        return len(ctx.captured_queries)

    small = count()
    for n in range(12):
        services.batch_import(kind="positions_intraday", actor=SYSTEM, content=positions_csv(f"Q-{n}", [("M-1001", "00005", 100 + n), ("M-1001", "99999", 1)]))
        services.batch_import(kind="positions_eod", actor=SYSTEM, content=positions_csv(f"QE-{n}", [("M-1001", "00005", 3000 + n)]))
    assert count() == small


def test_instruments_page_and_api(client, api_client, officer):
    client.force_login(officer)
    body = client.get("/collateral/instruments/?q=Tencent").content.decode()
    assert "00700" in body and "騰訊控股" in body
    api_client.force_login(officer)
    response = api_client.patch("/api/v1/collateral/staff/instruments/00700/", {"suspended": True}, format="json")
    assert response.status_code == 200 and response.json()["suspended"] is True
    assert api_client.patch("/api/v1/collateral/staff/instruments/00700/", {"board_lot": 0}, format="json").status_code == 400
    assert api_client.patch("/api/v1/collateral/staff/instruments/00700/", {"code": "1"}, format="json").status_code == 400
    assert Instrument.objects.get(code="00700").board_lot == 100
    assert api_client.get("/api/v1/collateral/staff/instruments/?q=HSBC").json()["results"][0]["code"] == "00005"


def test_staff_upload_page_shows_the_report(client, officer, accounts):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(officer)
    upload = SimpleUploadedFile("eod.csv", positions_csv("UP-1", [("M-1001", "00005", 5), ("M-1001", "00005", 6)]).encode(), content_type="text/csv")
    response = client.post("/collateral/operations/", {"action": "upload", "kind": "positions_eod", "file": upload}, follow=True)
    body = response.content.decode()
    assert 'data-testid="errors"' in body and "already on line 2" in body
    assert Decimal(0) == sum(b.applied_count for b in ImportBatch.objects.all())
