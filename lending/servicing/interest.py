"""Daily interest for the whole book, set-based, and its monthly posting to the ledger.

How interest is computed (stated in every facility letter and on every statement):

* each calendar day's interest = the drawn balance at the end of that day (Hong Kong time)
  × the annual rate ÷ 365 (actual/365 fixed, the Hong Kong dollar convention: a leap year's
  29 February accrues one more day at the same ÷ 365), rounded half up to the cent;
* the annual rate = the base rate fixing in effect that day + the margin of the facility's tier;
* a margin-call shortfall still unmet after its cure deadline, and interest posted to the balance
  more than the grace period of the facility's servicing policy (``unpaid_interest_grace_days``, stated
  in its letter) ago and still unpaid, accrue in addition the overdue
  margin on their sum, computed and rounded the same way. Repayments pay interest first, oldest
  first, so the unpaid interest after the ledger's entries is the reflected running sum
  U = S − min(0, min S_k) of S = posted interest − repayments (``unpaid_interest``), and the part
  of it older than the grace period is U less the interest posted within it; the whole balance of
  a debt left after a close-out sold every collateral (``lending.recovery``) bears the overdue
  margin instead, from the day after it was due;
* the month's daily amounts are added to the drawn balance on the month's last day (one ledger
  entry), after which they count in utilisation and themselves bear interest.

One day for the whole book is one ``INSERT … SELECT`` into ``servicing_interestaccrual``, whose
unique (day, facility) makes a rerun insert nothing; the balance is read from the ledger as of
that day (the sum of entries with a value date up to it), so a missed day caught up later
accrues on the balance that day had, not today's. The arithmetic is in integer cents and
millionths of a percent point, so PostgreSQL and SQLite round identically.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.audit import SYSTEM, audit_log
from portal.errors import PortalError

from .models import (
    AccrualDay,
    BaseRate,
    BaseRateFixing,
    FacilityTerms,
    FixingStatus,
    InterestAccrual,
    InterestPosting,
    ServicingPolicy,
)

CENT = Decimal("0.01")
DAYS_IN_YEAR = 365
PPM = 1_000_000  # rates are carried as integer millionths (0.052500 → 52500)
CATCH_UP_MAX_DAYS = 400


def daily_interest(*, balance: Decimal, annual_rate: Decimal) -> Decimal:
    """The pure statement of the rule (the SQL below is its set-based mirror; a test keeps them equal)."""
    return (balance * annual_rate / DAYS_IN_YEAR).quantize(CENT, rounding=ROUND_HALF_UP)


def unpaid_interest(entries) -> Decimal:
    """Interest still unpaid after ``entries`` (ledger entries in order; repayments pay interest first):
    the pure statement of the rule the accrual's SQL computes set-based."""
    running = low = Decimal(0)
    for e in entries:
        if e.kind == "interest":
            running += e.amount
        elif e.delta < 0:
            running += e.delta
        low = min(low, running)
    return running - low


def overdue_interest_on(entries, *, day: date, grace_days: int) -> Decimal:
    """The unpaid interest posted more than ``grace_days`` before ``day`` (entries valued up to ``day``)."""
    upto = [e for e in entries if e.value_date <= day]
    recent = sum((e.amount for e in upto if e.kind == "interest" and e.value_date > day - timedelta(days=grace_days)), Decimal(0))
    return max(Decimal(0), unpaid_interest(upto) - recent)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, dtime.min))
    return start, start + timedelta(days=1)


class MissingFixing(PortalError):
    http_status = 409


def last_posted() -> date | None:
    """The period end of the latest monthly posting: every accrual of a day up to it is posted."""
    return InterestPosting.objects.aggregate(d=Max("period_end"))["d"]


def accrual_days(*, unposted: bool = False, upto: date | None = None, since: date | None = None) -> list[date]:
    """The accrued days that can hold the accruals a per-facility read wants, to probe the (day, facility)
    key with: every accrued day (``since``/``upto`` bound them), or with ``unposted`` only those after the
    latest posting (up to ``upto``: the days still unposted at that date). A day in a posted month is never
    accrued afterwards (``accrue_day`` refuses it), so no row of an earlier day is unposted."""
    days = AccrualDay.objects.all()
    if unposted:
        posted = (InterestPosting.objects.filter(period_end__lte=upto) if upto else InterestPosting.objects).aggregate(d=Max("period_end"))["d"]
        if posted:
            days = days.filter(day__gt=posted)
    if upto:
        days = days.filter(day__lte=upto)
    if since:
        days = days.filter(day__gte=since)
    return list(days.order_by("day").values_list("day", flat=True))


