"""The revaluation benchmark, run by ``manage.py benchmark revaluation --facilities 100000``.

On a dedicated PostgreSQL database (its name must contain "bench"; the lending and risk tables are
emptied first) it builds a synthetic book set-based (generate_series): facilities holding 2–5 of the
shipped Hong Kong securities (board-lot quantities), 60% of them some BTC and/or ETH, one security
(``SPECIAL``) held by exactly ``--holders`` facilities (1% of 100,000), drawn balances spread over the
bands. Then, in one run, three kinds of tick, each timed as the revaluation engine's run after the
reference prices moved (the price writes themselves are not timed):

* (a) a BTC (or ETH) move — the whole book's VA part, through the per-facility sums;
* (b) one security held by ``--holders`` facilities — only those facilities' sums move (index on
  positions by instrument) and only they are banded;
* (c) end of day — every security reprices (the per-facility sums vacuumed before each, untimed, as
  autovacuum does in the day between two end-of-day files).

Each beside its floor — a bare SELECT valuing just the affected facilities from positions × prices —
and the naive per-facility ORM loop (measured on a sample, per facility). Also: SQL statements per tick
at a smaller book and the full one (compared between ticks that changed the same things: bands, warning
levels, calls met), peak RSS of the ticks (the books are built in a child process) and, with
``--facilities`` above 100,000, the single-security tick at 100,000 (same holders) for the growth figure.
Every run starts its ticks from the same market (the prices the books are built at), so a reused book
is ticked as a new one is. The last line says whether every target was met.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import statistics
import sys
import time
import traceback
from decimal import Decimal
from unittest import mock

from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal import bench_db

BTC0, ETH0 = Decimal("760000"), Decimal("27000")
SPECIAL = "00303"  # the security held by exactly --holders facilities
BASELINE = 100_000
CASES = ("btc", "one", "eod")
FEW_HOLDERS = 100_000  # up to this many facilities affected, the floor also tries the index way


def run(stdout, *, facilities: int, ticks: int = 8, naive_sample: int = 5000, statements_at: int = 10_000, holders: int = 1000,
        reuse: bool = False, baseline_database: str = "", cases: tuple[str, ...] = CASES) -> dict:
    """``reuse``: when the database already holds the book this run would build (same size and holders, left
    by an earlier run), tick it instead of building it again (vacuumed and settled first). The figures that
    need a smaller book (statements at ``statements_at``, the growth baseline) then come from the run that
    built it, as it saved them, and are printed with their time and load average.

    ``baseline_database`` (above 100,000 facilities): the growth baseline is timed in this run, right after the
    large book's ticks, on the 100,000-facility book with the same holders that an earlier run left in that
    database, so both sides of the growth figure come from the same minutes of the machine.

    ``cases``: the ticks to time (all three by default); a target of a case left out is reported as not measured."""
    if connection.vendor != "postgresql":
        raise CommandError("The revaluation benchmark runs on PostgreSQL (set DATABASE_URL=postgres://…/hb_bench).")
    name = connection.settings_dict["NAME"]
    if "bench" not in name and not name.startswith("hb_"):
        raise CommandError("Refusing: the benchmark empties the lending and risk tables; use a database whose name contains 'bench' (or starts with 'hb_').")
    policy = _policy()
    out: dict = {"statements": {}, "load": _load()}
    reusing = reuse and _built() == (facilities, holders) and _saved() is not None
    with mock.patch("lending.risk.tasks.margin_calls_notify.delay_on_commit"):
        if not reusing:
            # In a child process: building and first settling a book of a million facilities holds several times the
            # memory a tick does, and the peak RSS this run reports is the ticks' own.
            _in_child(lambda: _build_all(stdout, facilities=facilities, holders=holders, statements_at=statements_at, ticks=ticks,
                                         policy=policy))
        saved = _saved()
        # (A book saved before the counts were kept by what the tick changed has one count per size: "any".)
        out["statements"] = {case: {int(size): paths if isinstance(paths, dict) else {"any": paths} for size, paths in counts.items()}
                             for case, counts in saved["statements"].items()}
        if "baseline_one" in saved:
            out["baseline_one"] = saved["baseline_one"]
        if reusing:
            out["saved_note"] = f"saved by the run that built the book at {saved['at']} (load average {saved['load']})"
            stdout.write(f"Reusing the book of {facilities:,} facilities ({holders:,} holders); smaller-book figures {out['saved_note']}")
        _settle()
        for case in [c for c in CASES if c in cases]:
            result = _case(case, ticks=ticks if case != "eod" else max(3, ticks // 2), stdout=stdout)
            out[case] = result
            out["statements"].setdefault(case, {})[facilities] = result["statements"]
        out["naive_per"] = _naive(naive_sample, policy)
        if baseline_database and facilities > BASELINE:
            with _database(baseline_database):
                if _built() != (BASELINE, holders) or _saved() is None:
                    raise CommandError(f"{baseline_database} does not hold the book of {BASELINE:,} facilities with {holders:,} holders: "
                                       f"run `benchmark revaluation --facilities {BASELINE} --holders {holders}` against it first.")
                _settle()
                baseline = _case("one", ticks=ticks)
                out["baseline_one"] = baseline["median"]
                out["statements"]["one"][BASELINE] = baseline["statements"]
                out["baseline_note"] = f"timed in this run on {baseline_database}"
                stdout.write(f"  single-security tick at {BASELINE:,} facilities ({holders:,} holders, {baseline_database}): "
                             f"median {out['baseline_one'] * 1000:.1f} ms")
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_end"] = _load()
    _report(stdout, out, facilities=facilities, holders=holders)
    return out


def _build_all(stdout, *, facilities: int, holders: int, statements_at: int, ticks: int, policy) -> None:
    """The books this run needs, smallest first, each ticked for what only it gives (the statements at
    ``statements_at``, the growth baseline at 100,000), then the book of ``facilities``; saved for the ticks."""
    statements: dict = {}
    extra: dict = {}
    if statements_at and statements_at < facilities:
        _build(stdout, statements_at, policy, holders=max(1, holders * statements_at // facilities))  # the same share
        for case in CASES:
            statements.setdefault(case, {})[statements_at] = _case(case, ticks=min(ticks, 4))["statements"]
    if facilities > BASELINE:
        _build(stdout, BASELINE, policy, holders=holders)
        baseline = _case("one", ticks=ticks)
        extra["baseline_one"] = baseline["median"]
        statements.setdefault("one", {})[BASELINE] = baseline["statements"]
        stdout.write(f"  single-security tick at {BASELINE:,} facilities ({holders:,} holders): median {baseline['median'] * 1000:.1f} ms")
    _build(stdout, facilities, policy, holders=holders)
    _save({"statements": statements, "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load": _load()} | extra)


def _in_child(build) -> None:
    """Run ``build`` in a forked child process with its own database connection; raise if it failed."""
    connection.close()  # the child opens its own
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            build()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            connection.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CommandError("Building the benchmark book failed (the child process's error is above).")


@contextlib.contextmanager
def _database(name: str):
    """The default connection pointed at database ``name`` (same server and credentials) for the block; its schema
    must be the current one, as the benchmark command requires of its own database."""
    from django.db.migrations.executor import MigrationExecutor

    if "bench" not in name and not name.startswith("hb_"):
        raise CommandError("Refusing: the baseline book's database must be a benchmark database (its name contains 'bench' or starts with 'hb_').")
    settings_dict = connection.settings_dict
    previous = settings_dict["NAME"]
    connection.close()
    settings_dict["NAME"] = name
    try:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(f"The database {name} has unapplied migrations: run `python manage.py migrate` against it first.")
        yield
    finally:
        connection.close()
        settings_dict["NAME"] = previous


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _built() -> tuple[int, int]:
    """(active facilities, holders of SPECIAL) of the book in the database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM lending_facility WHERE state = 'active'")
        n = cursor.fetchone()[0]
        cursor.execute("SELECT COUNT(*) FROM lending_collateralposition p JOIN collateral_instrument i ON i.id = p.instrument_id "
                       "WHERE i.code = %s", [SPECIAL])
        return n, cursor.fetchone()[0]


