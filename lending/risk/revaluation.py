"""Whole-book revaluation: a fixed handful of SQL statements, whatever the size of the book.

A plain UPDATE of every facility's stored valuation costs about 2 s for 100,000 facilities on
the target machine, so a tick never writes every row. Instead:

1. one INSERT … SELECT values the whole book from the per-facility coefficients and the current
   prices and records only the facilities whose band changes (``risk_bandchange``), and one the
   facilities whose early-warning level changes (``risk_warningcrossing``);
2. one INSERT … SELECT … ON CONFLICT DO NOTHING opens a margin call for each facility that moved
   into margin call or close-out (the partial unique index allows one open call per facility, so a
   facility crossing again the same day keeps its one call);
3. one UPDATE … FROM writes each of those facilities once: its band and stored valuation, its
   warning level and the lending ``has_open_margin_call`` flag;
4. a few small UPDATEs: escalation at the close-out level, the open calls' shortfall, and calls
   with no shortfall left (cured by a repayment, a collateral top-up or the market), after which
   drawdowns reopen.

Notifications go out from a Celery task enqueued once per run after commit.
"""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

import functools
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from lending import locks
from portal.audit import SYSTEM, audit_log_many

from . import book
from .models import CallState, RevaluationRun

HK = ZoneInfo("Asia/Hong_Kong")


@functools.lru_cache(maxsize=8)
def _hk_holidays(first_year: int, last_year: int):
    """Built once per span of years: every tick that opens a call needs its deadline, and building the
    calendar costs more than the tick's SQL."""
    import holidays

    # Public and "optional" (the general holidays banks close for: Good Friday, the day after, …).
    return holidays.country_holidays("HK", years=range(first_year, last_year + 1), categories=("public", "optional"))


def hk_business_day_after(day: date, business_days: int) -> date:
    """The ``business_days``-th Hong Kong business day after ``day``: the one calendar for every deadline.

    Business days skip Saturdays, Sundays and Hong Kong general holidays (``holidays`` package).
    """
    hols = _hk_holidays(day.year, day.year + 2)
    remaining = int(business_days)
    while remaining > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in hols:
            remaining -= 1
    return day


def cure_deadline(*, opened_at: datetime, business_days: int) -> datetime:
    """The end (23:59:59 HKT) of the ``business_days``-th Hong Kong business day after ``opened_at``."""
    day = hk_business_day_after(opened_at.astimezone(HK).date(), max(1, int(business_days)))
    return datetime.combine(day, dtime(23, 59, 59), tzinfo=HK)


def current_inputs():
    """(lending policy in force, {asset: price}) — two queries."""
    from lending import selectors as lending_selectors

    policy = lending_selectors.policy_current()
    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    return policy, prices


