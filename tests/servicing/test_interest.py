"""Daily interest: actual/365, half up to the cent, across month ends, leap years and rate changes; idempotent."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from lending.ledger import ledger_check
from lending.models import Facility, FacilityTransaction
from lending.servicing import interest
from lending.servicing.models import AccrualDay, InterestAccrual, InterestPosting
from tests.servicing.conftest import make_facility, post
from tests.servicing.helpers import fixing

pytestmark = pytest.mark.django_db


def _days(start: date, end: date):
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def _accrue(start: date, end: date):
    for day in _days(start, end):
        interest.accrue_day(day=day)


def test_one_day_is_balance_times_rate_over_365_rounded_half_up(alice, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "1000000.00", date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 3))
    row = InterestAccrual.objects.get(facility=facility, day=date(2025, 11, 3))
    assert row.annual_rate == Decimal("0.082500")
    assert row.balance == Decimal("1000000.00")
    # 1,000,000 × 8.25% ÷ 365 = 226.027397…
    assert row.amount == Decimal("226.03") == interest.daily_interest(balance=Decimal("1000000"), annual_rate=Decimal("0.0825"))


def test_an_exact_half_cent_rounds_up_not_to_even(alice, book, officer, officer2):
    # Prime 0.65% + 3% = 3.65%: HK$50 × 3.65% ÷ 365 = HK$0.005 exactly.
    fixing(rate="0.006500", effective=date(2025, 1, 1), maker=officer, checker=officer2)
    facility = make_facility(alice)
    post(facility, "drawdown", "50.00", date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 3))
    assert InterestAccrual.objects.get(facility=facility).amount == Decimal("0.01")
    assert interest.daily_interest(balance=Decimal("50"), annual_rate=Decimal("0.0365")) == Decimal("0.01")


def test_the_sql_and_the_pure_rule_agree_on_many_balances(alice, charlie, prime):
    balances = ["0.01", "1.00", "999.99", "123456.78", "5000000.00", "73.15", "987654321.09"]
    facilities = []
    for i, amount in enumerate(balances):
        f = make_facility(alice if i % 2 else charlie)
        post(f, "drawdown", amount, date(2025, 11, 3))
        facilities.append((f, Decimal(amount)))
    interest.accrue_day(day=date(2025, 11, 3))
    for f, balance in facilities:
        assert InterestAccrual.objects.get(facility=f).amount == interest.daily_interest(balance=balance, annual_rate=Decimal("0.0825"))


def test_a_drawdown_accrues_from_its_value_date_and_a_repayment_stops_it(alice, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 5))
    post(facility, "repayment", "365000.00", date(2025, 11, 8))
    _accrue(date(2025, 11, 1), date(2025, 11, 10))
    days = list(InterestAccrual.objects.filter(facility=facility).order_by("day").values_list("day", "amount"))
    # 365,000 × 8.25% ÷ 365 = 82.50 a day on 5, 6 and 7 November; nothing on the day it is repaid.
    assert days == [(date(2025, 11, 5), Decimal("82.50")), (date(2025, 11, 6), Decimal("82.50")), (date(2025, 11, 7), Decimal("82.50"))]


def test_month_end_posting_adds_the_month_to_the_balance_which_then_bears_interest(alice, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "1000000.00", date(2025, 11, 1))
    _accrue(date(2025, 11, 1), date(2025, 11, 30))
    result = interest.post_month(period_end=date(2025, 11, 30))
    assert result.facilities == 1 and result.total == Decimal("226.03") * 30
    entry = FacilityTransaction.objects.get(facility=facility, kind="interest")
    assert entry.value_date == date(2025, 11, 30) and entry.amount == Decimal("6780.90")
    assert entry.balance_after == Decimal("1006780.90") == Facility.objects.get(pk=facility.pk).drawn_balance
    interest.accrue_day(day=date(2025, 12, 1))
    dec1 = InterestAccrual.objects.get(facility=facility, day=date(2025, 12, 1))
    assert dec1.balance == Decimal("1006780.90") and dec1.amount == interest.daily_interest(balance=Decimal("1006780.90"), annual_rate=Decimal("0.0825"))
    assert not InterestAccrual.objects.filter(posted_on__isnull=True, day__lte=date(2025, 11, 30)).exists()
    assert ledger_check().ok


def test_posted_interest_counts_in_utilisation_and_can_open_a_margin_call(alice, prime):
    from lending.risk.models import MarginCall

    facility = make_facility(alice, securities=(("1000000", "0.30"),))  # lending value 700,000
    post(facility, "drawdown", "699000.00", date(2025, 11, 1))  # 99.86%: below the 100% call level
    _accrue(date(2025, 11, 1), date(2025, 11, 30))
    interest.post_month(period_end=date(2025, 11, 30))
    facility.refresh_from_db()
    assert facility.drawn_balance > Decimal("700000")
    assert facility.band == "margin_call" and facility.has_open_margin_call
    assert MarginCall.objects.filter(facility=facility, state="open").count() == 1


def test_posting_restores_the_stored_utilisation_of_a_facility_that_stays_in_its_band(alice, prime):
    """The engine's rule (lending.risk.revaluation.utilisation_after_posting): the new balance over the stored lending value."""
    from lending.risk.revaluation import revalue_facility

    facility = make_facility(alice, securities=(("1000000", "0.30"),))  # lending value 700,000
    post(facility, "drawdown", "100000.00", date(2025, 11, 1))
    revalue_facility(facility_id=facility.pk)
    assert Facility.objects.get(pk=facility.pk).utilisation == Decimal("0.1429")
    _accrue(date(2025, 11, 1), date(2025, 11, 30))
    interest.post_month(period_end=date(2025, 11, 30))
    facility.refresh_from_db()
    assert facility.band == "healthy" and facility.lending_value == Decimal("700000.00")
    assert facility.drawn_balance == Decimal("100000.00") + 30 * Decimal("22.60")  # 100,000 × 8.25% ÷ 365 = 22.602…
    assert facility.utilisation == (facility.drawn_balance / Decimal("700000")).quantize(Decimal("0.0001"))