def base_rates_on(day: date) -> dict[str, Decimal]:
    """The confirmed fixing of each base rate in effect on ``day`` (one query)."""
    rates: dict[str, Decimal] = {}
    rows = (BaseRateFixing.objects.filter(status=FixingStatus.CONFIRMED, effective_date__lte=day)
            .order_by("base_rate", "-effective_date", "-id").values_list("base_rate", "rate"))
    for name, rate in rows:
        rates.setdefault(name, rate)
    return rates


def _sql_types() -> tuple[str, str]:
    return ("BIGINT", "NUMERIC") if connection.vendor == "postgresql" else ("INTEGER", "REAL")


def _cents(amount_sql: str, ppm_sql: str, integer: str) -> str:
    # round half up of amount × ppm ÷ (365 × 10^6), in integer cents (amounts are never negative here)
    half = DAYS_IN_YEAR * PPM // 2
    return f"((CAST(ROUND({amount_sql} * 100) AS {integer}) * ({ppm_sql}) + {half}) / {DAYS_IN_YEAR * PPM})"


# Per facility that has interest posted before the grace cutoff: the unpaid interest (reflected running
# sum of interest less repayments, in ledger order) and the interest posted within the grace period of
# the facility's policy. ``grace`` is the earliest cutoff of any policy (a cheap first filter); ``cutoff``
# the facility's own, from its terms' policy.
UNPAID_SQL = """
    SELECT r.facility_id,
           SUM(r.x) - (CASE WHEN MIN(r.s) < 0 THEN MIN(r.s) ELSE 0 END) AS unpaid,
           SUM(CASE WHEN r.kind = 'interest' AND r.value_date > r.cutoff THEN r.x ELSE 0 END) AS recent
    FROM (SELECT e.facility_id, e.kind, e.value_date, g.cutoff,
                 CASE WHEN e.kind = 'interest' THEN e.amount ELSE e.delta END AS x,
                 SUM(CASE WHEN e.kind = 'interest' THEN e.amount ELSE e.delta END)
                     OVER (PARTITION BY e.facility_id ORDER BY e.value_date, e.id ROWS UNBOUNDED PRECEDING) AS s
          FROM lending_facilitytransaction e
          JOIN (SELECT t.facility_id, {cutoff} AS cutoff FROM servicing_facilityterms t
                JOIN servicing_servicingpolicy p ON p.id = t.policy_id) g ON g.facility_id = e.facility_id
          WHERE e.value_date <= %(day)s AND (e.kind = 'interest' OR e.delta < 0)
            AND e.facility_id IN (SELECT facility_id FROM lending_facilitytransaction
                                  WHERE kind = 'interest' AND value_date <= %(grace)s)) r
    GROUP BY r.facility_id
"""


def _cutoff_sql() -> str:
    # the day less the policy's grace days, as a date each database compares with value_date
    if connection.vendor == "postgresql":
        return "(CAST(%(day)s AS DATE) - p.unpaid_interest_grace_days)"
    return "date(%(day)s, '-' || p.unpaid_interest_grace_days || ' days')"


def _execute(sql: str, params) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def terms_ensure(*, now: datetime | None = None) -> int:
    """Every open facility has its terms row: link terms issued with the letter, and give a
    facility that has none the default tier of the servicing policy in force (set-based)."""
    from . import selectors

    now = now or timezone.now()
    with connection.cursor() as cursor:
        # Facility ids are unique in terms, so equal counts mean every facility has its terms: the usual
        # case, answered by two index-only counts instead of anti-joins over the book.
        cursor.execute("SELECT (SELECT COUNT(*) FROM lending_facility) - (SELECT COUNT(*) FROM servicing_facilityterms WHERE facility_id IS NOT NULL)")
        if cursor.fetchone()[0] == 0:
            return 0
    linked = _execute(
        "UPDATE servicing_facilityterms SET facility_id = (SELECT f.id FROM lending_facility f "
        "WHERE f.application_id = servicing_facilityterms.application_id) "
        "WHERE facility_id IS NULL AND application_id IN (SELECT application_id FROM lending_facility)", [])
    policy = selectors.servicing_policy_current()
    if policy is None:
        return linked
    margin = policy.margin_for(policy.default_tier)
    months = int(policy.review_months)
    review = (f"CAST((f.opened_at AT TIME ZONE 'Asia/Hong_Kong') + INTERVAL '{months} months' AS DATE)" if connection.vendor == "postgresql"
              else f"date(f.opened_at, '+8 hours', '+{months} months')")
    created = _execute(
        "INSERT INTO servicing_facilityterms (facility_id, application_id,"  # noqa: S608 (only a computed month count is interpolated)
        " policy_id, base_rate, tier, margin, overdue_margin, "
        "arrangement_fee, liquidation_fee_rate, review_date, notice_reason, created_at) "
        f"SELECT f.id, NULL, %s, %s, %s, %s, %s, 0, %s, {review}, '', %s FROM lending_facility f "
        "WHERE NOT EXISTS (SELECT 1 FROM servicing_facilityterms t WHERE t.facility_id = f.id) "
        "AND NOT EXISTS (SELECT 1 FROM servicing_facilityterms t WHERE t.application_id = f.application_id)",
        [policy.pk, policy.base_rate, policy.default_tier, margin, policy.overdue_margin, policy.liquidation_fee_rate, now])
    return linked + created