@transaction.atomic
def revalue_book(*, trigger: str = "tick", facility_ids: list[int] | None = None, notify: bool = True) -> RevaluationRun | None:
    """Bring every active facility's band up to date; open, refresh, escalate and cure margin calls.

    ``facility_ids`` restricts the same statements to a few facilities (after a top-up or repayment).
    Returns the run record, or None when there is no policy or no price yet.
    """
    started = time.perf_counter()
    locks.book()
    locks.writes(locks.Level.FACILITY)  # set-based: the UPDATEs below lock the rows they change
    locks.writes(locks.Level.MARGIN_CALL)
    policy, prices = current_inputs()
    if policy is None or not prices:
        return None
    now = timezone.now()
    scenario = book.Scenario.current(policy=policy, prices=prices)
    if facility_ids is None and trigger not in MOVES_ONLY_TRIGGERS:
        book.coefficients_sync_new(now=now)  # the safety net for facilities lending opened (they report themselves)
    # Securities that moved: their deltas go into the sums of the facilities holding them (index on
    # positions by instrument); only those facilities can change band because of them.
    moves = book.securities_moves()
    many = len(moves) > MANY_MOVES
    last = RevaluationRun.objects.order_by("-id").values("btc_price", "eth_price").first()
    va_moved = last is None or last["btc_price"] != prices.get("BTC") or last["eth_price"] != prices.get("ETH")
    # A tick that moved securities only (PostgreSQL): the UPDATE of the holders' sums also runs the float
    # prefilter over the rows it wrote, so only the facilities whose band or warning level may have changed
    # are valued exactly, and the sums are read once. An end-of-day file moves most of the book: only those
    # candidates come back, not every holder.
    prefilter = (connection.vendor == "postgresql" and facility_ids is None and trigger in MOVES_ONLY_TRIGGERS
                 and not va_moved)
    if many and connection.vendor == "postgresql":
        # An end-of-day file sums every position by facility: room for that aggregate in memory (PostgreSQL's
        # default would spill it to disk in batches), and grouped by sorting, not hashing: with one group per
        # facility a hash of NUMERIC sums costs about 1.6× the sort (420 ms against 240 ms at 100,000
        # facilities), which the planner does not see. For this transaction only.
        book.execute(f"SET LOCAL work_mem = '{MANY_MOVES_WORK_MEM}'")
        book.execute("SET LOCAL enable_hashagg = off")
    moved_rows = book.securities_moves_apply(moves=moves, now=now, returning=not many or prefilter,
                                             prefilter=scenario.params() if prefilter else None, candidates_only=many)
    candidates = None
    if prefilter and many:
        moved = candidates = moved_rows
    elif prefilter:
        moved, candidates = [r[0] for r in moved_rows], [r[0] for r in moved_rows if r[1]]
    else:
        moved = moved_rows
    # A price tick that moved only a few securities looks only at their holders; anything else (a BTC/ETH
    # move, many securities without the prefilter, the beat, a policy change, an explicit run) looks at the whole book.
    whole_book = facility_ids is None and (va_moved or (many and not prefilter) or trigger not in MOVES_ONLY_TRIGGERS)
    extra: dict = {}
    where = "" if whole_book else _ids_where(sorted(set(moved) | {int(f) for f in facility_ids or ()}), extra)
    run = RevaluationRun.objects.create(
        started_at=now, trigger=trigger[:20], btc_price=prices.get("BTC"), eth_price=prices.get("ETH"), policy_version=policy.version,
    )
    params = scenario.params() | extra | {"run": run.pk, "now": book.dt(now), "policy_version": policy.version}
    scan_where = where
    # The prefilter found no facility whose band, warning level or call can have changed: the statements that
    # value the candidates exactly would select from nothing, and are not sent (a tick that moved one security
    # usually ends here: 15 statements → 11).
    no_candidates = False
    if candidates is not None:
        scan_where = _ids_where(sorted(candidates), params, name="candidates")
        no_candidates = not candidates
    elif whole_book and connection.vendor == "postgresql":
        # 0. The float prefilter as a plain SELECT, which PostgreSQL runs with parallel workers (an
        # INSERT … SELECT never is): only the ids of facilities whose band may have changed come back,
        # a number bounded by the band transitions, not by the size of the book.
        with connection.cursor() as cursor:
            cursor.execute(book.candidates_sql(where, warnings=True), params)
            found = [row[0] for row in cursor.fetchall()]
        params["candidates"] = book.id_array(found)
        no_candidates = not found
        scan_where = f"{where} AND f.id = ANY(%(candidates)s::bigint[]) AND c.facility_id = ANY(%(candidates)s::bigint[])"

    # 1. Value the book; keep only the band changes.
    band_rows = [] if no_candidates else book.fetch(
        f"""
        INSERT INTO risk_bandchange (run_id, facility_id, client_id, from_band, to_band, drawn_balance, market_value,
                                     va_market_value, lending_value, utilisation, at)
        SELECT %(run)s, v.facility_id, v.client_id, v.old_band, v.band, v.drawn, ROUND(v.mv, 2), ROUND(v.va_mv, 2),
               v.lv, v.util, %(now)s
        FROM ({book.live_sql(scan_where)}) v
        WHERE v.band <> v.old_band
        RETURNING facility_id, from_band, to_band
        """,
        params,
    )
    changes = len(band_rows)
    warning_rows = [] if no_candidates else _warning_crossings(params=params, where=scan_where)
    warned = sum(1 for r in warning_rows if r["notify"])
    opened_rows = breached_rows = escalated_rows = []
    if facility_ids is not None or trigger == "policy":
        # A facility-level revaluation (opening, drawdown, repayment, top-up) stores the facility's valuation
        # whatever its band: the pages and the available amount read it. So does a new policy version, for
        # the whole book: every facility then records the version whose haircuts valued it.
        book.execute(
            f"""
            UPDATE lending_facility SET utilisation = v.util, lending_value = v.lv, market_value = ROUND(v.mv, 2),
                   va_market_value = ROUND(v.va_mv, 2), valued_at = %(now)s, valued_policy_version = %(policy_version)s
            FROM ({book.live_sql(where)}) v WHERE lending_facility.id = v.facility_id
            """,
            params,
        )
    if changes:
        # 2. Open one call per facility that crossed into margin call; one open call per facility at most.
        deadline = cure_deadline(opened_at=now, business_days=policy.cure_days)
        gt = book.greatest()
        opened_rows = book.fetch(
            f"""
            INSERT INTO risk_margincall (facility_id, client_id, state, opened_at, cure_deadline, shortfall, shortfall_at_open,
                                         utilisation, utilisation_at_open, lending_value, drawn_balance, band, run_id,
                                         updated_at, breaches, escalation_reason, proposed_resolution, proposal_reason,
                                         resolution_note, met_by)
            SELECT bc.facility_id, bc.client_id, '{CallState.OPEN}', %(now)s, %(deadline)s,
                   ROUND({gt}(bc.drawn_balance - bc.lending_value * %(mc)s, 0), 2),
                   ROUND({gt}(bc.drawn_balance - bc.lending_value * %(mc)s, 0), 2),
                   bc.utilisation, bc.utilisation, bc.lending_value, bc.drawn_balance, bc.to_band, %(run)s,
                   %(now)s, 1, '', '', '', '', ''
            FROM risk_bandchange bc
            WHERE bc.run_id = %(run)s AND bc.to_band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}')
            ON CONFLICT (facility_id) WHERE state IN ('{CallState.OPEN}', '{CallState.ESCALATED}') DO NOTHING
            RETURNING id, facility_id, shortfall, utilisation, band, cure_deadline
            """,
            params | {"deadline": book.dt(deadline)},
        )
        # A facility that crossed again while its call is still open: the same call, counted.
        breached_rows = book.fetch(
            f"""
            UPDATE risk_margincall SET breaches = breaches + 1
            WHERE state IN ('{CallState.OPEN}', '{CallState.ESCALATED}') AND (run_id IS NULL OR run_id <> %(run)s)
              AND facility_id IN (SELECT facility_id FROM risk_bandchange WHERE run_id = %(run)s
                                  AND to_band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}')
                                  AND from_band NOT IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}'))
            RETURNING id, facility_id, breaches
            """,
            params,
        )
        # At the close-out level a call goes straight to a credit manager.
        escalated_rows = book.fetch(
            f"""
            UPDATE risk_margincall SET state = '{CallState.ESCALATED}', escalated_at = %(now)s, escalation_reason = 'close_out_level'
            WHERE state = '{CallState.OPEN}'
              AND facility_id IN (SELECT facility_id FROM risk_bandchange WHERE run_id = %(run)s AND to_band = '{book.CLOSE_OUT}')
            RETURNING id, facility_id
            """,
            params,
        )
    if changes or warning_rows:
        # 3. Store, in one UPDATE, what changed for each facility: its band and valuation, its warning level, and
        # the flag that stops drawdowns while a call is open. One write per facility row and tick: a row written
        # twice in a transaction has its foreign keys checked again at commit.
        _facilities_store(params)
    opened, escalated = len(opened_rows), len(escalated_rows)
    # A whole-book tick refreshes the calls of the facilities that changed band; every open call is
    # refreshed by the margin-call beat (and at once after a top-up or repayment, via facility_ids).
    if candidates is not None:
        # A securities-only tick: the facilities whose band may have changed (the prefilter's candidates); a
        # moved holder that stays in its band keeps its call's shortfall until the beat refreshes it.
        calls_where = _open_calls_where(scan_where, "candidates")
    elif not whole_book:
        calls_where = _open_calls_where(where, "ids")
    elif "candidates" in params:
        calls_where = _open_calls_where("", "candidates")  # a superset of this run's band changes
    else:
        calls_where = "AND m.facility_id IN (SELECT facility_id FROM risk_bandchange WHERE run_id = %(run)s)"
    refreshed_rows, met_rows = ([], []) if no_candidates else _refresh_open_calls(params=params, calls_where=calls_where)
    refreshed, met = len(refreshed_rows), len(met_rows)
    run.band_changes, run.calls_opened, run.calls_escalated, run.calls_met = changes, opened, escalated, met
    run.warnings = warned
    run.finished_at = timezone.now()
    run.duration_ms = int((time.perf_counter() - started) * 1000)
    run.save(update_fields=["band_changes", "calls_opened", "calls_escalated", "calls_met", "warnings", "finished_at", "duration_ms"])
    if changes or met or warning_rows:
        # One audit row per call the run opened, breached again, escalated, moved between bands or met,
        # and one for the run: all in one INSERT, so a tick's statement count does not grow with them.
        rows = call_audit_rows(run=run, band_rows=band_rows, opened=opened_rows, breached=breached_rows, escalated=escalated_rows,
                               refreshed=refreshed_rows, met=met_rows)
        rows.append({
            "action": "risk.book.revalued", "object_type": "risk.revaluationrun", "object_id": run.pk, "object_repr": str(run),
            "after": {"trigger": run.trigger, "btc": prices.get("BTC"), "eth": prices.get("ETH"), "policy_version": policy.version,
                      "band_changes": changes, "calls_opened": opened, "calls_escalated": escalated, "calls_met": met,
                      "calls_refreshed": refreshed, "warnings": warned, "warning_levels_rearmed": len(warning_rows) - warned},
        })
        audit_log_many(actor=SYSTEM, rows=rows)
    if notify and (opened or escalated or met):
        from .tasks import margin_calls_notify

        margin_calls_notify.delay_on_commit(run.pk)
    if notify and warned:
        from .tasks import warnings_notify

        warnings_notify.delay_on_commit(run.pk)
    return run