_SAVED = "bench_revaluation_saved"


def _save(value: dict) -> None:
    import json

    _exec(f"CREATE TABLE IF NOT EXISTS {_SAVED} (id int PRIMARY KEY, value jsonb NOT NULL)")
    _exec(f"INSERT INTO {_SAVED} (id, value) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET value = excluded.value",  # noqa: S608
          [json.dumps(value)])


def _saved() -> dict | None:
    import json

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [_SAVED])
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT value FROM {_SAVED} WHERE id = 1")  # noqa: S608 - a constant
        row = cursor.fetchone()
    if row is None:
        return None
    return row[0] if isinstance(row[0], dict) else json.loads(row[0])


def _settle() -> None:
    """A reused book: the market put back where the book was built (earlier runs' ticks moved it), dead rows of
    earlier runs vacuumed away, statistics fresh, bands settled at those prices. So every run, on a new book or
    a reused one, of any size, starts its ticks from the same market."""
    from lending.risk.revaluation import revalue_book

    _market_reset()
    _vacuum()
    revalue_book(trigger="beat", notify=False)
    _vacuum()


def _reference_prices() -> dict[str, Decimal]:
    """The prices every book is built at: BTC, ETH and each security's (a fixed pseudo-random draw per code)."""
    from lending.collateral.models import Instrument

    rng = random.Random(5)
    codes = Instrument.objects.filter(kind="security", active=True).order_by("code").values_list("code", flat=True)
    return {"BTC": BTC0, "ETH": ETH0} | {code: Decimal(rng.randint(500, 60000)) / 100 for code in codes}


