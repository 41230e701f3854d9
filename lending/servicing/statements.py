"""Statements of account (Cap. 571Q ss. 8 and 11): built in batches, rendered once, kept exactly.

An activity statement covers one day on which something happened on the account (a ledger
entry, a collateral movement, a margin call); a monthly statement covers a calendar month. Each
shows opening and closing balances, every movement, each collateral's quantity, market value,
haircut and margin value, the totals, the margin ratio, margin calls and disposals.

Issuing a period's statements for the whole book is a ``StatementJob``: workers claim batches of
facility ids by a conditional UPDATE of the job's cursor, build the batch's context with a fixed
number of queries, render each statement's HTML in the client's language and its PDF from that
same HTML (``portal.pdf``), and insert the batch in one transaction. A batch whose worker died
keeps its lease row; once the lease expires another worker re-claims it and writes what is
missing (statements are unique per facility, kind and period), so none is lost or doubled.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from portal.audit import SYSTEM, audit_log
from portal.pdf import html_to_pdf, render_html

from .interest import accrual_days
from .models import (
    ActivityStatementElection,
    FacilityTerms,
    InterestAccrual,
    JobStatus,
    Statement,
    StatementBatch,
    StatementJob,
    StatementKind,
)

BATCH_SIZE = 25
# How long a claimed batch is a worker's before another may re-claim it (a batch renders in seconds).
LEASE = timedelta(seconds=int(os.environ.get("SERVICING_STATEMENT_LEASE_SECONDS", "300")))
TEMPLATE = "servicing/statement.html"
CENT = Decimal("0.01")


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    lo = timezone.make_aware(datetime.combine(start, dtime.min))
    hi = timezone.make_aware(datetime.combine(end + timedelta(days=1), dtime.min))
    return lo, hi


def due_by(*, kind: str, period_end: date) -> date:
    from .services import next_business_day

    return next_business_day(period_end, 7 if kind == StatementKind.MONTHLY else 2)


def statement_number(*, kind: str, facility_id: int, period_end: date) -> str:
    return f"{'MS' if kind == StatementKind.MONTHLY else 'AS'}-{facility_id:06d}-{period_end:%Y%m%d}"


# --- Who gets a statement ------------------------------------------------------------------------


def target_ids(*, kind: str, period_start: date, period_end: date, after_id: int, limit: int, upto: int | None = None) -> list[int]:
    """Facility ids owed a statement for the period, in id order, after ``after_id`` (and up to ``upto``)."""
    from lending.models import Facility, FacilityTransaction
    from lending.risk.models import CollateralTopUp, MarginCall

    lo, hi = _bounds(period_start, period_end)
    qs = Facility.objects.filter(id__gt=after_id, opened_at__lt=hi).filter(Q(closed_at__isnull=True) | Q(closed_at__gte=lo))
    if upto is not None:
        qs = qs.filter(id__lte=upto)
    if kind == StatementKind.ACTIVITY:
        had_activity = (
            Q(id__in=FacilityTransaction.objects.filter(Q(value_date__range=(period_start, period_end)) | Q(created_at__gte=lo, created_at__lt=hi)).values("facility_id"))
            | Q(id__in=CollateralTopUp.objects.filter(created_at__gte=lo, created_at__lt=hi).values("facility_id"))
            | Q(id__in=MarginCall.objects.filter(opened_at__gte=lo, opened_at__lt=hi).values("facility_id"))
        )
        # A professional investor's written election not to receive activity statements (Cap. 571Q).
        waived = ActivityStatementElection.objects.filter(revoked_at__isnull=True).values("client_id")
        qs = qs.filter(had_activity).exclude(client_id__in=waived)
    return list(qs.order_by("id").values_list("id", flat=True)[:limit])


# --- What a statement says -------------------------------------------------------------------------


@dataclass
class CollateralRow:
    label: str
    kind: str
    quantity: Decimal | None
    price: Decimal | None
    market_value: Decimal
    haircut: Decimal
    margin_value: Decimal
    custody_reference: str = ""
    instrument: object = None  # named in the statement's language (Instrument.name_for); else ``label``
    code: str = ""
    price_as_of: datetime | None = None
    at_period_end: bool = False  # valued at the last close on or before the period end (else at the price of issue)


@dataclass
class Movement:
    """One ledger entry of the period with the balance owed after it: the opening balance plus the
    period's movements up to it in value-date order (the ledger's own ``balance_after`` follows booking order)."""

    entry: object
    balance: Decimal


@dataclass
class StatementData:
    facility: object
    client: object
    kind: str
    period_start: date
    period_end: date
    number: str
    due_by: date
    opening_balance: Decimal
    closing_balance: Decimal
    entries: list[Movement] = field(default_factory=list)
    collateral: list[CollateralRow] = field(default_factory=list)
    market_value: Decimal = Decimal(0)
    margin_value_uncapped: Decimal = Decimal(0)
    margin_value: Decimal = Decimal(0)
    va_cap_applied: bool = False
    margin_ratio: Decimal | None = None
    calls: list = field(default_factory=list)
    disposals: list = field(default_factory=list)
    accrued_unposted: Decimal = Decimal(0)
    terms: object = None

    def _valued(self, *, at_period_end: bool) -> list[CollateralRow]:
        """One line per instrument priced, for the note saying which price each is valued at."""
        found: dict[str, CollateralRow] = {}
        for c in self.collateral:
            if c.code and c.price is not None and c.at_period_end == at_period_end:
                found.setdefault(c.code, c)
        return list(found.values())

    @property
    def valued_at_period_end(self) -> list[CollateralRow]:
        return self._valued(at_period_end=True)

    @property
    def valued_at_issue(self) -> list[CollateralRow]:
        return self._valued(at_period_end=False)


def build(*, facility_ids: list[int], kind: str, period_start: date, period_end: date) -> list[StatementData]:
    """The content of each facility's statement for the period (a fixed number of queries for the batch)."""
    from lending import selectors as lending_selectors
    from lending.collateral.selectors import instruments_by_code
    from lending.models import CollateralPosition, Facility, FacilityTransaction
    from lending.risk.models import DailyClose, MarginCall
    from lending.valuation import money, va_cap

    if not facility_ids:
        return []
    lo, hi = _bounds(period_start, period_end)
    facilities = {f.pk: f for f in Facility.objects.filter(pk__in=facility_ids).select_related("client", "policy")}
    opening = dict(FacilityTransaction.objects.filter(facility_id__in=facility_ids, value_date__lt=period_start)
                   .values("facility_id").annotate(total=Sum("delta")).values_list("facility_id", "total"))
    entries = defaultdict(list)
    for e in FacilityTransaction.objects.filter(facility_id__in=facility_ids, value_date__range=(period_start, period_end)).order_by("value_date", "id"):
        entries[e.facility_id].append(e)
    positions = defaultdict(list)
    for p in CollateralPosition.objects.filter(facility_id__in=facility_ids).select_related("instrument").order_by("id"):
        positions[p.facility_id].append(p)
    calls = defaultdict(list)
    for c in MarginCall.objects.filter(facility_id__in=facility_ids, opened_at__lt=hi).filter(
            Q(state__in=("open", "escalated")) | Q(met_at__gte=lo) | Q(resolved_at__gte=lo) | Q(opened_at__gte=lo)).order_by("opened_at"):
        calls[c.facility_id].append(c)
    unposted_days = accrual_days(unposted=True, upto=period_end)  # (day, facility) key: probed by day and facility
    accrued = {} if not unposted_days else dict(InterestAccrual.objects.filter(facility_id__in=facility_ids, day__in=unposted_days)
                   .filter(Q(posted_on__isnull=True) | Q(posted_on__gt=period_end))
                   .values("facility_id").annotate(total=Sum(F("amount") + F("overdue_amount"))).values_list("facility_id", "total"))
    terms = {t.facility_id: t for t in FacilityTerms.objects.filter(facility_id__in=facility_ids)}
    # Each instrument at the last close on or before the period end (DailyClose: the last reference price of each
    # Hong Kong day), else, when none is kept, at its current price: the statement says which.
    codes = {p.asset if p.kind == "virtual_asset" else p.instrument.code for ps in positions.values() for p in ps if p.asset or p.instrument_id}
    last_day = DailyClose.objects.filter(asset=OuterRef("asset"), day__lte=period_end).order_by("-day").values("day")[:1]
    closes = {c.asset: c for c in DailyClose.objects.filter(asset__in=codes, day=Subquery(last_day))}
    instruments = instruments_by_code(codes=codes) if codes else {}
    current = lending_selectors.prices_current()
    out = []
    for fid in facility_ids:
        facility = facilities.get(fid)
        if facility is None:
            continue
        open_bal = money(Decimal(opening.get(fid) or 0))
        rows, running = [], open_bal
        for e in entries.get(fid, []):
            running += e.delta
            rows.append(Movement(entry=e, balance=money(running)))
        close_bal = money(running)
        coll, sec_lv, va_lv, mv_total = [], Decimal(0), Decimal(0), Decimal(0)
        for p in positions.get(fid, []):
            code = p.asset if p.kind == "virtual_asset" else (p.instrument.code if p.instrument_id else "")
            close, now = closes.get(code), current.get(code)
            price, as_of = (close.price_hkd, close.as_of) if close else (now.price_hkd, now.as_of) if now else (None, None)
            # A line booked by value before the instrument master (no quantity to price) keeps its booked value.
            mv = money((p.quantity or Decimal(0)) * price) if price is not None else p.market_value
            mv_lv = money(mv * (1 - p.haircut))
            if p.kind == "securities":
                sec_lv += mv_lv
            else:
                va_lv += mv_lv
            mv_total += mv
            coll.append(CollateralRow(label=p.get_asset_display() if p.asset else (p.description or p.haircut_class), kind=p.kind,
                                      quantity=p.quantity, price=price, market_value=mv, haircut=p.haircut, margin_value=mv_lv,
                                      custody_reference=p.custody_reference, instrument=instruments.get(code), code=code, price_as_of=as_of, at_period_end=close is not None))
        capped_va = va_cap(sec_lv, va_lv, facility.policy.va_max_share)
        margin_value = money(sec_lv + capped_va)
        out.append(StatementData(
            facility=facility, client=facility.client, kind=kind, period_start=period_start, period_end=period_end,
            number=statement_number(kind=kind, facility_id=fid, period_end=period_end), due_by=due_by(kind=kind, period_end=period_end),
            opening_balance=open_bal, closing_balance=close_bal, entries=rows, collateral=coll, market_value=money(mv_total),
            margin_value_uncapped=money(sec_lv + va_lv), margin_value=margin_value, va_cap_applied=capped_va < va_lv,
            margin_ratio=(close_bal / margin_value).quantize(Decimal("0.0001")) if margin_value else None,
            calls=calls.get(fid, []), disposals=[m.entry for m in rows if m.entry.kind == "sale_proceeds"],
            accrued_unposted=money(Decimal(accrued.get(fid) or 0)), terms=terms.get(fid),
        ))
    return out