def _warning_crossings(*, params: dict, where: str) -> list[dict]:
    """Record every facility whose early-warning level changed and store its new level: two statements.

    Up through a level below the margin-call level, with no call open, is a warning to send (``notify``);
    straight past the margin-call level the call's own notice speaks instead, and the level is still
    recorded so the way back down sends nothing. Down is the level re-armed: crossing it again warns again.
    """
    rows = book.fetch(
        f"""
        INSERT INTO risk_warningcrossing (run_id, facility_id, client_id, from_level, to_level, utilisation, band, drawn_balance,
                                          lending_value, securities_lending_value, btc_weight, eth_weight, btc_price, eth_price,
                                          notify, notice_batch, notified_at, at)
        SELECT %(run)s, v.facility_id, v.client_id, v.old_warn, v.warn, v.util, v.band, v.drawn, v.lv, v.sec_lv, v.btc_w, v.eth_w,
               %(btc)s, %(eth)s,
               CASE WHEN v.warn > v.old_warn AND v.band NOT IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}') AND NOT v.has_call
                    THEN TRUE ELSE FALSE END,
               '', NULL, %(now)s
        FROM (SELECT w.*, {book.warn_sql("w.util")} AS warn FROM ({book.live_sql(where)}) w) v
        WHERE v.warn <> v.old_warn
        RETURNING facility_id, notify
        """,
        params,
    )
    return rows