def test_a_leap_year_february_has_29_days_each_at_365ths(alice, prime, time_machine):
    time_machine.move_to("2028-03-02 09:00:00+08:00")
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2028, 2, 1))
    _accrue(date(2028, 2, 1), date(2028, 2, 29))
    assert InterestAccrual.objects.filter(facility=facility).count() == 29
    result = interest.post_month(period_end=date(2028, 2, 29))
    assert result.total == Decimal("82.50") * 29
    assert FacilityTransaction.objects.get(facility=facility, kind="interest").value_date == date(2028, 2, 29)


def test_a_rate_change_applies_from_its_effective_date(alice, prime, officer, officer2):
    fixing(rate="0.057500", effective=date(2025, 11, 15), maker=officer, checker=officer2)  # prime +0.5%
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 1))
    _accrue(date(2025, 11, 13), date(2025, 11, 16))
    rows = dict(InterestAccrual.objects.filter(facility=facility).values_list("day", "amount"))
    assert rows[date(2025, 11, 14)] == Decimal("82.50")  # 8.25%
    assert rows[date(2025, 11, 15)] == Decimal("87.50")  # 8.75%
    assert InterestAccrual.objects.get(facility=facility, day=date(2025, 11, 15)).annual_rate == Decimal("0.087500")


def test_a_rerun_never_doubles_and_a_missed_day_catches_up_on_that_days_balance(alice, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 1))
    interest.accrue_through(last_day=date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 3))  # a rerun of a day already done
    assert InterestAccrual.objects.filter(facility=facility).count() == 3
    # The job misses days 4–9; a repayment is value-dated 6 November meanwhile.
    post(facility, "repayment", "182500.00", date(2025, 11, 6))
    interest.accrue_through(last_day=date(2025, 11, 9))
    rows = dict(InterestAccrual.objects.filter(facility=facility).values_list("day", "amount"))
    assert rows[date(2025, 11, 5)] == Decimal("82.50") and rows[date(2025, 11, 6)] == Decimal("41.25")
    assert AccrualDay.objects.count() == 9
    interest.accrue_through(last_day=date(2025, 11, 9))
    assert InterestAccrual.objects.filter(facility=facility).count() == 9


def test_the_periodic_job_accrues_and_posts_once(alice, prime, time_machine):
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 28))
    time_machine.move_to("2025-12-02 01:00:00+08:00")
    first = interest.interest_run()
    assert first["posted"] == ["2025-11-30"]
    second = interest.interest_run()
    assert second == {"accrued_days": [], "posted": []}
    assert InterestPosting.objects.count() == 1
    assert FacilityTransaction.objects.filter(kind="interest").count() == 1
    assert FacilityTransaction.objects.get(kind="interest").amount == Decimal("82.50") * 3  # 28, 29, 30 November
    # A second posting for the same day is refused by the database too.
    assert interest.post_month(period_end=date(2025, 11, 30)) is None