def language_of(client) -> str:
    return "zh-hant" if (client.preferred_language or "").lower().startswith("zh") else "en"


def render(data: StatementData, *, language: str | None = None) -> tuple[str, bytes]:
    html = render_html(TEMPLATE, {"s": data}, language=language or language_of(data.client))
    return html, html_to_pdf(html)


def _rows(items: list[StatementData], job: StatementJob | None, now: datetime) -> list[Statement]:
    rows = []
    for data in items:
        language = language_of(data.client)
        html, pdf = render(data, language=language)
        rows.append(Statement(
            facility=data.facility, client=data.client, kind=data.kind, period_start=data.period_start, period_end=data.period_end,
            number=data.number, language=language, html=html, pdf=pdf, html_sha256=hashlib.sha256(html.encode()).hexdigest(),
            pdf_sha256=hashlib.sha256(pdf).hexdigest(), closing_balance=data.closing_balance, due_by=data.due_by, issued_at=now, job=job,
        ))
    return rows


# --- The job ------------------------------------------------------------------------------------------


def job_start(*, kind: str, period_start: date, period_end: date) -> tuple[StatementJob, bool]:
    with transaction.atomic():
        job, created = StatementJob.objects.get_or_create(kind=kind, period_end=period_end, defaults={"period_start": period_start})
        if created:
            audit_log(actor=SYSTEM, action="servicing.statements.job_started", obj=job,
                      after={"kind": kind, "period_start": period_start.isoformat(), "period_end": period_end.isoformat()})
    return job, created


