"""Every reporting list and page runs the same number of SQL queries at two data sizes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.reporting import services

pytestmark = pytest.mark.django_db


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        assert response.status_code == 200, url
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def _grow(n, *, alice, credit_manager, compliance_user, compliance2):
    for i in range(n):
        c = services.complaint_log(actor=alice, subject=f"s{i}", details="d")
        services.complaint_assign(actor=compliance_user, complaint_id=c.pk, assignee=compliance_user)
        e = services.capital_propose(actor=credit_manager, as_of=date(2026, 11, 1) + timedelta(days=i % 20), liquid_capital=str(1000 + i),
                                     source_reference="FRR", reason="r")
        if i % 2:
            services.capital_approve(actor=compliance_user, entry_id=e.pk)
        d = services.deviation_propose(actor=compliance_user, area="haircuts", benchmark="b", departure="d", justification="j",
                                       compensating_control="c", review_date=date.today() + timedelta(days=30))
        services.deviation_approve(actor=compliance2, deviation_id=d.pk)
        services.record_request_create(actor=compliance_user, client=alice, basis="client", reference=f"R{i}")


# The retention report runs two aggregates per retention rule (a fixed list), whatever the data size.
PAGES = {
    "/reporting/complaints/": 10, "/reporting/capital/": 12, "/reporting/deviations/": 9, "/reporting/record-requests/": 9,
    "/reporting/retention/": 36, "/reporting/snapshots/": 8, "/reporting/band-changes/": 8,
    "/reporting/export/complaints.csv": 11,
}
# The export's audit row takes the audit chain's advisory lock: one statement more on PostgreSQL.
EXPORT_LOCK = {"postgresql": 1}


def test_reporting_pages_run_constant_queries(client, alice, credit_manager, compliance_user, compliance2):
    client.force_login(compliance_user)
    _grow(2, alice=alice, credit_manager=credit_manager, compliance_user=compliance_user, compliance2=compliance2)
    small = {url: _queries(client, url) for url in PAGES}
    _grow(12, alice=alice, credit_manager=credit_manager, compliance_user=compliance_user, compliance2=compliance2)
    large = {url: _queries(client, url) for url in PAGES}
    assert small == large
    expected = dict(PAGES)
    expected["/reporting/export/complaints.csv"] += EXPORT_LOCK.get(connection.vendor, 0)
    assert small == expected


def test_complaint_page_and_client_pages_run_constant_queries(client, alice, compliance_user, compliance2):
    c = services.complaint_log(actor=alice, subject="s", details="d")
    client.force_login(compliance_user)
    first = _queries(client, f"/reporting/complaints/{c.pk}/")
    for i in range(10):
        services.complaint_log(actor=alice, subject=f"more {i}", details="d")
    assert _queries(client, f"/reporting/complaints/{c.pk}/") == first
    client.force_login(alice)
    mine = _queries(client, "/reporting/my-complaints/")
    services.complaint_log(actor=alice, subject="again", details="d")
    assert _queries(client, "/reporting/my-complaints/") == mine


def _snapshots_and_band_changes(facilities, days):
    from django.utils import timezone

    from lending.risk import services as risk_services
    from lending.risk.models import BandChange

    for day in days:
        risk_services.snapshots_take(day=day)
    BandChange.objects.bulk_create([
        BandChange(facility=f, client=f.client, from_band="healthy", to_band="watch", drawn_balance=f.drawn_balance, market_value=0,
                   va_market_value=0, lending_value=0, utilisation="0.95", at=timezone.now()) for f in facilities
    ])


def test_risk_record_pages_and_packs_run_constant_queries(client, compliance_user, alice, charlie, book):
    from tests.reporting.conftest import make_facility

    client.force_login(compliance_user)
    first = [make_facility(alice, drawn="1000")]
    _snapshots_and_band_changes(first, [date(2026, 11, 1)])
    services.smf_pack_generate(actor=compliance_user, as_of=date(2026, 11, 1))
    urls = ["/reporting/snapshots/", "/reporting/band-changes/", "/reporting/packs/", "/reporting/snapshots/?day_from=2026-11-01&search=alice"]
    small = {url: _queries(client, url) for url in urls}
    more = [make_facility(charlie, drawn="2000") for _ in range(4)]
    _snapshots_and_band_changes(more, [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)])
    services.smf_pack_generate(actor=compliance_user, as_of=date(2026, 11, 4))
    services.smf_pack_generate(actor=compliance_user, as_of=date(2026, 11, 4))
    large = {url: _queries(client, url) for url in urls}
    assert small == large
    pack = services.smf_pack_generate(actor=compliance_user, as_of=date(2026, 11, 4))
    assert _queries(client, f"/reporting/packs/{pack.pk}/") == 8