def test_a_catch_up_across_a_month_end_posts_the_month_before_accruing_the_next(alice, prime, time_machine):
    """The job missed October's end: catching up on 7 November accrues to 31 October, posts October, and
    only then accrues 1–6 November, on the balance with October's interest in it, as the day-by-day run does
    (it accrued them on 15,000.00, without October's interest)."""
    facility = make_facility(alice)
    post(facility, "drawdown", "15000.00", date(2025, 10, 1))
    time_machine.move_to("2025-11-07 01:00:00+08:00")
    result = interest.interest_run()
    assert result["posted"] == ["2025-10-31"] and len(result["accrued_days"]) == 37
    october = interest.daily_interest(balance=Decimal("15000.00"), annual_rate=Decimal("0.0825"))
    assert october == Decimal("3.39")
    with_october = Decimal("15000.00") + october * 31
    daily = [(day, Decimal("15000.00"), october) for day in _days(date(2025, 10, 1), date(2025, 10, 31))] + [
        (day, with_october, interest.daily_interest(balance=with_october, annual_rate=Decimal("0.0825")))
        for day in _days(date(2025, 11, 1), date(2025, 11, 6))]
    assert list(InterestAccrual.objects.filter(facility=facility).order_by("day").values_list("day", "balance", "amount")) == daily
    assert daily[-1][2] == Decimal("3.41")  # 15,105.09 × 8.25% ÷ 365
    assert list(FacilityTransaction.objects.filter(facility=facility).order_by("id").values_list("kind", "value_date", "amount")) == [
        ("drawdown", date(2025, 10, 1), Decimal("15000.00")), ("interest", date(2025, 10, 31), october * 31)]
    assert not InterestAccrual.objects.filter(day__lte=date(2025, 10, 31), posted_on__isnull=True).exists()
    assert interest.interest_run() == {"accrued_days": [], "posted": []}
    assert ledger_check().ok


def test_no_confirmed_fixing_means_no_accrual_and_a_clear_reason(alice, book, officer):
    from lending.servicing import services

    services.fixing_enter(actor=officer, base_rate="hkd_prime", rate="0.05", effective_date=date(2025, 1, 1), source="x")  # not confirmed
    facility = make_facility(alice)
    post(facility, "drawdown", "1000.00", date(2025, 11, 3))
    with pytest.raises(interest.MissingFixing, match="HKD Prime"):
        interest.accrue_day(day=date(2025, 11, 3))
    assert not InterestAccrual.objects.exists() and not AccrualDay.objects.exists()


def test_a_posting_is_refused_before_the_month_is_accrued(alice, prime):
    from portal.errors import PortalError

    with pytest.raises(PortalError, match="not been accrued"):
        interest.post_month(period_end=date(2025, 11, 30))


def test_a_day_of_a_posted_month_is_refused_and_the_unposted_days_are_read_by_facility(alice, charlie, prime):
    """The accrual key is (day, facility): per-facility reads probe the days after the last posting, so a day
    of a posted month must never be accrued afterwards (its rows would be unposted before that posting)."""
    from lending.servicing import selectors
    from portal.errors import PortalError

    facility, other = make_facility(alice), make_facility(charlie)
    post(facility, "drawdown", "365000.00", date(2025, 11, 1))
    post(other, "drawdown", "730000.00", date(2025, 11, 1))
    _accrue(date(2025, 11, 2), date(2025, 11, 30))
    interest.post_month(period_end=date(2025, 11, 30))
    with pytest.raises(PortalError, match="has been posted"):
        interest.accrue_day(day=date(2025, 11, 1))
    assert not AccrualDay.objects.filter(day=date(2025, 11, 1)).exists()
    _accrue(date(2025, 12, 1), date(2025, 12, 2))
    summary = selectors.facility_interest(facility=facility)
    unposted = InterestAccrual.objects.filter(facility=facility, posted_on__isnull=True)
    assert summary.accrued_to_date == sum((a.amount for a in unposted), Decimal(0)) and unposted.count() == 2
    assert summary.accrued_through == date(2025, 12, 2)
    assert interest.months_to_post(through=date(2025, 12, 31)) == [date(2025, 12, 31)]


def test_overdue_margin_accrues_on_a_shortfall_past_its_cure_deadline(alice, prime):
    from django.utils import timezone

    from lending.risk.models import MarginCall

    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 1))
    opened = timezone.make_aware(timezone.datetime(2025, 11, 3, 10, 0))
    MarginCall.objects.create(facility=facility, client=alice, opened_at=opened, cure_deadline=opened + timedelta(days=2),
                              shortfall=Decimal("36500.00"), shortfall_at_open=Decimal("36500.00"), utilisation=Decimal("1.1"),
                              utilisation_at_open=Decimal("1.1"), lending_value=Decimal("331818.18"), drawn_balance=Decimal("365000"), band="margin_call")
    _accrue(date(2025, 11, 4), date(2025, 11, 6))
    rows = {r.day: r for r in InterestAccrual.objects.filter(facility=facility)}
    assert rows[date(2025, 11, 4)].overdue_amount == Decimal("0.00")  # within the cure period
    assert rows[date(2025, 11, 5)].overdue_amount == Decimal("4.00")  # 36,500 × 4% ÷ 365, deadline passed during the day
    assert rows[date(2025, 11, 6)].overdue_principal == Decimal("36500.00")