@transaction.atomic
def accrue_day(*, day: date, now: datetime | None = None) -> AccrualDay:
    """Accrue ``day``'s interest for every facility with a drawn balance (idempotent)."""
    started = time.perf_counter()
    now = now or timezone.now()
    done = AccrualDay.objects.filter(day=day).first()
    if done is not None:  # the day's rows were inserted with this record, in one transaction: nothing is missing
        return done
    posted = last_posted()
    if posted and day <= posted:  # its rows would be posted with a later month; per-facility reads rely on it (accrual_days)
        raise PortalError("month_posted", _("Interest up to %(day)s has been posted; a day of a posted month cannot be accrued afterwards.")
                          % {"day": posted.isoformat()})
    # The day's record is inserted first: a concurrent run of the same day waits on its unique index and,
    # once this commits, finds the day done. So the rows need no per-row conflict probe; the unique
    # (facility, day) key still refuses any second row.
    try:
        with transaction.atomic():
            record = AccrualDay.objects.create(day=day, created_at=now)
    except IntegrityError:
        return AccrualDay.objects.get(day=day)
    terms_ensure(now=now)
    rates = base_rates_on(day)
    missing = [name for name in BaseRate.values if name not in rates
               and FacilityTerms.objects.filter(base_rate=name, facility_id__isnull=False).exists()]
    if missing:
        raise MissingFixing(
            "missing_fixing",
            _("No confirmed %(names)s fixing is in effect on %(day)s; interest for that day waits until one is entered and confirmed.")
            % {"names": ", ".join(str(BaseRate(m).label) for m in missing), "day": day.isoformat()},
        )
    integer, decimal = _sql_types()
    overdue_interest = "(CASE WHEN COALESCE(u.unpaid, 0) - COALESCE(u.recent, 0) > 0 THEN COALESCE(u.unpaid, 0) - COALESCE(u.recent, 0) ELSE 0 END)"
    base_case = "CASE t.base_rate " + " ".join(f"WHEN '{name}' THEN {int(rate * PPM)}" for name, rate in rates.items()) + " END"
    day_end = _day_bounds(day)[1]
    shortest = ServicingPolicy.objects.aggregate(d=Min("unpaid_interest_grace_days"))["d"] or 1
    params = {"day": connection.ops.adapt_datefield_value(day), "day_end": day_end, "now": now,
              "grace": connection.ops.adapt_datefield_value(day - timedelta(days=shortest))}
    rate_ppm = f"({base_case} + CAST(ROUND(t.margin * {PPM}) AS {integer}))"
    overdue_ppm = f"CAST(ROUND(t.overdue_margin * {PPM}) AS {integer})"
    overdue_sql = "CASE WHEN d.facility_id IS NOT NULL THEN b.balance ELSE COALESCE(c.shortfall, 0) END"
    # A debt's whole balance (unpaid interest included) already bears the overdue margin.
    overdue_interest_sql = f"(CASE WHEN d.facility_id IS NOT NULL THEN 0 ELSE {overdue_interest} END)"
    # Most facilities owe nothing overdue: their three overdue columns are 0 without the numeric arithmetic
    # above (a third of the SELECT's time at 100,000 facilities), which gives 0 for them too.
    none_overdue = "c.facility_id IS NULL AND d.facility_id IS NULL AND u.facility_id IS NULL"
    sql = f"""
        INSERT INTO servicing_interestaccrual
            (facility_id, day, balance, annual_rate, amount, overdue_principal, overdue_interest, overdue_amount, posted_on, created_at)
        SELECT b.facility_id, %(day)s, b.balance, CAST({rate_ppm} AS {decimal}) / {PPM},
               CAST({_cents("b.balance", rate_ppm, integer)} AS {decimal}) / 100,
               CASE WHEN {none_overdue} THEN 0 ELSE {overdue_sql} END,
               CASE WHEN {none_overdue} THEN 0 ELSE {overdue_interest_sql} END,
               CASE WHEN {none_overdue} THEN 0 ELSE
                   CAST({_cents(f"({overdue_sql} + {overdue_interest_sql})", overdue_ppm, integer)} AS {decimal}) / 100 END,
               NULL, %(now)s
        FROM (SELECT facility_id, SUM(delta) AS balance FROM lending_facilitytransaction
              WHERE value_date <= %(day)s GROUP BY facility_id) b
        JOIN servicing_facilityterms t ON t.facility_id = b.facility_id
        LEFT JOIN (SELECT facility_id, MAX(shortfall) AS shortfall FROM risk_margincall
                   WHERE opened_at < %(day_end)s AND cure_deadline < %(day_end)s
                     AND (state IN ('open', 'escalated') OR COALESCE(met_at, resolved_at) >= %(day_end)s)
                   GROUP BY facility_id) c ON c.facility_id = b.facility_id
        LEFT JOIN (SELECT facility_id FROM recovery_debt WHERE state IN ('open', 'in_collections') AND due_on < %(day)s) d
               ON d.facility_id = b.facility_id
        LEFT JOIN ({UNPAID_SQL.format(cutoff=_cutoff_sql())}) u ON u.facility_id = b.facility_id
        WHERE ROUND(b.balance, 2) > 0
    """  # noqa: S608 (only numbers computed here are interpolated)
    count = _execute(sql, params)
    # The day's total from its rows, still unposted, through the index of unposted days: the pages just
    # written, read again from memory (cheaper than RETURNING them through a materialised CTE).
    totals = InterestAccrual.objects.filter(day=day, posted_on__isnull=True).aggregate(amount=Sum("amount"), overdue=Sum("overdue_amount"))
    total = ((totals["amount"] or Decimal(0)) + (totals["overdue"] or Decimal(0))).quantize(CENT)
    record.facilities, record.total = count, total
    record.duration_ms = int((time.perf_counter() - started) * 1000)
    record.save(update_fields=["facilities", "total", "duration_ms"])
    audit_log(actor=SYSTEM, action="servicing.interest.accrued", obj=record,
              after={"day": day.isoformat(), "facilities": count, "total": total, "base_rates": {k: str(v) for k, v in rates.items()}})
    return record


