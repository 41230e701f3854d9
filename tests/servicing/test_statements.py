"""Statements of account: content checked in the PDF's own text, both languages, kept exactly, issued by a resumable job."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from lending.servicing import interest, statements
from lending.servicing.models import ActivityStatementElection, Statement, StatementBatch, StatementJob
from portal.pdf import pdf_text
from tests.servicing.conftest import make_facility, old_facility, post

pytestmark = pytest.mark.django_db

NOV = (date(2025, 11, 1), date(2025, 11, 30))


def _november(alice):
    facility = make_facility(alice, securities=(("10000000", "0.30"),), btc="2")  # 7,000,000 + 2 × 760,000 × 40%
    post(facility, "drawdown", "1000000.00", date(2025, 11, 3))
    post(facility, "repayment", "250000.00", date(2025, 11, 20))
    day = NOV[0]
    while day <= NOV[1]:
        interest.accrue_day(day=day)
        day += timedelta(days=1)
    interest.post_month(period_end=NOV[1])
    return facility


def test_a_monthly_statement_shows_balances_movements_collateral_totals_ratio_and_calls(alice, prime):
    facility = _november(alice)
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    text = pdf_text(bytes(statement.pdf))
    assert "Monthly statement of account" in text and statement.number in text
    assert "Opening balance owed" in text and "HK$0.00" in text
    for needle in ("Drawdown", "1,000,000.00", "Repayment", "250,000.00", "Interest posted", "INT-202511"):
        assert needle in text, needle
    # Each collateral: quantity, price, market value, haircut and margin value; totals and the margin ratio.
    assert "Bitcoin 2 760,000.00" in text.replace("\n", " ")  # a quantity as people read it: 2 coins, not 2.00000000
    for needle in ("Bitcoin", "760,000.00", "1,520,000.00", "60%", "608,000.00",
                   "10,000,000.00", "30%", "7,000,000.00", "11,520,000.00", "7,608,000.00"):
        assert needle in text, needle
    closing = statement.closing_balance
    interest_total = Decimal("226.03") * 17 + Decimal("169.52") * 11  # 3–19 Nov on 1m, 20–30 Nov on 750k
    assert closing == Decimal("750000.00") + interest_total
    ratio = (closing / Decimal("7608000.00") * 100).quantize(Decimal("0.01"))
    assert f"{ratio}%" in text
    assert "Margin calls" in text and "Disposals of collateral" in text
    assert statement.due_by == date(2025, 12, 9)  # 7th HK business day of December 2025


def test_the_statement_is_in_the_clients_language(alice, prime):
    alice.preferred_language = "zh-hant"
    alice.save(update_fields=["preferred_language"])
    facility = _november(alice)
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    assert statement.language == "zh-hant"
    text = pdf_text(bytes(statement.pdf))
    assert "月結單" in text and "保證金比率" in text and "抵押品" in text
    assert 'lang="zh-hant"' in statement.html


def test_an_issued_statement_is_kept_exactly(alice, prime):
    import hashlib

    facility = _november(alice)
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    assert statement.pdf_sha256 == hashlib.sha256(bytes(statement.pdf)).hexdigest()
    assert statement.html_sha256 == hashlib.sha256(statement.html.encode()).hexdigest()
    with pytest.raises(ValueError):
        statement.save()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE servicing_statement SET closing_balance = 0 WHERE id = %s", [statement.pk])
    # Issuing again returns the one already issued.
    assert statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1]).pk == statement.pk


def test_activity_statements_go_to_facilities_with_activity_unless_a_pi_elected_out(alice, charlie, prime):
    active = old_facility(alice)
    quiet = old_facility(charlie)
    waived = old_facility(charlie)
    day = date(2025, 11, 3)
    post(active, "drawdown", "1000.00", day)
    post(waived, "drawdown", "1000.00", day)
    interest.terms_ensure()
    ActivityStatementElection.objects.create(client=charlie, text="PI election", language="en")  # services: test_statement_election
    assert statements.target_ids(kind="activity", period_start=day, period_end=day, after_id=0, limit=100) == [active.pk]
    assert quiet.pk in statements.target_ids(kind="monthly", period_start=NOV[0], period_end=NOV[1], after_id=0, limit=100)
    job, _ = statements.job_start(kind="activity", period_start=day, period_end=day)
    while statements.job_step(job_id=job.pk):
        pass
    s = Statement.objects.get()
    assert s.facility_id == active.pk and s.due_by == date(2025, 11, 5)
    assert "Activity statement" in pdf_text(bytes(s.pdf))


def test_the_job_issues_every_statement_once_and_resumes_after_a_dead_worker(alice, charlie, prime):
    facilities = [old_facility(alice if i % 2 else charlie) for i in range(7)]
    for f in facilities:
        post(f, "drawdown", "1000.00", date(2025, 11, 3))
    job, _ = statements.job_start(kind="monthly", period_start=NOV[0], period_end=NOV[1])
    # A worker claims the first batch and dies before writing it.
    dead = statements._claim(StatementJob.objects.get(pk=job.pk), batch_size=3, now=timezone.now())
    assert dead.pk and (dead.lo, dead.hi) == (0, facilities[2].pk)
    # Others carry on; the dead batch is re-claimed once its lease expires.
    while statements.job_step(job_id=job.pk, batch_size=3):
        pass
    assert Statement.objects.count() == 4
    StatementBatch.objects.filter(pk=dead.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    while statements.job_step(job_id=job.pk, batch_size=3):
        pass
    job.refresh_from_db()
    assert job.status == "done" and job.issued == 7
    assert sorted(Statement.objects.values_list("facility_id", flat=True)) == sorted(f.pk for f in facilities)
    assert StatementBatch.objects.get(pk=dead.pk).attempts == 2
    # A rerun writes nothing more.
    assert statements.job_step(job_id=job.pk) is False
    assert Statement.objects.count() == 7


def test_statement_due_dates_skip_good_friday_like_margin_call_deadlines():
    """One Hong Kong business-day calendar: Good Friday (a general holiday) is no business day for a
    statement's due date any more than for a margin call's cure deadline."""
    from datetime import date, datetime

    from lending.risk.revaluation import HK, cure_deadline
    from lending.servicing.services import next_business_day

    # 2026-04-03 Good Friday, 04-04 Saturday, 04-05 Sunday (Ching Ming), 04-06 Easter Monday, 04-07 the
    # day after Ching Ming: the next business day after 2 April is 8 April.
    assert next_business_day(date(2026, 4, 2), 1) == date(2026, 4, 8)
    assert cure_deadline(opened_at=datetime(2026, 4, 2, 12, tzinfo=HK), business_days=1).date() == date(2026, 4, 8)


def test_the_statement_states_its_facts_and_margin_figures_in_few_boxes(alice, prime):
    """The heading facts are lines of one paragraph (a label, the language's separator, the value), the margin
    figures sit with the balances, and an empty section is one sentence rather than a table."""
    facility = _november(alice)
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    text = pdf_text(bytes(statement.pdf))
    assert f"Statement number: {statement.number}" in text
    assert "Margin value counted" in text and "Margin ratio" in text and "7,608,000.00" in text
    assert "None in this period." in text  # no margin call, no disposal
    assert statement.html.count("<table") == 3  # balances with margin figures, movements, collateral
    assert "Please check this statement and tell us of any error within 14 days" in text
    assert "accrued daily on the balance at the end of each day ÷ 365" in text  # the interest terms


def test_a_chinese_statement_separates_labels_with_a_full_width_colon(alice, prime):
    alice.preferred_language = "zh-hant"
    alice.save(update_fields=["preferred_language"])
    facility = _november(alice)
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    assert f"結單編號：{statement.number}" in pdf_text(bytes(statement.pdf))


def test_the_movements_balance_runs_from_opening_to_closing_in_value_date_order(alice, prime):
    """Entries booked out of value-date order (a late booking of an earlier day, and of a day before the
    period): each row's balance is the opening balance plus the period's movements up to it, by value
    date, so the last row's balance is the closing balance, not the ledger's balance after each booking."""
    import re

    facility = old_facility(alice)
    post(facility, "drawdown", "1000000.00", date(2025, 11, 10))
    post(facility, "drawdown", "500000.00", date(2025, 11, 3))  # booked later, an earlier value date
    post(facility, "repayment", "200000.00", date(2025, 11, 20))
    post(facility, "drawdown", "100000.00", date(2025, 10, 15))  # booked last, before the period
    statement = statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    rows = re.findall(r"<tr><td>(2025-11-\d\d)</td>.*?<td class=\"num\">([\d,.]+)</td></tr>", statement.html)
    assert rows == [("2025-11-03", "600,000.00"), ("2025-11-10", "1,600,000.00"), ("2025-11-20", "1,400,000.00")]
    text = pdf_text(bytes(statement.pdf)).replace("\n", " ")
    assert "1,400,000.00" in text and "1,500,000.00" not in text and "1,300,000.00" not in text
    (data,) = statements.build(facility_ids=[facility.pk], kind="monthly", period_start=NOV[0], period_end=NOV[1])
    assert data.opening_balance == Decimal("100000.00") and data.closing_balance == Decimal("1400000.00")
    assert [(m.entry.value_date.day, m.balance) for m in data.entries] == [
        (3, Decimal("600000.00")), (10, Decimal("1600000.00")), (20, Decimal("1400000.00"))]


def test_collateral_is_valued_at_the_period_ends_closing_price_and_the_statement_says_which(opened, eligible_client):
    """Securities lines had an empty Price column, and a statement issued after the period valued the collateral at
    the prices of its issue while saying 'Virtual assets valued at BTC <issue day>'. Each line now shows the price it
    is valued at: the last close on or before the period end where one is kept, otherwise the price at issue, and
    the statement says which."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from lending.models import Facility
    from lending.risk.models import DailyClose

    Facility.objects.filter(pk=opened.pk).update(opened_at=timezone.make_aware(datetime(2025, 1, 1)))
    hk = ZoneInfo("Asia/Hong_Kong")
    DailyClose.objects.create(asset="00005", day=date(2025, 11, 28), price_hkd=Decimal("95"), as_of=datetime(2025, 11, 28, 16, 10, tzinfo=hk))
    DailyClose.objects.create(asset="00005", day=date(2025, 12, 1), price_hkd=Decimal("99"), as_of=datetime(2025, 12, 1, 16, 10, tzinfo=hk))
    (data,) = statements.build(facility_ids=[opened.pk], kind="monthly", period_start=NOV[0], period_end=NOV[1])
    hsbc = next(c for c in data.collateral if c.kind == "securities")
    assert (hsbc.price, hsbc.market_value, hsbc.margin_value) == (Decimal("95"), Decimal("9500000.00"), Decimal("6650000.00"))
    assert hsbc.at_period_end
    btc = next(c for c in data.collateral if c.kind == "virtual_asset")
    assert btc.price == Decimal("760000.00") and not btc.at_period_end  # no close of BTC kept: the price at issue
    statement = statements.issue_one(facility_id=opened.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])
    text = pdf_text(bytes(statement.pdf)).replace("\n", " ")
    assert "100,000 95.00 9,500,000.00" in text
    assert "00005: the last closing price on or before 2025-11-30 (2025-11-28 16:10)" in text
    assert "BTC: no price of the period end is kept; valued at the price when the statement was issued" in text
    assert "Virtual assets valued at" not in text
