"""The revaluation benchmark, run by ``manage.py benchmark revaluation --facilities 100000``.

On a dedicated PostgreSQL database (its name must contain "bench"; the lending and risk tables are
emptied first): builds a synthetic book with set-based inserts (generate_series), mixed securities +
BTC + ETH collateral and drawn balances spread over the bands, then times the whole-book revaluation
(band changes + margin-call opening) over several price ticks and prints it beside

* the floor: the database's bare scan of the book's positions computing every facility's lending
  value in one SELECT;
* a naive per-facility ORM loop, measured on a 5,000-facility sample and scaled per facility;

with the peak RSS of this process and the SQL statement count per tick at two book sizes.
"""

from __future__ import annotations

import resource
import statistics
import time
from decimal import Decimal

from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

# Relative BTC / ETH moves per tick: a volatile hour in crypto.
TICKS = [(-0.06, -0.07), (-0.04, -0.05), (0.05, 0.06), (-0.08, -0.09), (0.07, 0.08), (-0.05, -0.04), (0.09, 0.10), (-0.03, -0.05)]
BTC0, ETH0 = Decimal("760000"), Decimal("27000")


def run(stdout, *, facilities: int, ticks: int = 8, naive_sample: int = 5000, statements_at: int = 10_000) -> dict:
    if connection.vendor != "postgresql":
        raise CommandError("The revaluation benchmark runs on PostgreSQL (set DATABASE_URL=postgres://…/risk_bench).")
    if "bench" not in connection.settings_dict["NAME"]:
        raise CommandError("Refusing: the benchmark empties the lending and risk tables; use a database whose name contains 'bench'.")
    from lending.risk.revaluation import revalue_book

    policy = _policy()
    out = {}
    # Statement count per tick at a smaller book first, then the full book.
    if statements_at and statements_at < facilities:
        _build(stdout, statements_at, policy)
        _set_prices(BTC0, ETH0)
        revalue_book(trigger="bench", notify=False)
        with CaptureQueriesContext(connection) as ctx:
            _tick(BTC0 * Decimal("0.92"), ETH0 * Decimal("0.91"))
        out["statements_small"] = (statements_at, len(ctx.captured_queries))
    _build(stdout, facilities, policy)
    _set_prices(BTC0, ETH0)
    revalue_book(trigger="bench", notify=False)  # settle the starting bands (not timed)
    times, changes, opened = [], [], []
    btc, eth = BTC0, ETH0
    for i in range(ticks):
        db, de = TICKS[i % len(TICKS)]
        btc, eth = (btc * Decimal(str(1 + db))).quantize(Decimal("0.01")), (eth * Decimal(str(1 + de))).quantize(Decimal("0.01"))
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            result = _tick(btc, eth)  # quotes → governed reference → whole-book revaluation, one transaction
            times.append(time.perf_counter() - start)
        changes.append(result.band_changes)
        opened.append(result.calls_opened)
        out["statements_full"] = (facilities, len(ctx.captured_queries))
        stdout.write(f"  tick {i + 1}: BTC {btc:>12,} ETH {eth:>9,}  {times[-1] * 1000:7.1f} ms  band changes {result.band_changes:6,}  "
                     f"calls opened {result.calls_opened:5,}  escalated {result.calls_escalated:4,}  statements {len(ctx.captured_queries)}")
    floor = _floor(repeats=5)
    coef_scan = _coefficient_scan(repeats=5)
    naive_per = _naive(naive_sample, policy)
    median = statistics.median(times)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(median=median, floor=floor, coef_scan=coef_scan, naive_per=naive_per, peak_mb=peak_mb, changes=changes, opened=opened, times=times)
    per_facility = median / facilities
    stdout.write("")
    stdout.write(f"Book: {facilities:,} active facilities, {_count('lending_collateralposition'):,} collateral positions, "
                 f"{_count('risk_margincall'):,} margin calls after the run")
    stdout.write(f"Price tick (quotes, governed reference, whole-book revaluation, band changes, margin-call opening): median {median * 1000:.1f} ms "
                 f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; {ticks} ticks); band changes per tick median "
                 f"{statistics.median(changes):,.0f} ({statistics.median(changes) / facilities:.1%} of the book)")
    stdout.write(f"(a) floor — bare scan of the positions computing lending value, one SELECT: {floor * 1000:.1f} ms  → ratio {median / floor:.2f}×")
    stdout.write(f"    (for reference: scan of the per-facility coefficients valuing and banding the book: {coef_scan * 1000:.1f} ms → ratio {median / coef_scan:.2f}×)")
    stdout.write(f"(b) naive per-facility ORM loop: {naive_per * 1e6:.0f} µs per facility (sample {naive_sample:,}) → "
                 f"{naive_per * facilities:.1f} s for the book; set-based is {naive_per / per_facility:,.0f}× faster per facility")
    stdout.write(f"Peak RSS of this process: {peak_mb:.0f} MB")
    if "statements_small" in out:
        (n1, s1), (n2, s2) = out["statements_small"], out["statements_full"]
        stdout.write(f"SQL statements per tick: {s1} at {n1:,} facilities, {s2} at {n2:,} facilities")
    ok = median < 0.5 and median / floor <= 4 and naive_per / per_facility >= 100 and peak_mb < 300
    stdout.write(("Targets met" if ok else "Targets NOT all met") + ": median < 0.5 s, ≤ 4× floor, ≥ 100× naive, < 300 MB")
    return out