def _claim(job: StatementJob, *, batch_size: int, now: datetime) -> StatementBatch | None:
    """Claim the next range of facility ids, or re-claim a batch whose lease expired."""
    stale = StatementBatch.objects.filter(job=job, done_at__isnull=True, lease_until__lt=now).order_by("lo").first()
    if stale and StatementBatch.objects.filter(pk=stale.pk, done_at__isnull=True, lease_until=stale.lease_until).update(
            lease_until=now + LEASE, claimed_at=now, attempts=F("attempts") + 1):
        stale.refresh_from_db()
        return stale
    ids = target_ids(kind=job.kind, period_start=job.period_start, period_end=job.period_end, after_id=job.cursor, limit=batch_size)
    if not ids:
        return None
    if not StatementJob.objects.filter(pk=job.pk, cursor=job.cursor, status=JobStatus.RUNNING).update(
            cursor=ids[-1], batches=F("batches") + 1, updated_at=now):
        return StatementBatch(job=job, lo=-1, hi=-1, lease_until=now)  # another worker moved the cursor: try again
    try:
        return StatementBatch.objects.create(job=job, lo=job.cursor, hi=ids[-1], claimed_at=now, lease_until=now + LEASE)
    except IntegrityError:
        return StatementBatch(job=job, lo=-1, hi=-1, lease_until=now)