def _facilities_store(params: dict) -> None:
    """Write this run's band changes (band and stored valuation) and warning-level changes to the facilities,
    and raise ``has_open_margin_call`` for those now in margin call or close-out (each has its open call: the
    one just opened or the one already open). One statement; facilities with neither change are not written."""
    banded = "u.to_band IS NOT NULL"
    kept = ("utilisation", "lending_value", "market_value", "va_market_value")
    valuation = ", ".join(f"{column} = CASE WHEN {banded} THEN u.{column} ELSE lending_facility.{column} END" for column in kept)
    book.execute(
        f"""
        UPDATE lending_facility SET
               band = COALESCE(u.to_band, lending_facility.band), {valuation},
               valued_at = CASE WHEN {banded} THEN u.at ELSE lending_facility.valued_at END,
               valued_policy_version = CASE WHEN {banded} THEN %(policy_version)s ELSE lending_facility.valued_policy_version END,
               warned_level = COALESCE(u.to_level, lending_facility.warned_level),
               has_open_margin_call = lending_facility.has_open_margin_call OR COALESCE(u.to_band IN ('{book.MARGIN_CALL}', '{book.CLOSE_OUT}'), FALSE)
        FROM (SELECT COALESCE(bc.facility_id, wc.facility_id) AS facility_id, bc.to_band, bc.utilisation, bc.lending_value,
                     bc.market_value, bc.va_market_value, bc.at, wc.to_level
              FROM (SELECT * FROM risk_bandchange WHERE run_id = %(run)s) bc
              FULL JOIN (SELECT facility_id, to_level FROM risk_warningcrossing WHERE run_id = %(run)s) wc
                ON wc.facility_id = bc.facility_id) u
        WHERE lending_facility.id = u.facility_id
        """,
        params,
    )


# Ticks that may look only at the facilities holding what moved (reference-price changes).
MOVES_ONLY_TRIGGERS = ("price",)
# Above this many securities moving at once, most of the book holds one of them: the tick then asks the
# database for the candidates only (float prefilter), not for every holder's id.
MANY_MOVES = 20
# Above this many facilities holding a re-haircut instrument, its change revalues the whole book.
MANY_HOLDERS = 1000
MANY_MOVES_WORK_MEM = "64MB"


