"""Pages run a fixed number of queries, whatever the amount of data."""

from __future__ import annotations

import pytest
from django.db import transaction

from portal.audit import SYSTEM, audit_log
from portal.notifications import notify

pytestmark = pytest.mark.django_db

# session, user, groups (role names), unread count (header) — the shell's own cost.
SHELL = 4


def _audit_rows(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_log(actor=SYSTEM, action="test.thing.done", object_type="test.thing", object_id=i, after={"i": i})


def test_dashboard(client, alice, django_assert_num_queries):
    client.force_login(alice)
    with django_assert_num_queries(SHELL):
        assert client.get("/dashboard/").status_code == 200


def test_workbench(client, bob, django_assert_num_queries):
    client.force_login(bob)
    # + MFA check, + permissions (user's own and the role group's; cached after)
    with django_assert_num_queries(SHELL + 3):
        assert client.get("/workbench/").status_code == 200


@pytest.mark.parametrize("rows", [5, 60])
def test_audit_trail_page(client, compliance_user, django_assert_num_queries, rows):
    _audit_rows(rows)
    client.force_login(compliance_user)
    # + MFA, + permissions (2), + page rows (found by id: no COUNT of the trail)
    with django_assert_num_queries(SHELL + 4):
        response = client.get("/workbench/audit/")
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == min(50, rows + 2)


def test_audit_trail_filtered(client, compliance_user, django_assert_num_queries):
    _audit_rows(60)
    client.force_login(compliance_user)
    with django_assert_num_queries(SHELL + 4):
        response = client.get("/workbench/audit/", {"action": "user.", "page": 1})
    assert {e.action for e in response.context["page"]} == {"user.created", "user.role_assigned"}


@pytest.mark.parametrize("rows", [5, 60])
def test_audit_api(client, compliance_user, django_assert_num_queries, rows):
    _audit_rows(rows)
    client.force_login(compliance_user)
    # session, user, groups, MFA, permissions (2), count, rows
    with django_assert_num_queries(8):
        assert client.get("/api/v1/audit/").status_code == 200


@pytest.mark.parametrize("count", [3, 40])
def test_notifications_list(client, alice, django_assert_num_queries, count):
    from portal.notifications import notification_channel_add

    notification_channel_add(user=alice, label="SMS", address="+852 9000 0001")
    for n in range(count):
        notify(user=alice, kind="test", title=f"Note {n}")
    client.force_login(alice)
    # + page count, + page rows, + their deliveries and addresses (one prefetch each)
    with django_assert_num_queries(SHELL + 4):
        assert client.get("/notifications/").status_code == 200


def test_audit_trail_shows_before_and_after_folded_and_readable(client, compliance_user):
    """Before/after used to be two narrow columns of one-line dicts that broke every few characters."""
    with transaction.atomic():
        audit_log(actor=SYSTEM, action="test.thing.changed", object_type="test.thing", object_id=1,
                  before={"state": "draft", "amount": "1.00"}, after={"state": "submitted", "amount": "2.00"})
    client.force_login(compliance_user)
    body = client.get("/workbench/audit/", {"action": "test.thing"}).content.decode()
    assert "<details><summary>View</summary>" in body
    assert '<pre class="json" data-testid="audit-before">{&#x27;amount&#x27;: &#x27;1.00&#x27;, &#x27;state&#x27;: &#x27;draft&#x27;}</pre>' in body
    assert 'data-testid="audit-after"' in body


def test_audit_trail_pages_by_id_without_counting(client, compliance_user, django_assert_num_queries):
    from portal.models import AuditEvent

    _audit_rows(120)
    client.force_login(compliance_user)
    ids = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True))
    first = client.get("/workbench/audit/").context["page"]
    assert [e.id for e in first] == ids[:50] and first.older_than == ids[49] and first.newer_than is None
    with django_assert_num_queries(SHELL + 4):
        second = client.get("/workbench/audit/", {"before": first.older_than}).context["page"]
    assert [e.id for e in second] == ids[50:100] and second.newer_than == ids[50]
    back = client.get("/workbench/audit/", {"after": second.newer_than}).context["page"]
    assert [e.id for e in back] == ids[:50]
    assert [e.id for e in client.get("/workbench/audit/", {"before": "x1"}).context["page"]] == ids[:50]


def test_postgresql_connections_run_without_jit_compilation():
    """At a large book's estimated costs PostgreSQL would JIT-compile plans that run in milliseconds (43 of a
    56 ms single-security tick at 1,000,000 facilities): the portal's connections turn it off."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
