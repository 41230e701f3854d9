"""The reporting API: outsiders refused on every endpoint (anonymous, a client, staff without the permission),
the registers worked end to end through it (one error shape, idempotency keys on creates, four eyes), and
every list's query count pinned (the same with one row as with many)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

pytestmark = pytest.mark.django_db
BASE = "/api/v1/reporting/"

# (path, who may call it: the permission's role)
STAFF_GETS = ["complaints/", "complaints/1/", "deviations/", "deviations/1/", "capital/", "capital/multiple/", "groups/", "groups/1/",
              "retention/", "packs/", "packs/1/", "record-requests/", "record-requests/1/"]
STAFF_POSTS = ["complaints/log/", "complaints/1/assign/", "complaints/1/acknowledge/", "complaints/1/escalate/", "complaints/1/close/",
               "deviations/propose/", "deviations/1/approve/", "deviations/1/reject/", "deviations/1/retire/", "capital/propose/",
               "capital/1/approve/", "capital/1/reject/", "groups/create/", "groups/1/members/", "memberships/1/approve/",
               "memberships/1/reject/", "memberships/1/end/", "memberships/1/end/approve/", "memberships/1/end/reject/", "packs/",
               "record-requests/"]
# Staff holding another role's permissions only: each refused with 403 and nothing done.
REFUSED = [
    ("officer", "get", "complaints/"), ("officer", "get", "deviations/"), ("officer", "get", "capital/"), ("officer", "get", "packs/"),
    ("officer", "get", "retention/"), ("officer", "get", "record-requests/"), ("officer", "post", "groups/create/"),
    ("officer", "post", "deviations/propose/"), ("officer", "post", "capital/propose/"), ("officer", "post", "record-requests/"),
    ("admin", "get", "groups/"), ("admin", "post", "complaints/1/close/"), ("credit_manager", "get", "record-requests/"),
    ("credit_manager", "get", "complaints/"), ("compliance", "post", "capital/propose/"), ("credit_manager", "post", "capital/1/approve/"),
]


@pytest.fixture
def people(officer, credit_manager, compliance_user, admin_user, compliance2):
    return {"officer": officer, "credit_manager": credit_manager, "compliance": compliance_user, "admin": admin_user, "compliance2": compliance2}


def test_anonymous_is_refused_everywhere(api_client):
    for path in STAFF_GETS + ["my-complaints/", "my-complaints/1/"]:
        assert api_client.get(BASE + path).status_code in (401, 403), path
    for path in STAFF_POSTS + ["my-complaints/"]:
        assert api_client.post(BASE + path, {}, format="json").status_code in (401, 403), path


def test_a_client_is_refused_every_staff_endpoint(api_client, alice):
    api_client.force_login(alice)
    for path in STAFF_GETS:
        assert api_client.get(BASE + path).status_code == 403, path
    for path in STAFF_POSTS:
        assert api_client.post(BASE + path, {}, format="json").status_code == 403, path


def test_staff_without_the_permission_are_refused(api_client, people):
    from portal.models import AuditEvent

    before = AuditEvent.objects.count()
    for role, method, path in REFUSED:
        api_client.force_login(people[role])
        response = getattr(api_client, method)(BASE + path, {}, format="json")
        assert response.status_code == 403, (role, path)
        assert response.json()["error"]["code"] in ("permission_denied", "not_authenticated"), (role, path)
    assert AuditEvent.objects.count() == before


def test_a_client_logs_and_reads_only_their_own_complaints(api_client, alice, charlie, compliance_user):
    api_client.force_login(alice)
    made = api_client.post(BASE + "my-complaints/", {"subject": "Late statement", "details": "My November statement is late."},
                           format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert made.status_code == 201 and made.json()["channel"] == "portal" and made.json()["state"] == "open"
    again = api_client.post(BASE + "my-complaints/", {"subject": "Late statement", "details": "My November statement is late."},
                            format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.json()["id"] == made.json()["id"] and again["Idempotent-Replayed"] == "true"
    mine = api_client.get(BASE + "my-complaints/").json()
    assert [c["id"] for c in mine["results"]] == [made.json()["id"]] and "staff_involved" not in mine["results"][0]
    api_client.force_login(charlie)
    assert api_client.get(BASE + "my-complaints/").json()["results"] == []
    assert api_client.get(BASE + f"my-complaints/{made.json()['id']}/").status_code == 404
    api_client.force_login(compliance_user)  # staff are not clients here
    assert api_client.get(BASE + "my-complaints/").status_code == 403


def test_complaint_logged_assigned_acknowledged_and_closed_through_the_api(api_client, alice, officer, compliance_user, compliance2):
    from lending.reporting.models import Complaint

    api_client.force_login(officer)
    bad = api_client.post(BASE + "complaints/log/", {"complainant_name": "Alice", "channel": "phone", "received_at": "2099-01-01T10:00:00+08:00",
                                                     "subject": "Rude call", "details": "…", "client_email": "alice@example.com"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error" and "received_at" in bad.json()["error"]["fields"]
    assert Complaint.objects.count() == 0
    received = (timezone.now() - timedelta(hours=1)).isoformat()
    body = {"complainant_name": "Alice Wong", "channel": "phone", "received_at": received, "subject": "Rude call", "details": "The officer was rude.",
            "client_email": "alice@example.com", "staff_involved": ["bob@example.com"]}
    logged = api_client.post(BASE + "complaints/log/", body, format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert logged.status_code == 201, logged.json()
    assert api_client.post(BASE + "complaints/log/", body, format="json", HTTP_IDEMPOTENCY_KEY="c-1").json()["id"] == logged.json()["id"]
    assert Complaint.objects.count() == 1
    pk = logged.json()["id"]
    assert logged.json()["staff_involved"] == [officer.email] and logged.json()["acknowledge_due"] > received
    api_client.force_login(compliance_user)
    assert api_client.post(BASE + f"complaints/{pk}/assign/", {"assignee_email": officer.email}, format="json").status_code in (400, 403)
    assert api_client.post(BASE + f"complaints/{pk}/assign/", {"assignee_email": compliance2.email}, format="json").json()["assigned_to"] == compliance2.email
    api_client.force_login(compliance2)
    early = api_client.post(BASE + f"complaints/{pk}/close/", {"outcome": "upheld", "text": "Sorry"}, format="json")
    assert early.status_code == 409 and early.json()["error"]["code"] == "invalid_state"
    assert api_client.post(BASE + f"complaints/{pk}/acknowledge/", {"text": "We have your complaint."}, format="json").json()["state"] == "acknowledged"
    closed = api_client.post(BASE + f"complaints/{pk}/close/", {"outcome": "upheld", "text": "We apologise."}, format="json").json()
    assert closed["state"] == "closed" and closed["outcome"] == "upheld" and closed["closed_by"] == compliance2.email
    listed = api_client.get(BASE + "complaints/?state=closed").json()
    assert [c["id"] for c in listed["results"]] == [pk]
    assert api_client.get(BASE + "complaints/?state=nonsense").status_code == 400


def test_deviation_and_capital_need_a_second_person(api_client, credit_manager, compliance_user, compliance2):
    api_client.force_login(compliance_user)
    dev = api_client.post(BASE + "deviations/propose/", {"area": "client_concentration", "benchmark": "Top client ≤ 10%", "departure": "Start-up book",
                                                         "justification": "New firm", "compensating_control": "Weekly review",
                                                         "review_date": (date.today() + timedelta(days=90)).isoformat()}, format="json")
    assert dev.status_code == 201
    pk = dev.json()["id"]
    own = api_client.post(BASE + f"deviations/{pk}/approve/", {}, format="json")
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes"
    api_client.force_login(compliance2)
    assert api_client.post(BASE + f"deviations/{pk}/reject/", {}, format="json").status_code == 400  # a reason is required
    assert api_client.post(BASE + f"deviations/{pk}/approve/", {"note": "ok"}, format="json").json()["state"] == "approved"
    api_client.force_login(credit_manager)
    entry = api_client.post(BASE + "capital/propose/", {"as_of": date.today().isoformat(), "liquid_capital": "1500000.00",
                                                        "source_reference": "FRR", "reason": "month end"}, format="json")
    assert entry.status_code == 201 and entry.json()["status"] == "proposed" and entry.json()["liquid_capital"] == "1500000.00"
    api_client.force_login(compliance_user)
    assert api_client.post(BASE + f"capital/{entry.json()['id']}/approve/", {}, format="json").json()["status"] == "approved"
    view = api_client.get(BASE + "capital/multiple/").json()
    assert view["in_force"]["liquid_capital"] == "1500000.00" and view["total_margin_loans"] == "0.00" and view["within_ceiling"] is True


def test_groups_through_the_api_with_four_eyes(api_client, alice, charlie, credit_manager, compliance_user, officer):
    api_client.force_login(credit_manager)
    made = api_client.post(BASE + "groups/create/", {"name": "Wong family", "basis": "family", "description": "Spouses"}, format="json",
                           HTTP_IDEMPOTENCY_KEY="g-1")
    assert made.status_code == 201 and made.json()["memberships"] == [] and made.json()["today"]["drawn"] == "0.00"
    gid = made.json()["id"]
    bad = api_client.post(BASE + f"groups/{gid}/members/", {"client_email": officer.email, "relationship": "x", "reason": "y",
                                                            "effective_from": "2026-01-01"}, format="json")
    assert bad.status_code == 400 and "client_email" in bad.json()["error"]["fields"]
    member = api_client.post(BASE + f"groups/{gid}/members/", {"client_email": alice.email, "relationship": "spouse", "reason": "KYC",
                                                               "effective_from": "2026-01-01"}, format="json")
    assert member.status_code == 201 and member.json()["state"] == "proposed"
    mid = member.json()["id"]
    assert api_client.post(BASE + f"memberships/{mid}/approve/", {}, format="json").json()["error"]["code"] == "four_eyes"
    api_client.force_login(compliance_user)
    assert api_client.post(BASE + f"memberships/{mid}/approve/", {"note": "seen"}, format="json").json()["state"] == "active"
    ended = api_client.post(BASE + f"memberships/{mid}/end/", {"end_on": date.today().isoformat(), "reason": "Divorce"}, format="json")
    assert ended.json()["end_pending"] is True
    api_client.force_login(credit_manager)
    assert api_client.post(BASE + f"memberships/{mid}/end/reject/", {"note": "Not final"}, format="json").json()["end_pending"] is False
    detail = api_client.get(BASE + f"groups/{gid}/").json()
    assert [(m["client_email"], m["state"]) for m in detail["memberships"]] == [(alice.email, "active")]
    rows = api_client.get(BASE + "groups/?q=alice").json()["results"]
    assert [(r["name"], r["members"], r["pending"]) for r in rows] == [("Wong family", 1, 0)]


def test_packs_record_requests_and_retention(api_client, alice, compliance_user):
    from onboarding.models import ClientProfile

    ClientProfile.objects.get_or_create(user=alice)
    api_client.force_login(compliance_user)
    pack = api_client.post(BASE + "packs/", {"as_of": (date.today() - timedelta(days=1)).isoformat()}, format="json")
    assert pack.status_code == 201 and set(pack.json()["data"]) >= {"total_loans", "client_concentration", "stress_testing"}
    listed = api_client.get(BASE + "packs/").json()["results"]
    assert listed[0]["id"] == pack.json()["id"] and "data" not in listed[0]
    assert api_client.get(listed[0]["files"]["xlsx"]).status_code == 200
    assert api_client.get(BASE + "packs/9999/").status_code == 404
    assert api_client.post(BASE + "packs/", {"as_of": (date.today() + timedelta(days=2)).isoformat()}, format="json").status_code == 400
    req = api_client.post(BASE + "record-requests/", {"client_email": alice.email, "basis": "client", "reference": "Letter 1"}, format="json")
    assert req.status_code == 201 and req.json()["files"] >= 1 and len(req.json()["manifest_sha256"]) == 64
    download = api_client.get(req.json()["download"])
    assert download.status_code == 200 and download["X-Content-SHA256"] == req.json()["archive_sha256"]
    assert api_client.get(BASE + f"record-requests/{req.json()['id']}/").json()["downloads"] == 1
    report = api_client.get(BASE + "retention/").json()
    rules = {r["record_type"]: r for r in report["rules"]}
    assert rules["risk.margincall"]["years"] == 7 and rules["onboarding.clientprofile"]["counted_from"] == "relationship_end"


def _count(api_client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = api_client.get(BASE + path)
    assert response.status_code == 200, (path, response.content[:300])
    return len(ctx.captured_queries)


def test_list_endpoints_run_in_constant_queries(api_client, alice, charlie, credit_manager, compliance_user, compliance2):
    from lending.reporting import services
    from onboarding.models import ClientProfile

    def add(i):
        c = services.complaint_log(actor=compliance_user, client=alice, complainant_name="A", channel="email", subject=f"S{i}", details="d",
                                   staff_involved=[credit_manager])
        services.complaint_assign(actor=compliance_user, complaint_id=c.pk, assignee=compliance2)
        services.deviation_propose(actor=compliance_user, area="haircuts", benchmark="b", departure="d", justification="j",
                                   compensating_control="c", review_date=date.today() + timedelta(days=30))
        services.capital_propose(actor=credit_manager, as_of=date.today(), liquid_capital="1000000", source_reference="s", reason="r")
        g = services.client_group_create(actor=credit_manager, name=f"G{i}", basis="other", description="d")
        services.client_group_member_propose(actor=credit_manager, group_id=g.pk, client=alice, relationship="r", reason="r",
                                             effective_from=date.today())
        services.smf_pack_generate(actor=compliance_user, as_of=date.today() - timedelta(days=1))
        services.record_request_create(actor=compliance_user, client=alice, basis="client", reference=f"R{i}")

    ClientProfile.objects.get_or_create(user=alice)
    add(0)
    api_client.force_login(compliance_user)
    lists = ["complaints/", "deviations/", "capital/", "groups/", "packs/", "record-requests/", "retention/"]
    one = {p: _count(api_client, p) for p in lists}
    for i in range(1, 4):
        add(i)
    assert {p: _count(api_client, p) for p in lists} == one
    group = services.client_group_create(actor=credit_manager, name="Big", basis="other", description="d")
    detail_one = _count(api_client, f"groups/{group.pk}/")
    for email in ("x1@example.com", "x2@example.com", "x3@example.com"):
        from tests.helpers import make_user

        services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=make_user("client", email=email),
                                             relationship="r", reason="r", effective_from=date.today())
    assert _count(api_client, f"groups/{group.pk}/") == detail_one