def _ids_where(ids: list[int], params: dict, *, name: str = "ids") -> str:
    """Restrict the book's valuation (``book.live_sql``) to ``ids`` (PostgreSQL: one array parameter).

    Both sides of the facility ⋈ sums join are restricted, so PostgreSQL probes both primary keys instead
    of scanning the whole of ``risk_facilitycoefficients`` (whose cost would grow with the book)."""
    if connection.vendor == "postgresql":
        params[name] = book.id_array(ids)
        return f"AND f.id = ANY(%({name})s::bigint[]) AND c.facility_id = ANY(%({name})s::bigint[])"
    names = {f"f{i}": fid for i, fid in enumerate(ids)}
    params.update(names)
    return f"AND f.id IN ({', '.join('%(' + k + ')s' for k in names) or 'NULL'})"


def _open_calls_where(where: str, name: str) -> str:
    """The open calls of the facilities in the array (or, on SQLite, the id list) ``name``, as a condition on
    ``risk_margincall m``: PostgreSQL probes the one-open-call-per-facility index once per facility, so the
    cost follows the facilities the tick looked at, not the number of open calls in the book."""
    if connection.vendor == "postgresql":
        return f"AND m.facility_id = ANY(%({name})s::bigint[])"
    return f"AND m.facility_id IN (SELECT f.id FROM lending_facility f WHERE 1 = 1 {where})"


def _money(value) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01"))) if value is not None else None


def _ratio(value) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.0001"))) if value is not None else None


def call_audit_rows(*, run=None, band_rows=(), opened=(), breached=(), escalated=(), refreshed=(), met=()) -> list[dict]:
    """The per-call audit rows of a set-based change, from the rows its statements RETURNed.

    A refreshed call gets a row only when its facility changed band in this run (a move between margin
    call and close-out, or back under the level while the call stays open); a shortfall that follows the
    price within the same band is kept on the call itself. So the number of rows is bounded by the band
    changes (plus the calls met), never by the number of open calls.
    """
    run_id = run.pk if run is not None else None
    moved = {r["facility_id"]: r for r in band_rows}
    seen: set[int] = set()
    rows = []

    def add(row, action, after, before=None):
        rows.append({"action": action, "object_type": "risk.margincall", "object_id": row["id"], "object_repr": f"MC-{int(row['id']):06d}",
                     "before": before, "after": after | {"facility": row["facility_id"], "run": run_id}})

    for r in opened:
        seen.add(r["id"])
        add(r, "risk.margin_call.opened", {"state": CallState.OPEN, "shortfall": _money(r["shortfall"]), "utilisation": _ratio(r["utilisation"]),
                                           "band": r["band"], "cure_deadline": str(r["cure_deadline"])})
    for r in breached:
        seen.add(r["id"])
        change = moved.get(r["facility_id"], {})
        add(r, "risk.margin_call.breached_again", {"breaches": r["breaches"], "band": change.get("to_band")}, {"band": change.get("from_band")})
    for r in escalated:
        add(r, "risk.margin_call.escalated", {"state": CallState.ESCALATED, "escalation_reason": "close_out_level"}, {"state": CallState.OPEN})
    seen |= {r["id"] for r in met}  # a call met in this run has its "met" row; no separate band row
    for r in refreshed:
        change = moved.get(r["facility_id"])
        if change is not None and r["id"] not in seen:
            add(r, "risk.margin_call.updated", {"band": change["to_band"], "shortfall": _money(r["shortfall"]), "utilisation": _ratio(r["utilisation"])},
                {"band": change["from_band"]})
    for r in met:
        add(r, "risk.margin_call.met", {"state": CallState.MET, "met_by": r["met_by"]}, None)
    return rows


# How a call was met (``MarginCall.met_by``): the engine records the first three; an officer the last.
MET_BY_TOP_UP, MET_BY_REPAYMENT, MET_BY_MARKET, MET_BY_OFFICER = "top_up", "repayment", "market", "officer"