def test_interest_left_unpaid_past_the_grace_period_bears_the_overdue_margin(alice, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 1, 1))
    post(facility, "repayment", "1000.00", date(2025, 1, 15))  # paid before any interest was posted: it repays principal
    _accrue(date(2025, 1, 1), date(2025, 1, 31))
    interest.post_month(period_end=date(2025, 1, 31))
    _accrue(date(2025, 2, 1), date(2025, 2, 28))
    interest.post_month(period_end=date(2025, 2, 28))
    january = FacilityTransaction.objects.get(facility=facility, kind="interest", value_date=date(2025, 1, 31)).amount
    _accrue(date(2025, 3, 1), date(2025, 3, 2))
    post(facility, "repayment", "1000.00", date(2025, 3, 3))  # pays the oldest interest first
    _accrue(date(2025, 3, 3), date(2025, 3, 3))
    rows = {a.day: a for a in InterestAccrual.objects.filter(facility=facility, day__gte=date(2025, 3, 1))}
    assert rows[date(2025, 3, 1)].overdue_interest == 0  # January's interest is 29 days old: within the 30-day grace
    assert rows[date(2025, 3, 2)].overdue_interest == january  # 30 days: overdue, all of it
    assert rows[date(2025, 3, 2)].overdue_amount == interest.daily_interest(balance=january, annual_rate=Decimal("0.04"))
    assert rows[date(2025, 3, 3)].overdue_interest == january - Decimal("1000.00")
    entries = list(FacilityTransaction.objects.filter(facility=facility).order_by("value_date", "id"))
    for day, row in rows.items():  # the SQL and the pure rule agree
        assert row.overdue_interest == interest.overdue_interest_on(entries, day=day, grace_days=30), day
    post(facility, "repayment", "5000.00", date(2025, 3, 4))  # more than all the interest posted
    _accrue(date(2025, 3, 4), date(2025, 3, 4))
    assert InterestAccrual.objects.get(facility=facility, day=date(2025, 3, 4)).overdue_interest == 0
    assert ledger_check().ok


def test_the_grace_for_unpaid_interest_is_the_facility_policy_number(alice, prime, officer, credit_manager):
    """A policy with 45 days: January's interest, posted on 31 January, is not overdue on 2 March (30 days)
    but is on 17 March (45 days); the SQL and the pure rule agree on every day."""
    from tests.servicing.helpers import servicing_policy_in_force

    policy = servicing_policy_in_force(officer=officer, credit_manager=credit_manager, unpaid_interest_grace_days=45)
    assert policy.unpaid_interest_grace_days == 45
    facility = make_facility(alice)
    interest.terms_ensure()
    from lending.servicing.models import FacilityTerms

    assert FacilityTerms.objects.get(facility_id=facility.pk).policy_id == policy.pk
    post(facility, "drawdown", "365000.00", date(2025, 1, 1))
    _accrue(date(2025, 1, 1), date(2025, 1, 31))
    interest.post_month(period_end=date(2025, 1, 31))
    _accrue(date(2025, 2, 1), date(2025, 2, 28))
    interest.post_month(period_end=date(2025, 2, 28))
    _accrue(date(2025, 3, 1), date(2025, 3, 18))
    january = FacilityTransaction.objects.get(facility=facility, kind="interest", value_date=date(2025, 1, 31)).amount
    rows = {a.day: a for a in InterestAccrual.objects.filter(facility=facility, day__gte=date(2025, 3, 1))}
    assert rows[date(2025, 3, 2)].overdue_interest == 0  # overdue after 30 days under the old terms, not these
    assert rows[date(2025, 3, 16)].overdue_interest == 0  # 44 days
    assert rows[date(2025, 3, 17)].overdue_interest == january  # 45 days
    entries = list(FacilityTransaction.objects.filter(facility=facility).order_by("value_date", "id"))
    for day, row in rows.items():
        assert row.overdue_interest == interest.overdue_interest_on(entries, day=day, grace_days=45), day


@pytest.mark.parametrize("days", ["0", "91", "30.5", "thirty"])
def test_a_grace_period_outside_whole_days_1_to_90_is_refused(book, officer, days):
    from lending.servicing import services
    from lending.servicing.models import ServicingPolicy
    from portal.errors import PortalError
    from tests.servicing.helpers import SERVICING_NUMBERS

    before = ServicingPolicy.objects.count()
    with pytest.raises(PortalError) as exc:
        services.servicing_policy_propose(actor=officer, numbers={**SERVICING_NUMBERS, "unpaid_interest_grace_days": days}, reason="grace")
    assert "unpaid_interest_grace_days" in exc.value.fields
    assert ServicingPolicy.objects.count() == before