def _process(batch: StatementBatch, job: StatementJob, now: datetime) -> int:
    ids = target_ids(kind=job.kind, period_start=job.period_start, period_end=job.period_end, after_id=batch.lo,
                     limit=max(batch.hi - batch.lo, 1), upto=batch.hi)  # (lo, hi] holds at most hi − lo ids
    existing = set(Statement.objects.filter(facility_id__in=ids, kind=job.kind, period_end=job.period_end).values_list("facility_id", flat=True))
    todo = [i for i in ids if i not in existing]
    rows = _rows(build(facility_ids=todo, kind=job.kind, period_start=job.period_start, period_end=job.period_end), job, now)
    with transaction.atomic():
        Statement.objects.bulk_create(rows, ignore_conflicts=True)
        done = StatementBatch.objects.filter(pk=batch.pk, done_at__isnull=True).update(done_at=timezone.now())
        if done:
            StatementJob.objects.filter(pk=job.pk).update(issued=F("issued") + len(rows), updated_at=timezone.now())
    return len(rows)


def job_step(*, job_id: int, batch_size: int = BATCH_SIZE) -> bool:
    """Claim and issue one batch. True while there may be more to do."""
    job = StatementJob.objects.get(pk=job_id)
    if job.status == JobStatus.DONE:
        return False
    now = timezone.now()
    batch = _claim(job, batch_size=batch_size, now=now)
    if batch is None:
        if StatementBatch.objects.filter(job=job, done_at__isnull=True).exists():
            return False  # other workers' batches are in flight; the resume beat re-claims any that die
        with transaction.atomic():
            if StatementJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(status=JobStatus.DONE, finished_at=now, updated_at=now):
                job.refresh_from_db()
                audit_log(actor=SYSTEM, action="servicing.statements.job_completed", obj=job,
                          after={"kind": job.kind, "period_end": job.period_end.isoformat(), "issued": job.issued, "batches": job.batches})
        return False
    if batch.pk is None:
        return True
    _process(batch, job, now)
    return True


def job_run(*, job_id: int, max_batches: int = 40, batch_size: int = BATCH_SIZE) -> bool:
    return all(job_step(job_id=job_id, batch_size=batch_size) for _i in range(max_batches))


def issue_one(*, facility_id: int, kind: str, period_start: date, period_end: date) -> Statement:
    """Issue (or return the existing) statement of one facility for a period."""
    existing = Statement.objects.filter(facility_id=facility_id, kind=kind, period_end=period_end).first()
    if existing:
        return existing
    rows = _rows(build(facility_ids=[facility_id], kind=kind, period_start=period_start, period_end=period_end), None, timezone.now())
    with transaction.atomic():
        Statement.objects.bulk_create(rows, ignore_conflicts=True)
    return Statement.objects.get(facility_id=facility_id, kind=kind, period_end=period_end)


def statements_due(*, today: date | None = None) -> list[StatementJob]:
    """The periodic job: start (or continue) last month's monthly statements once its interest is
    posted, and the activity statements of the last three days."""
    from .models import InterestPosting

    today = today or timezone.localdate()
    jobs = []
    last_month_end = today.replace(day=1) - timedelta(days=1)
    if InterestPosting.objects.filter(period_end=last_month_end).exists() or not InterestAccrual.objects.filter(
            day__in=accrual_days(unposted=True, upto=last_month_end), posted_on__isnull=True).exists():
        jobs.append(job_start(kind=StatementKind.MONTHLY, period_start=last_month_end.replace(day=1), period_end=last_month_end)[0])
    for back in (3, 2, 1):
        day = today - timedelta(days=back)
        jobs.append(job_start(kind=StatementKind.ACTIVITY, period_start=day, period_end=day)[0])
    return [j for j in jobs if j.status == JobStatus.RUNNING]


def stalled_job_ids(*, idle: timedelta = timedelta(minutes=10)) -> list[int]:
    now = timezone.now()
    expired = StatementBatch.objects.filter(done_at__isnull=True, lease_until__lt=now).values("job_id")
    return list(StatementJob.objects.filter(status=JobStatus.RUNNING).filter(Q(pk__in=expired) | Q(updated_at__lt=now - idle))
                .values_list("pk", flat=True))