def _market_reset() -> None:
    """Lending's current prices back to the reference prices, written as ``_move`` writes a tick's (not timed)."""
    prices = _reference_prices()
    _exec("UPDATE lending_currentprice SET price_hkd = p.price, as_of = now() FROM unnest(%s::text[], %s::numeric[]) AS p(asset, price) "
          "WHERE lending_currentprice.asset = p.asset AND lending_currentprice.price_hkd <> p.price",
          [list(prices), list(prices.values())])


def _vacuum() -> None:
    for table in ("lending_facility", "lending_collateralposition", "risk_facilitycoefficients", "risk_margincall", "risk_bandchange",
                  "risk_warningcrossing", "collateral_bookprice", "lending_currentprice"):
        _exec(f"VACUUM ANALYZE {table}")


# --- the cases ---------------------------------------------------------------------------------------------


def _case(case: str, *, ticks: int, stdout=None) -> dict:
    from lending.risk.revaluation import revalue_book

    rng = random.Random(17)
    times, floors, changes, opened, statements, affected = [], [], [], [], {}, 0
    sums_times, write_floors = [], []
    for i in range(ticks):
        if case == "eod":
            # One end-of-day file a day: between two of them autovacuum has long cleared the previous one's dead
            # row versions of the sums (it starts once a fifth of a table's rows are dead). Ticks here follow each
            # other within seconds, so the vacuum it would have done runs here, untimed.
            _exec("VACUUM risk_facilitycoefficients")
        moved = _move(case, i, rng)
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            run = revalue_book(trigger="price", notify=False)
            times.append(time.perf_counter() - start)
        # The most any tick took, by what the tick changed: a tick that changes bands runs the statements that record
        # them, one that changes nothing does not; only ticks that did the same things are compared across book sizes.
        path = _path(run)
        statements[path] = max(statements.get(path, 0), len(ctx.captured_queries))
        changes.append(run.band_changes)
        opened.append(run.calls_opened)
        floor, affected = _floor(moved)
        floors.append(floor)
        if case == "eod":
            # Where the tick's time goes, beside what no design that keeps per-facility sums can avoid: the statement
            # that adds the deltas to the sums, and a bare write of every affected facility's sums row once.
            sums_times.append(sum(float(q["time"]) for q in ctx.captured_queries if _SUMS_UPDATE in " ".join(q["sql"].split())))
            write_floors.append(_write_floor(moved))
        if stdout:
            stdout.write(f"  {case:>3} tick {i + 1}: {times[-1] * 1000:8.1f} ms (floor {floor * 1000:7.1f} ms, {affected:,} facilities affected)  "
                         f"band changes {run.band_changes:6,}  calls opened {run.calls_opened:5,}  statements {len(ctx.captured_queries)}")
    return {"times": times, "median": statistics.median(times), "floor": statistics.median(floors), "statements": statements,
            "changes": changes, "opened": opened, "affected": affected,
            "sums": statistics.median(sums_times) if sums_times else None,
            "write_floor": statistics.median(write_floors) if write_floors else None}