def _policy():
    from lending import selectors, services
    from portal.models import User
    from portal.permissions import Role
    from portal.services import user_create

    policy = selectors.policy_current()
    if policy:
        return policy

    def staff(email, role):
        return User.objects.filter(email=email).first() or user_create(email=email, password=None, role=role, full_name=email)

    maker, checker = staff("bench-officer@bench.invalid", Role.ACCOUNT_OFFICER), staff("bench-manager@bench.invalid", Role.CREDIT_MANAGER)
    from lending.demo import POLICY_V1

    proposed = services.policy_propose(actor=maker, numbers=POLICY_V1, reason="Benchmark policy")
    return services.policy_approve(actor=checker, policy_id=proposed.pk)


def _exec(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _count(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - fixed table names
        return cursor.fetchone()[0]


def _build(stdout, n: int, policy) -> None:
    """Synthetic book, all set-based: clients, applications, facilities, positions, coefficients, drawn balances."""
    from django.utils import timezone

    from lending.risk import book

    start = time.perf_counter()
    with transaction.atomic():
        # A dedicated benchmark database ("bench" in its name, checked above): the append-only triggers of
        # the ledger refuse TRUNCATE, so they are off for this one statement (superuser; back on at commit).
        _exec("SET LOCAL session_replication_role = replica")
        _exec("TRUNCATE risk_bandchange, risk_margincall, risk_valuationsnapshot, risk_collateraltopup, risk_facilitycoefficients, "
              "risk_revaluationrun, lending_facilitytransaction, lending_collateralposition, lending_facility, "
              "lending_reviewstep, lending_collateralline, lending_facilityapplication RESTART IDENTITY CASCADE")
        _exec("SET LOCAL session_replication_role = DEFAULT")
        clients = max(10, n // 20)
        _exec("DELETE FROM portal_user WHERE email LIKE 'bench-r-%%'")
        _exec(
            """INSERT INTO portal_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined, email,
                                        full_name, preferred_language, authority_limit)
               SELECT '!', FALSE, '', '', FALSE, TRUE, now(), 'bench-r-' || g || '@bench.invalid', 'Bench Client ' || g, 'en', 0
               FROM generate_series(1, %s) g""",
            [clients],
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT MIN(id), COUNT(*) FROM portal_user WHERE email LIKE 'bench-r-%%'")
            first_client, count = cursor.fetchone()
        _exec("SELECT setseed(0.42)")
        _exec(
            """INSERT INTO lending_facilityapplication (id, state, requested_limit, purpose, created_at, updated_at, review_run,
                   recommendation, recommendation_reasons, conditions, second_approval_reasons, decline_reasons, decision_note,
                   questions, client_response, letter_text, letter_sha256, screening_status, screening_note, client_id)
               SELECT g, 'active', 50000000, 'benchmark', now(), now(), 1, 'approve', '[]', '', '[]', '[]', '', '', '', '', '', '', '', %s + (g %% %s)
               FROM generate_series(1, %s) g""",
            [first_client, count, n],
        )
        _exec(
            """INSERT INTO lending_facility (id, state, "limit", drawn_balance, conditions, letter_sha256, accepted_at, opened_at,
                   market_value, va_market_value, lending_value, utilisation, band, has_open_margin_call, suspended_reason,
                   client_id, policy_id, application_id)
               SELECT g, 'active', 50000000, 0, '', '', now(), now(), 0, 0, 0, 0, 'healthy', FALSE, '', %s + (g %% %s), %s, g
               FROM generate_series(1, %s) g""",
            [first_client, count, policy.pk, n],
        )
        # Securities for every facility (class A or B), BTC for 70%, ETH for 50%.
        _exec(
            """INSERT INTO lending_collateralposition (kind, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'securities', '', 'HK equities', CASE WHEN random() < 0.6 THEN 'A' ELSE 'B' END, NULL,
                      ROUND((1000000 + random() * 19000000)::numeric, 2), 0, '', g
               FROM generate_series(1, %s) g""",
            [n],
        )
        _exec("UPDATE lending_collateralposition SET haircut = CASE haircut_class WHEN 'A' THEN 0.30 ELSE 0.50 END WHERE kind = 'securities'")
        _exec(
            """INSERT INTO lending_collateralposition (kind, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'virtual_asset', 'BTC', '', '', ROUND((0.1 + random() * 6)::numeric, 8), 0, 0.60, 'CUST-B-' || g, g
               FROM generate_series(1, %s) g WHERE random() < 0.7""",
            [n],
        )
        _exec(
            """INSERT INTO lending_collateralposition (kind, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'virtual_asset', 'ETH', '', '', ROUND((1 + random() * 120)::numeric, 8), 0, 0.65, 'CUST-E-' || g, g
               FROM generate_series(1, %s) g WHERE random() < 0.5""",
            [n],
        )
        for table in ("lending_facilityapplication", "lending_facility"):
            _exec(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [n])
        book.coefficients_refresh(now=timezone.now())
        # Drawn balances at a realistic spread of utilisation: most healthy, a tail near and over the levels.
        params = book.Scenario.current(policy=policy, prices={"BTC": BTC0, "ETH": ETH0}).params()
        _exec(
            f"""UPDATE lending_facility SET drawn_balance = ROUND(v.lv * t.u::numeric, 2)
                FROM ({book.live_sql()}) v,
                     LATERAL (SELECT CASE WHEN r < 0.75 THEN 0.20 + r * 0.85
                                          WHEN r < 0.95 THEN 0.84 + (r - 0.75) * 0.75
                                          ELSE 0.99 + (r - 0.95) * 0.40 END AS u
                              FROM (SELECT random() + 0 * v.facility_id AS r) rr) t
                WHERE lending_facility.id = v.facility_id""",  # noqa: S608 - built from constants
            params,
        )
    _exec("ANALYZE lending_facility; ANALYZE lending_collateralposition; ANALYZE risk_facilitycoefficients; ANALYZE risk_margincall; ANALYZE risk_bandchange")
    stdout.write(f"Built a book of {n:,} facilities in {time.perf_counter() - start:.1f} s")


def _set_prices(btc: Decimal, eth: Decimal) -> None:
    """A price tick through the governed path: the bench feed's quotes, the reference refresh and the
    whole-book revaluation it triggers in the same transaction (margin-call messages are not sent)."""
    from unittest import mock

    from lending.risk import services
    from portal.audit import SYSTEM

    services.source_ensure(code="bench", name="Benchmark feed")
    with mock.patch("lending.risk.tasks.margin_calls_notify.delay_on_commit"):
        services.quotes_record(actor=SYSTEM, rows=[
            {"source_code": "bench", "asset": "BTC", "price_hkd": btc},
            {"source_code": "bench", "asset": "ETH", "price_hkd": eth},
        ])


def _tick(btc: Decimal, eth: Decimal):
    """One price tick; returns the revaluation run it triggered (None when the reference did not move)."""
    from lending.risk.models import RevaluationRun

    last = RevaluationRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    _set_prices(btc, eth)
    return RevaluationRun.objects.filter(id__gt=last, trigger="price").order_by("-id").first()


def _floor(*, repeats: int) -> float:
    """The database's bare scan of the book: every facility's lending value from its positions, one SELECT."""
    sql = """
        SELECT COUNT(*), SUM(lv) FROM (
            SELECT p.facility_id,
                   SUM(CASE WHEN p.kind = 'securities' THEN p.market_value * (1 - p.haircut)
                            ELSE p.quantity * cp.price_hkd * (1 - p.haircut) END) AS lv
            FROM lending_collateralposition p
            JOIN lending_facility f ON f.id = p.facility_id AND f.state = 'active'
            LEFT JOIN lending_currentprice cp ON cp.asset = p.asset
            GROUP BY p.facility_id) x
    """
    return _best_median(sql, {}, repeats)


def _coefficient_scan(*, repeats: int) -> float:
    from lending import selectors as lending_selectors
    from lending.risk import book

    policy = lending_selectors.policy_current()
    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    params = book.Scenario.current(policy=policy, prices=prices).params()
    return _best_median(f"SELECT COUNT(*) FROM ({book.live_sql()}) v WHERE v.band <> v.old_band", params, repeats)  # noqa: S608


def _best_median(sql, params, repeats) -> float:
    times = []
    with connection.cursor() as cursor:
        for _ in range(repeats):
            start = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _naive(sample: int, policy) -> float:
    """Per-facility ORM loop (load positions, value, save) on a sample, rolled back; seconds per facility."""
    from lending import selectors as lending_selectors
    from lending.models import Facility
    from lending.risk.revaluation import naive_revalue_facility

    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    ids = list(Facility.objects.order_by("?").values_list("id", flat=True)[:sample])
    start = time.perf_counter()
    try:
        with transaction.atomic():
            for facility in Facility.objects.filter(id__in=ids).iterator(chunk_size=500):
                naive_revalue_facility(facility, policy=policy, prices=prices)
            elapsed = time.perf_counter() - start
            raise _Rollback
    except _Rollback:
        pass
    return elapsed / max(1, len(ids))


class _Rollback(Exception):
    pass