def _refresh_open_calls(*, params: dict, calls_where: str) -> tuple[list[dict], list[dict]]:
    """Refresh the shortfall of the open calls ``calls_where`` selects (a condition on ``risk_margincall m``;
    empty: every open call); meet those with no shortfall left (by a repayment, a top-up or the market).
    Returns the rows each UPDATE changed (RETURNING)."""
    gt = book.greatest()
    open_states = f"('{CallState.OPEN}', '{CallState.ESCALATED}')"
    # The facilities valued here are found through the open calls (the one-open-call-per-facility index), so a
    # tick that looked at a thousand facilities reads at most their calls, whatever the number open in the book.
    calls = f"SELECT m.facility_id FROM risk_margincall m WHERE m.state IN {open_states} {calls_where}"
    where = f"AND f.id IN ({calls})"
    if connection.vendor == "postgresql":
        # As an array computed first: PostgreSQL then probes both primary keys for just those facilities (as a
        # semi-join it estimates the calls from the book's average and scans every facility's sums).
        where = f"AND f.id = ANY(ARRAY({calls})) AND c.facility_id = ANY(ARRAY({calls}))"
    refreshed = book.fetch(
        f"""
        UPDATE risk_margincall SET shortfall = v.shortfall, utilisation = v.util, lending_value = v.lv,
               drawn_balance = v.drawn, band = v.band, updated_at = %(now)s
        FROM (SELECT facility_id, util, lv, drawn, band, ROUND({gt}(drawn - lv * %(mc)s, 0), 2) AS shortfall
              FROM ({book.live_sql(where)}) l) v
        WHERE risk_margincall.facility_id = v.facility_id
          AND risk_margincall.state IN {open_states}
          AND (risk_margincall.shortfall <> v.shortfall OR risk_margincall.utilisation <> v.util
               OR risk_margincall.drawn_balance <> v.drawn)
        RETURNING risk_margincall.id, risk_margincall.facility_id, risk_margincall.shortfall, risk_margincall.utilisation, risk_margincall.band
        """,
        params,
    )
    # Cured: utilisation back at or under the margin-call level (no shortfall left), whatever cured it.
    # What cured it is recorded: a top-up or a repayment since the call opened, otherwise the market.
    # Drawdowns stop only while a call is open, so a call the market cured must not stay open at HK$0.
    # Only the calls just refreshed can have come under the level (the same index path).
    met = book.fetch(
        f"""
        UPDATE risk_margincall SET state = '{CallState.MET}', met_at = %(now)s,
               met_by = CASE WHEN EXISTS (SELECT 1 FROM risk_collateraltopup t WHERE t.facility_id = risk_margincall.facility_id
                                          AND t.created_at >= risk_margincall.opened_at) THEN '{MET_BY_TOP_UP}'
                             WHEN EXISTS (SELECT 1 FROM lending_facilitytransaction t WHERE t.facility_id = risk_margincall.facility_id
                                          AND t.kind = 'repayment' AND t.created_at >= risk_margincall.opened_at) THEN '{MET_BY_REPAYMENT}'
                             ELSE '{MET_BY_MARKET}' END,
               notified_at = NULL
        WHERE state IN {open_states} AND utilisation <= %(mc)s
          AND facility_id {"= ANY(ARRAY(" + calls + "))" if connection.vendor == "postgresql" else "IN (" + calls + ")"}
        RETURNING id, facility_id, met_by
        """,
        params,
    )
    if met:
        facility_flags_sync(facility_ids=sorted({r["facility_id"] for r in met}))
    return refreshed, met


@transaction.atomic
def open_calls_refresh() -> tuple[int, int]:
    """Beat: refresh every open call's shortfall at the current prices; meet those with no shortfall left."""
    locks.book()
    locks.writes(locks.Level.FACILITY)
    locks.writes(locks.Level.MARGIN_CALL)
    policy, prices = current_inputs()
    if policy is None or not prices:
        return 0, 0
    params = book.Scenario.current(policy=policy, prices=prices).params() | {"now": book.dt(timezone.now())}
    refreshed, met = _refresh_open_calls(params=params, calls_where="")
    if met:
        audit_log_many(actor=SYSTEM, rows=call_audit_rows(met=met))
    return len(refreshed), len(met)


def utilisation_after_posting(*, facilities_sql: str, params: dict) -> int:
    """Facilities whose drawn balance a whole-book posting moved (the month's interest): their stored utilisation
    at their stored lending value, by the rule of ``book.live_sql``, in the caller's transaction (it holds the book
    and the facilities). ``facilities_sql``: a SELECT of their ids. Whatever their state: a suspended facility's
    page reads it too. The tick that follows bands the active ones at the current prices."""
    return book.execute(
        f"""
        UPDATE lending_facility SET utilisation = CASE WHEN lending_value > 0 THEN ROUND(drawn_balance * 1.0 / lending_value, 4)
                                                       WHEN drawn_balance > 0 THEN %(nolv)s ELSE 0 END
        WHERE id IN ({facilities_sql})
        """,
        params | {"nolv": book.num(book.NO_LENDING_VALUE_UTILISATION)},
    )