_SUMS_UPDATE = "UPDATE risk_facilitycoefficients SET securities_mv = risk_facilitycoefficients.securities_mv + d.dmv"


def _write_floor(moved: list[int]) -> float:
    """A bare UPDATE writing each affected facility's sums row once, unchanged (rolled back; median of 3): the least an
    end-of-day tick that keeps per-facility sums writes, whatever it computes. Its dead row versions are vacuumed."""
    times = []
    with connection.cursor() as cursor:
        for _ in range(3):
            with contextlib.suppress(_Rollback), transaction.atomic():
                start = time.perf_counter()
                cursor.execute(
                    "UPDATE risk_facilitycoefficients SET updated_at = updated_at WHERE facility_id IN "
                    "(SELECT DISTINCT facility_id FROM lending_collateralposition WHERE instrument_id = ANY(%s))", [moved])
                times.append(time.perf_counter() - start)
                raise _Rollback
    _exec("VACUUM risk_facilitycoefficients")
    return statistics.median(times)


class _Rollback(Exception):
    pass


def _path(run) -> str:
    """What a tick changed, which decides which of the engine's statements it runs (read after the tick, not counted)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM risk_warningcrossing WHERE run_id = %s", [run.pk])
        warnings = cursor.fetchone()[0]
    # As the engine branches: band changes run the statements that open, count and escalate calls and store the facilities;
    # warning-level changes alone store them; calls met clear the facilities' flags. Each of these is then audited.
    done = ["bands" if run.band_changes else "warning levels only" if warnings else "", "calls met" if run.calls_met else ""]
    return " + ".join(d for d in done if d) or "nothing"


def _move(case: str, i: int, rng) -> list[int]:
    """Move the reference prices for tick ``i`` (lending's current prices, as the price authority writes them);
    returns the moved instruments' ids (for the floor)."""
    factor = Decimal(str(round(1 + (0.06 if i % 2 else -0.06) * (1 + i / 10), 4)))
    with connection.cursor() as cursor:
        if case == "btc":
            asset = "BTC" if i % 2 == 0 else "ETH"
            cursor.execute("UPDATE lending_currentprice SET price_hkd = ROUND(price_hkd * %s, 2), as_of = now() WHERE asset = %s RETURNING asset", [factor, asset])
            cursor.execute("SELECT id FROM collateral_instrument WHERE code = %s", [asset])
        elif case == "one":
            cursor.execute("UPDATE lending_currentprice SET price_hkd = ROUND(price_hkd * %s, 2), as_of = now() WHERE asset = %s", [factor, SPECIAL])
            cursor.execute("SELECT id FROM collateral_instrument WHERE code = %s", [SPECIAL])
        else:
            cursor.execute(
                "UPDATE lending_currentprice SET price_hkd = GREATEST(0.01, ROUND(price_hkd * (0.97 + random() * 0.06)::numeric, 2)), as_of = now() "
                "WHERE asset NOT IN ('BTC', 'ETH')"
            )
            cursor.execute("SELECT id FROM collateral_instrument WHERE kind = 'security'")
        return [row[0] for row in cursor.fetchall()]


def _floor(moved: list[int]) -> tuple[float, int]:
    """The bare SELECT valuing just the facilities holding what moved, from positions × current prices.

    Written two ways, each timed (median of 3) and the faster kept: the holders found by the index on
    positions by instrument and their positions by the index on facility (a few holders), or a hash join
    over every position (most of the book holds what moved). PostgreSQL would pick the hash join for both,
    estimating an instrument's holders from the average, which would make the floor look slower than it is.
    When many securities moved, each way is also timed grouping by sort as well as by hash (the engine sorts).
    """
    value = """
        SELECT COUNT(*), SUM(lv) FROM (
            SELECT p.facility_id, SUM(p.quantity * cp.price_hkd * (1 - p.haircut)) AS lv
            FROM {source} JOIN collateral_instrument i ON i.id = p.instrument_id
            JOIN lending_currentprice cp ON cp.asset = i.code
            {where}
            GROUP BY p.facility_id) x
    """
    by_index = value.format(
        source="lending_collateralposition p",
        where="WHERE p.facility_id = ANY(ARRAY(SELECT DISTINCT facility_id FROM lending_collateralposition WHERE instrument_id = ANY(%s)))")
    affected = "WITH affected AS (SELECT DISTINCT facility_id FROM lending_collateralposition WHERE instrument_id = ANY(%s)) "
    by_hash = affected + value.format(  # noqa: S608 - built from constants
        source="affected a JOIN lending_collateralposition p ON p.facility_id = a.facility_id", where="")
    from lending.risk.revaluation import MANY_MOVES, MANY_MOVES_WORK_MEM

    best, count = None, 0
    with transaction.atomic(), connection.cursor() as cursor:
        many = len(moved) > MANY_MOVES
        if many:
            cursor.execute(f"SET LOCAL work_mem = '{MANY_MOVES_WORK_MEM}'")  # the memory the engine gives the same aggregate
        cursor.execute("SELECT COUNT(DISTINCT facility_id) FROM lending_collateralposition WHERE instrument_id = ANY(%s)", [moved])
        # The index way is for a few holders: with hundreds of thousands of ids in the array PostgreSQL may filter
        # every position against it one by one (minutes at 1,000,000 facilities), which no one would call a floor.
        ways = (by_index, by_hash) if cursor.fetchone()[0] <= FEW_HOLDERS else (by_hash,)
        # Many moves: the engine groups by sorting (revaluation.MANY_MOVES); the floor is timed grouping both ways.
        for sql, hashing in [(sql, hashing) for sql in ways for hashing in ((True, False) if many else (True,))]:
            cursor.execute(f"SET LOCAL enable_hashagg = {'on' if hashing else 'off'}")
            times = []
            for _ in range(3):
                start = time.perf_counter()
                cursor.execute(sql, [moved])  # noqa: S608 - built from constants
                count = cursor.fetchone()[0]
                times.append(time.perf_counter() - start)
            best = min(best if best is not None else float("inf"), statistics.median(times))
    return best, count


def _naive(sample: int, policy) -> float:
    """Per-facility ORM loop (load positions, value with lending.valuation, save) on a sample, rolled back."""
    from lending import selectors as lending_selectors
    from lending.models import Facility
    from lending.risk.revaluation import naive_revalue_facility

    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    ids = list(Facility.objects.order_by("?").values_list("id", flat=True)[:sample])
    start = time.perf_counter()
    try:
        with transaction.atomic():
            for facility in Facility.objects.filter(id__in=ids).prefetch_related("positions__instrument").iterator(chunk_size=500):
                naive_revalue_facility(facility, policy=policy, prices=prices)
            elapsed = time.perf_counter() - start
            raise _Rollback
    except _Rollback:
        pass
    return elapsed / max(1, len(ids))


class _Rollback(Exception):
    pass


# --- the report ---------------------------------------------------------------------------------------------


def _report(stdout, out: dict, *, facilities: int, holders: int) -> None:
    n = facilities
    btc, one, eod = out.get("btc"), out.get("one"), out.get("eod")
    stdout.write("")
    stdout.write(f"Book: {n:,} active facilities, {_count('lending_collateralposition'):,} collateral positions, "
                 f"{_count('risk_margincall'):,} margin calls after the run")
    lines, ok = [], []  # ok: (target, met)

    def case(label, target, r, limit, floor_ratio, *, any_size=False):
        if r is None:
            ok.append((target, None))
            lines.append(f"{label}: not timed in this run (--cases)")
            return
        ratio = r["median"] / r["floor"] if r["floor"] else float("inf")
        met = r["median"] < limit and (floor_ratio is None or ratio <= floor_ratio)
        figures = (f"{label}: median {r['median'] * 1000:.1f} ms (min {min(r['times']) * 1000:.1f}, max {max(r['times']) * 1000:.1f}); "
                   f"floor {r['floor'] * 1000:.1f} ms → {ratio:.2f}× floor; {r['affected']:,} facilities affected; "
                   f"band changes median {statistics.median(r['changes']):,.0f}")
        if not any_size and n != BASELINE:
            # The issue sets these for a book of 100,000 facilities; at another size the tick touches a different number
            # of facilities, so its figure is information here, not a verdict (the growth figure is the larger book's).
            lines.append(f"{figures}; its target (< {limit * 1000:.0f} ms" + (f", ≤ {floor_ratio:.0f}× floor" if floor_ratio else "")
                         + f") is set for a {BASELINE:,}-facility book: information at this size")
            return
        ok.append((target, met))
        lines.append(f"{figures}; target < {limit * 1000:.0f} ms" + (f", ≤ {floor_ratio:.0f}× floor" if floor_ratio else "")
                     + (" — met" if met else " — NOT met"))

    case("(a) BTC/ETH move", "BTC < 0.5 s and ≤ 2× floor", btc, 0.5, 2)
    # The same 1,000 holders at any size: its target holds whatever the book (the growth figure compares the two).
    case(f"(b) one security ({SPECIAL}, {holders:,} holders)", "one security < 50 ms", one, 0.05, None, any_size=True)
    case("(c) end of day, every security", "end of day < 2 s and ≤ 2× floor", eod, 2.0, 2)
    if eod is not None and eod.get("write_floor") is not None:
        least = eod["floor"] + eod["write_floor"]
        lines.append(f"    of the end-of-day tick: {eod['sums'] * 1000:.1f} ms adding the deltas to the sums (one UPDATE), "
                     f"{(eod['median'] - eod['sums']) * 1000:.1f} ms banding the candidates and recording what changed, with the commit "
                     f"(medians); a bare write of each affected facility's sums row once takes {eod['write_floor'] * 1000:.1f} ms, so "
                     f"floor + that write = {least * 1000:.1f} ms → the tick is {eod['median'] / least:.2f}× it (information, no target)")
        # What the tick must do beyond valuing the book: record the band changes, warnings and calls, their audit rows,
        # and commit. Within 2× the floor the valuation (the floor's own work, and the sums' write) would have the rest.
        rest = eod["median"] - eod["sums"]
        room = 2 * eod["floor"] - rest
        lines.append(f"    banding the candidates and recording what changed take {rest * 1000:.1f} ms, {rest / eod['floor']:.2f}× the floor: "
                     f"within 2× the floor, the update of the sums (valuing every affected facility and writing its sums) would have "
                     f"{room * 1000:.1f} ms"
                     + (f", {room / eod['floor']:.2f}× the floor's bare SELECT of the same values" if room > 0 else "")
                     + " (information, no target)")
    for line in lines:
        stdout.write(line)
    if btc is not None:
        speedup = out["naive_per"] / (btc["median"] / n)
        stdout.write(f"Naive per-facility ORM loop: {out['naive_per'] * 1e6:.0f} µs per facility → {out['naive_per'] * n:.1f} s for the book; "
                     f"the BTC tick is {speedup:,.0f}× faster per facility (target ≥ 100×)")
        ok.append(("≥ 100× naive", speedup >= 100))
    else:
        ok.append(("≥ 100× naive", None))
    if "baseline_one" in out and one is not None:
        growth = one["median"] / out["baseline_one"]
        stdout.write(f"Growth: the single-security tick at {n:,} facilities {one['median'] * 1000:.1f} ms vs {out['baseline_one'] * 1000:.1f} ms "
                     f"at {BASELINE:,} (same {holders:,} holders; {out.get('baseline_note', 'saved when this book was built')}): "
                     f"{growth:.2f}× (target ≤ 1.5×)")
        ok.append(("growth ≤ 1.5×", growth <= 1.5))
    stdout.write(f"Peak RSS of this process: {out['peak_mb']:.0f} MB (target < 300 MB)")
    stdout.write(f"Load average (1, 5, 15 min): {out['load']} at the start, {out['load_end']} at the end"
                 + (f"; smaller-book figures {out['saved_note']}" if "saved_note" in out else ""))
    ok.append(("< 300 MB", out["peak_mb"] < 300))
    lines, same = statements_by_size(out["statements"])
    for line in lines:
        stdout.write(line)
    ok.append(("statements independent of size", same))
    missed = [target for target, met in ok if met is False]
    unmeasured = [target for target, met in ok if met is None]
    if not missed and not unmeasured:
        stdout.write(f"Every target met: {'; '.join(t for t, _ in ok)}")
    else:
        stdout.write("Targets NOT all met: " + "; ".join(part for part in (
            f"missed {'; '.join(missed)}" if missed else "", f"not measured in this run {'; '.join(unmeasured)}" if unmeasured else "") if part)
            + f" (met: {'; '.join(t for t, m in ok if m)})")


def statements_by_size(statements: dict) -> tuple[list[str], bool | None]:
    """``statements``: {case: {book size: {what the ticks changed: most statements}}}. The report's lines, and whether
    the count is the same at every size, compared only between ticks that changed the same things at two sizes at
    least (None: no such pair, not measured)."""
    lines, same, compared = [], True, False
    for name, sizes in statements.items():
        parts = []
        for path in sorted({p for paths in sizes.values() for p in paths}):
            seen = {size: paths[path] for size, paths in sorted(sizes.items()) if path in paths}
            parts.append(f"{path} changed: " + ", ".join(f"{count} at {size:,} facilities" for size, count in seen.items()))
            if len(seen) > 1:
                compared = True
                same = same and len(set(seen.values())) == 1
        lines.append(f"SQL statements per {name} tick (most in any tick), by what the tick changed: " + "; ".join(parts))
    return lines, same if compared else None


# --- the book -------------------------------------------------------------------------------------------------


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


def _prices_ensure() -> None:
    """Reference prices for every security and BTC/ETH: the bench feed's quotes through the price authority (not timed)."""
    from lending.risk import services
    from portal.audit import SYSTEM

    with transaction.atomic():
        services.source_ensure(code="bench", name="Benchmark feed")
    services.quotes_record(actor=SYSTEM, rows=[{"source_code": "bench", "asset": asset, "price_hkd": price}
                                               for asset, price in _reference_prices().items()])


def _build(stdout, n: int, policy, *, holders: int) -> None:
    """Synthetic book, all set-based: clients, applications, facilities, positions, sums, drawn balances."""
    from django.utils import timezone

    from lending.collateral.models import Instrument
    from lending.collateral.selectors import haircuts_for
    from lending.risk import book

    start = time.perf_counter()
    special = Instrument.objects.get(code=SPECIAL).pk
    pool = list(Instrument.objects.filter(kind="security", active=True, suspended=False).exclude(pk=special).values_list("pk", flat=True))
    btc, eth = (Instrument.objects.get(code=c).pk for c in ("BTC", "ETH"))
    with transaction.atomic():
        bench_db.truncate("risk_bandchange, risk_margincall, risk_valuationsnapshot, risk_collateraltopup, risk_facilitycoefficients, "
                          "risk_revaluationrun, lending_facilitytransaction, lending_collateralposition, lending_facility, "
                          "lending_reviewstep, lending_collateralline, lending_facilityapplication, collateral_bookprice")
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
                   warned_level, client_id, policy_id, application_id)
               SELECT g, 'active', 50000000, 0, '', '', now(), now(), 0, 0, 0, 0, 'healthy', FALSE, '', 0, %s + (g %% %s), %s, g
               FROM generate_series(1, %s) g""",
            [first_client, count, policy.pk, n],
        )
        # 2–5 securities per facility (board-lot quantities), drawn from the shipped list (not SPECIAL).
        _exec(
            """INSERT INTO lending_collateralposition (kind, instrument_id, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'securities', (%s::bigint[])[1 + ((g::bigint * 7919 + s * 104729) %% %s)], '', '', '', (1 + floor(random() * 60)) * 500, 0, 1, '', g
               FROM generate_series(1, %s) g CROSS JOIN LATERAL generate_series(1, 2 + (g %% 4)) s""",
            [pool, len(pool), n],
        )
        # SPECIAL held by exactly ``holders`` facilities, spread over the book.
        step = max(1, n // max(1, holders))
        _exec(
            """INSERT INTO lending_collateralposition (kind, instrument_id, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'securities', %s, '', '', '', 2000, 0, 1, '', g FROM generate_series(1, %s, %s) g LIMIT %s""",
            [special, n, step, holders],
        )
        # VA for 60%: 40% BTC only, 10% ETH only, 10% both.
        _exec(
            """INSERT INTO lending_collateralposition (kind, instrument_id, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'virtual_asset', %s, 'BTC', '', '', ROUND((0.05 + random() * 3)::numeric, 8), 0, 1, 'CUST-B-' || g, g
               FROM generate_series(1, %s) g WHERE g %% 10 < 4 OR g %% 10 = 9""",
            [btc, n],
        )
        _exec(
            """INSERT INTO lending_collateralposition (kind, instrument_id, asset, description, haircut_class, quantity, market_value, haircut,
                                                       custody_reference, facility_id)
               SELECT 'virtual_asset', %s, 'ETH', '', '', ROUND((0.5 + random() * 60)::numeric, 8), 0, 1, 'CUST-E-' || g, g
               FROM generate_series(1, %s) g WHERE g %% 10 >= 8""",
            [eth, n],
        )
        for table in ("lending_facilityapplication", "lending_facility"):
            _exec(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [n])
        book.position_haircuts_apply(policy=policy, haircuts=haircuts_for(policy=policy))
    _exec("ANALYZE lending_collateralposition")
    _prices_ensure()  # reference prices (this also runs one revaluation of the empty-sums book: not timed)
    with transaction.atomic():
        book.coefficients_refresh(now=timezone.now())
        from lending import selectors as lending_selectors

        prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
        params = book.Scenario.current(policy=policy, prices=prices).params()
        # Drawn balances at a realistic spread of utilisation: most healthy, a tail near and over the levels.
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
    _exec("ANALYZE risk_margincall; ANALYZE risk_bandchange; ANALYZE collateral_bookprice")
    _settle()  # the starting bands and calls (not timed), then vacuumed: the ticks start from a book without dead rows
    stdout.write(f"Built a book of {n:,} facilities and {_count('lending_collateralposition'):,} positions in {time.perf_counter() - start:.1f} s")