def accrual_start_day() -> date | None:
    """The first day not yet accrued for the book: the day after the last accrued, or the first value date."""
    last = AccrualDay.objects.aggregate(d=Max("day"))["d"]
    if last:
        return last + timedelta(days=1)
    from lending.models import FacilityTransaction

    return FacilityTransaction.objects.aggregate(d=Min("value_date"))["d"]


def accrue_through(*, last_day: date, now: datetime | None = None) -> list[AccrualDay]:
    """Accrue every day from the first missing one up to ``last_day``, a day per transaction."""
    start = accrual_start_day()
    done = []
    if start is None:
        return done
    day = start
    while day <= last_day and len(done) < CATCH_UP_MAX_DAYS:
        done.append(accrue_day(day=day, now=now))
        day += timedelta(days=1)
    return done


@dataclass
class PostingResult:
    period_end: date
    facilities: int
    total: Decimal


@transaction.atomic
def post_month(*, period_end: date, now: datetime | None = None) -> PostingResult | None:
    """Post every unposted accrual up to ``period_end`` to the ledger: one ``interest`` entry per
    facility dated ``period_end``, the drawn balance and utilisation moved by it, then the risk
    engine revalues the book (interest counts in utilisation). Refused until the period is accrued."""
    from lending import locks
    from lending.risk.revaluation import revalue_book, utilisation_after_posting

    now = now or timezone.now()
    if not AccrualDay.objects.filter(day=period_end).exists():
        raise PortalError("not_accrued", _("Interest up to %(day)s has not been accrued yet.") % {"day": period_end.isoformat()})
    if InterestPosting.objects.filter(period_end=period_end).exists():
        return None
    locks.book()  # lending.locks: the book, then facility rows, the audit chain last
    locks.writes(locks.Level.FACILITY)
    # The unposted rows are the days after the last posting (accrue_day refuses a day of a posted month):
    # a range of the (day, facility) key.
    after = connection.ops.adapt_datefield_value(last_posted() or date(1900, 1, 1))
    if connection.vendor == "postgresql":
        _execute("SELECT id FROM lending_facility WHERE id IN (SELECT DISTINCT facility_id FROM servicing_interestaccrual "
                 "WHERE posted_on IS NULL AND day > %s AND day <= %s) ORDER BY id FOR NO KEY UPDATE", [after, period_end])
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM lending_facilitytransaction")
        watermark = cursor.fetchone()[0]
    reference = f"INT-{period_end:%Y%m}"
    narrative = f"Interest to {period_end.isoformat()}"
    p = {"end": connection.ops.adapt_datefield_value(period_end), "now": now, "ref": reference, "narr": narrative, "wm": watermark, "after": after}
    # Entries are inserted in facility order; each one's balance after is the facility's drawn
    # balance (= the sum of its earlier entries) plus the month's interest.
    _execute("""
        INSERT INTO lending_facilitytransaction
            (facility_id, kind, amount, delta, balance_after, value_date, reference, narrative, recorded_by_id, approved_by_id, created_at)
        SELECT s.facility_id, 'interest', s.total, s.total, f.drawn_balance + s.total, %(end)s, %(ref)s, %(narr)s, NULL, NULL, %(now)s
        FROM (SELECT facility_id, SUM(amount + overdue_amount) AS total FROM servicing_interestaccrual
              WHERE posted_on IS NULL AND day > %(after)s AND day <= %(end)s GROUP BY facility_id) s
        JOIN lending_facility f ON f.id = s.facility_id
        WHERE s.total > 0
        ORDER BY s.facility_id
        ON CONFLICT (facility_id, value_date) WHERE kind = 'interest' DO NOTHING
    """, p)
    _execute("""
        UPDATE lending_facility SET
            drawn_balance = drawn_balance + (SELECT e.delta FROM lending_facilitytransaction e
                WHERE e.facility_id = lending_facility.id AND e.kind = 'interest' AND e.value_date = %(end)s AND e.id > %(wm)s)
        WHERE id IN (SELECT facility_id FROM lending_facilitytransaction WHERE kind = 'interest' AND value_date = %(end)s AND id > %(wm)s)
    """, p)
    utilisation_after_posting(
        facilities_sql="SELECT facility_id FROM lending_facilitytransaction WHERE kind = 'interest' AND value_date = %(end)s AND id > %(wm)s",
        params=p)
    _execute("UPDATE servicing_interestaccrual SET posted_on = %(end)s WHERE posted_on IS NULL AND day > %(after)s AND day <= %(end)s", p)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM lending_facilitytransaction "
                       "WHERE kind = 'interest' AND value_date = %(end)s AND id > %(wm)s", p)
        count, total = cursor.fetchone()
    total = Decimal(str(total)).quantize(CENT)
    posting = InterestPosting.objects.create(period_end=period_end, facilities=count, total=total, created_at=now)
    if count:
        revalue_book(trigger="interest")  # bands and margin calls see the new balances in this commit
    audit_log(actor=SYSTEM, action="servicing.interest.posted", obj=posting,
              after={"period_end": period_end.isoformat(), "facilities": count, "total": total, "reference": reference})
    return PostingResult(period_end=period_end, facilities=count, total=total)


