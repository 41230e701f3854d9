"""The audit trail, usable: housekeeping hidden by default, action substring, links to records, HKT, export,
a constant number of queries."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.audit import SYSTEM, audit_log

pytestmark = pytest.mark.django_db


def _write(n: int, *, actor=SYSTEM, action="risk.book.revalued", object_type="risk.revaluationrun", after=None):
    with transaction.atomic():
        for i in range(n):
            audit_log(actor=actor, action=action, object_type=object_type, object_id=str(i + 1), after=after)


def test_system_housekeeping_is_hidden_unless_asked_for(client, compliance_user, officer):
    _write(3)
    _write(1, action="lending.price.loaded", object_type="lending.price")
    _write(1, action="risk.reference_price.changed", object_type="lending.currentprice")  # 32 of the first 50 rows in the demo
    _write(1, actor=officer, action="lending.price.entered", object_type="lending.price")
    client.force_login(compliance_user)
    shown = {e.action for e in client.get("/workbench/audit/").context["page"]}
    assert "risk.book.revalued" not in shown and "lending.price.loaded" not in shown and "risk.reference_price.changed" not in shown
    assert "lending.price.entered" in shown, "a person's price entry is never noise"
    everything = {e.action for e in client.get("/workbench/audit/", {"include_system": "on"}).context["page"]}
    assert {"risk.book.revalued", "lending.price.loaded"} <= everything


def test_action_search_matches_a_substring(client, compliance_user, alice, credit_manager):
    from lending.reporting import services

    services.capital_propose(actor=credit_manager, as_of=datetime(2026, 11, 30).date(), liquid_capital="1", source_reference="x", reason="y")
    client.force_login(compliance_user)
    actions = {e.action for e in client.get("/workbench/audit/", {"action": "capital"}).context["page"]}
    assert actions == {"reporting.capital.proposed"}


def test_each_row_links_to_its_record_and_shows_hong_kong_time(client, compliance_user, alice):
    from lending.reporting import services

    complaint = services.complaint_log(actor=alice, subject="s", details="d")
    client.force_login(compliance_user)
    with transaction.atomic():
        audit_log(actor=SYSTEM, action="risk.price_override.set", object_type="risk.priceoverride", object_id="1",
                  after={"expires_at": datetime(2026, 11, 30, 8, 0, tzinfo=UTC)})
    page = client.get("/workbench/audit/").content.decode()
    assert f'href="/reporting/complaints/{complaint.pk}/"' in page
    assert "2026-11-30T16:00:00+08:00" in page and "08:00:00Z" not in page
    assert "Time (HKT)" in page


def test_audit_export_holds_the_filtered_rows(client, compliance_user, officer):
    _write(2)
    _write(2, actor=officer, action="lending.watchlist.added", object_type="lending.watchlistentry")
    client.force_login(compliance_user)
    response = client.get("/reporting/export/audit.csv", {"action": "watchlist"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 3 and {r[3] for r in rows[1:]} == {"lending.watchlist.added"}
    # The export itself is on the record.
    assert client.get("/workbench/audit/", {"action": "export"}).context["page"][0].after["filters"] == {"action": ["watchlist"]}


def test_a_mistyped_filter_exports_no_rows(client, compliance_user, officer):
    _write(2, actor=officer, action="lending.watchlist.added", object_type="lending.watchlistentry")
    client.force_login(compliance_user)
    body = b"".join(client.get("/reporting/export/audit.csv", {"since": "31/02/2026"}).streaming_content).decode("utf-8-sig")
    assert len(body.strip().splitlines()) == 1


def _queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params or {}).status_code == 200
    return len(ctx.captured_queries)


def test_audit_trail_query_count_is_constant(client, compliance_user, officer):
    client.force_login(compliance_user)
    _write(5, actor=officer, action="lending.watchlist.added", object_type="lending.facility")
    small = _queries(client, "/workbench/audit/")
    _write(60, actor=officer, action="lending.watchlist.added", object_type="lending.facility")
    large = _queries(client, "/workbench/audit/")
    assert small == large == 8


def test_a_price_overrides_record_name_reads_hong_kong_time():
    """The override's name (the audit row's Record column, the admin) read UTC when loaded from the
    database while its page read HKT: the same expiry now reads the same everywhere."""
    from decimal import Decimal

    from lending.risk.models import PriceOverride

    override = PriceOverride(asset="BTC", price_hkd=Decimal("750000.00"), expires_at=datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    assert str(override) == "BTC override HK$750000.00 until 2026-12-01 10:00 HKT"


def test_audit_rows_of_every_reporting_register_link_to_their_record(client, alice, credit_manager, compliance_user, compliance2):
    from datetime import date

    from lending.reporting import services
    from portal.selectors import record_link

    entry = services.capital_propose(actor=credit_manager, as_of=date(2026, 11, 30), liquid_capital="1000000", source_reference="FRR", reason="r")
    group = services.client_group_create(actor=credit_manager, name="G", basis="family", description="d")
    member = services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=alice, relationship="r", reason="r",
                                                  effective_from=date(2026, 11, 1))
    from lending.reporting.models import DisposalRequest

    disposal = DisposalRequest.objects.create(record_type="risk.margincall", record_ids=[1], reason="past retention", requested_by=compliance_user)
    client.force_login(compliance_user)
    for object_type, pk, lands in (
        ("reporting.capitalentry", entry.pk, f"/reporting/capital/#entry-{entry.pk}"),
        ("reporting.relatedclientgroup", group.pk, f"/reporting/groups/{group.pk}/"),
        ("reporting.groupmembership", member.pk, f"/reporting/groups/{group.pk}/#membership-{member.pk}"),
        ("reporting.disposalrequest", disposal.pk, f"/reporting/retention/#disposal-{disposal.pk}"),
    ):
        link = record_link(object_type, str(pk))
        assert link, object_type
        response = client.get(link)
        if response.status_code == 302:
            assert response["Location"] == lands, object_type
        else:
            assert link == lands and response.status_code == 200, object_type