def facility_flags_sync(*, facility_ids: list[int] | None = None) -> int:
    """Clear ``has_open_margin_call`` where no call is open any more (only flagged rows are looked at;
    only ``facility_ids`` when given — the caller holds their locks)."""
    locks.writes(locks.Level.FACILITY, facility_ids if facility_ids is not None else locks.ALL)
    if facility_ids is not None and not facility_ids:
        return 0
    names: dict = {}
    only = ""
    if facility_ids and connection.vendor == "postgresql":
        names["flag_ids"] = book.id_array(sorted({int(f) for f in facility_ids}))
        only = "AND id = ANY(%(flag_ids)s::bigint[])"
    elif facility_ids:
        names = {f"f{i}": int(fid) for i, fid in enumerate(facility_ids)}
        only = f"AND id IN ({', '.join('%(' + k + ')s' for k in names)})"
    return book.execute(
        f"""
        UPDATE lending_facility SET has_open_margin_call = FALSE
        WHERE has_open_margin_call {only} AND NOT EXISTS (
            SELECT 1 FROM risk_margincall m WHERE m.facility_id = lending_facility.id
            AND m.state IN ('{CallState.OPEN}', '{CallState.ESCALATED}'))
        """,
        names,
    )


def policy_apply(*, policy) -> dict:
    """A newly approved collateral policy reaches the live book (called in the approval's transaction):
    every position at the haircut of the version in force, every facility's sums rebuilt, the whole
    book banded (calls opened where it now breaches). Returns the counts for the approval's audit row."""
    from lending.collateral.selectors import haircuts_for

    locks.book()
    locks.writes(locks.Level.FACILITY)
    repriced = book.position_haircuts_apply(policy=policy, haircuts=haircuts_for(policy=policy))
    book.coefficients_refresh(now=timezone.now())
    run = revalue_book(trigger="policy")
    # The ticks value active facilities; a suspended one (being closed out) is valued at the new haircuts too, so its
    # stored figures and the version that valued them follow the policy like the rest of the book.
    _suspended_revalue()
    return {"positions_rehaircut": repriced, "band_changes": run.band_changes if run else 0, "calls_opened": run.calls_opened if run else 0}


def _suspended_revalue() -> None:
    from lending.models import Facility, FacilityState

    suspended = list(Facility.objects.filter(state=FacilityState.SUSPENDED).order_by("pk").values_list("pk", flat=True))
    if suspended:
        facilities_under_close_out_revalue(facility_ids=suspended)


def instruments_apply(*, instrument_ids: list[int]) -> dict:
    """Instruments whose standing changed (a security suspended or resumed, listed or delisted) reach the live
    book, in the caller's transaction: their positions at the haircut of the policy in force, the sums of the
    facilities holding them rebuilt and those facilities banded (calls opened where they now breach).
    Returns the counts for the change's audit row."""
    from lending.collateral.selectors import haircuts_for
    from lending.models import CollateralPosition

    counts = {"positions_rehaircut": 0, "facilities_revalued": 0, "band_changes": 0, "calls_opened": 0}
    policy, _prices = current_inputs()
    if policy is None or not instrument_ids:
        return counts
    locks.book()
    locks.writes(locks.Level.FACILITY)
    counts["positions_rehaircut"] = book.position_haircuts_apply(
        policy=policy, haircuts=haircuts_for(policy=policy, instrument_ids=instrument_ids), instruments_only=True)
    holders = sorted(set(CollateralPosition.objects.filter(instrument_id__in=instrument_ids).values_list("facility_id", flat=True)))
    if not holders:
        return counts
    # A widely held instrument: the whole book's statements cost less than naming most of it.
    named = holders if len(holders) <= MANY_HOLDERS else None
    book.coefficients_refresh(now=timezone.now(), facility_ids=named)
    run = revalue_book(trigger="instrument", facility_ids=named)
    _suspended_revalue()
    counts |= {"facilities_revalued": len(holders), "band_changes": run.band_changes if run else 0, "calls_opened": run.calls_opened if run else 0}
    return counts


@transaction.atomic
def revalue_facility(*, facility_id: int, sums_current: bool = False) -> None:
    """A facility's drawn balance or collateral changed (opening, drawdown, repayment, top-up, release): its sums
    are rebuilt from its positions and it is revalued at once, in the caller's transaction, so a call cured by
    the change is met in the same commit. Lending services call this (the engine), never a risk workflow.

    ``sums_current``: the caller valued the facility with ``facility_valuation`` in this transaction, under the
    book lock, and changed only its drawn balance since: its sums are the ones just rebuilt, not rebuilt again."""
    if not sums_current:
        book.coefficients_refresh(now=timezone.now(), facility_ids=[facility_id])
    revalue_book(trigger="facility", facility_ids=[facility_id])