def months_to_post(*, through: date) -> list[date]:
    """Month ends up to ``through`` with unposted accruals and no posting yet, oldest first."""
    posted = last_posted()
    unposted = InterestAccrual.objects.filter(posted_on__isnull=True)
    first = (unposted.filter(day__gt=posted) if posted else unposted).aggregate(d=Min("day"))["d"]
    ends = []
    while first and month_end(first) <= through:
        end = month_end(first)
        if not InterestPosting.objects.filter(period_end=end).exists():
            ends.append(end)
        first = end + timedelta(days=1)
    return ends


def interest_run(*, now: datetime | None = None) -> dict:
    """The periodic job: accrue every finished day not yet accrued and post every finished month, a month
    at a time when catching up: a month is posted before the next month's first day accrues, so that day
    accrues on the balance with the month's interest in it (posted interest bears interest), as it does
    when the job runs every day."""
    now = now or timezone.now()
    yesterday = timezone.localdate(now) - timedelta(days=1)
    accrued: list[AccrualDay] = []
    posted: list[PostingResult | None] = []
    while True:
        start = accrual_start_day()
        if start is None:
            break
        # Every month accrued to its end is posted before anything after it accrues.
        posted += [post_month(period_end=end, now=now) for end in months_to_post(through=min(start - timedelta(days=1), yesterday))]
        if start > yesterday or len(accrued) >= CATCH_UP_MAX_DAYS:
            break
        days = accrue_through(last_day=min(month_end(start), yesterday, start + timedelta(days=CATCH_UP_MAX_DAYS - len(accrued) - 1)), now=now)
        if not days:
            break
        accrued += days
    return {"accrued_days": [a.day.isoformat() for a in accrued], "posted": [p.period_end.isoformat() for p in posted if p]}