def facility_valuation(*, facility_id: int) -> dict:
    """One facility valued now (its sums rebuilt from its positions at the book prices, then the same SQL as
    every tick); writes none of the facility's stored columns. Caller holds the book lock."""
    policy, prices = current_inputs()
    book.coefficients_refresh(now=timezone.now(), facility_ids=[facility_id])
    params = book.Scenario.current(policy=policy, prices=prices).params() | {"fid": int(facility_id)}
    rows = book.fetch(book.live_sql("AND f.id = %(fid)s"), params)
    if not rows:
        return {"lv": Decimal("0"), "util": Decimal("0"), "band": "healthy"}
    row = rows[0]
    return {"lv": Decimal(str(row["lv"])).quantize(Decimal("0.01")), "util": Decimal(str(row["util"])), "band": row["band"]}


def naive_revalue_facility(facility, *, policy, prices) -> bool:
    """The per-facility ORM path the benchmark compares with (never used by the engine): load the
    positions, value them with ``lending.valuation`` at the reference prices, save the facility."""
    from lending import valuation

    inputs = []
    for p in facility.positions.all():
        code = p.asset if p.kind == "virtual_asset" else (p.instrument.code if p.instrument_id else "")
        price = prices.get(code) if code else None
        inputs.append(valuation.PositionValueInput(kind=p.kind, haircut=p.haircut, quantity=p.quantity, price=price,
                                                   market_value=None if p.instrument_id else p.market_value))
    v = valuation.value_facility(positions=inputs, drawn=facility.drawn_balance, max_share=policy.va_max_share,
                                 watch=policy.watch_level, margin_call=policy.margin_call_level, close_out=policy.close_out_level)
    changed = v.band != facility.band
    facility.market_value, facility.va_market_value = v.market_value, v.va_market_value
    facility.lending_value, facility.utilisation, facility.band = v.lending_value, v.utilisation, v.band
    facility.save(update_fields=["market_value", "va_market_value", "lending_value", "utilisation", "band"])
    return changed


def facilities_under_close_out_revalue(*, facility_ids: list[int]) -> list[dict]:
    """Value facilities being closed out (suspended: the ticks value active facilities only) with the same
    SQL and store their valuation and band, recording a band change. Opens no call: the close-out is the
    resolution of the facility's call. Caller holds the book and the facilities' locks."""
    from lending.models import Facility

    locks.book()
    locks.writes(locks.Level.FACILITY, facility_ids)
    policy, prices = current_inputs()
    if policy is None or not facility_ids:
        return []
    now = timezone.now()
    book.coefficients_refresh(now=now, facility_ids=facility_ids)
    rows = []
    states = dict(Facility.objects.filter(pk__in=facility_ids).values_list("pk", "state"))
    for state in sorted(set(states.values())):
        ids = sorted(pk for pk, s in states.items() if s == state)
        params: dict = {}
        where = _ids_where(ids, params)
        # The engine's valuation of the book, selecting facilities in this state instead of active ones.
        params = book.Scenario.current(policy=policy, prices=prices).params() | params | {"active": state, "now": book.dt(now),
                                                                                           "policy_version": policy.version}
        valued = book.fetch(book.live_sql(where), params)
        for v in valued:
            if v["band"] != v["old_band"]:
                book.execute(
                    "INSERT INTO risk_bandchange (run_id, facility_id, client_id, from_band, to_band, drawn_balance, market_value, "
                    "va_market_value, lending_value, utilisation, at) VALUES (NULL, %(fid)s, %(cid)s, %(old)s, %(new)s, %(drawn)s, "
                    "ROUND(%(mv)s, 2), ROUND(%(va_mv)s, 2), %(lv)s, %(util)s, %(now)s)",
                    {"fid": v["facility_id"], "cid": v["client_id"], "old": v["old_band"], "new": v["band"], "drawn": v["drawn"],
                     "mv": v["mv"], "va_mv": v["va_mv"], "lv": v["lv"], "util": v["util"], "now": params["now"]})
        book.execute(
            f"""
            UPDATE lending_facility SET utilisation = v.util, lending_value = v.lv, market_value = ROUND(v.mv, 2),
                   va_market_value = ROUND(v.va_mv, 2), band = v.band, valued_at = %(now)s, valued_policy_version = %(policy_version)s
            FROM ({book.live_sql(where)}) v WHERE lending_facility.id = v.facility_id
            """,
            params,
        )
        rows.extend(valued)
    return rows
