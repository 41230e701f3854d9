"""SQL over the whole book: live valuation, revaluation, coefficients, price moves, snapshots.

The set-based mirror of ``lending.valuation`` (the one Python implementation of lending value, the VA
cap, utilisation and band); ``tests/collateral/test_parity.py`` keeps the two equal to the cent.

Per facility the book keeps its sums (``risk_facilitycoefficients``): the securities market and lending
value at the instruments' book prices (``collateral_bookprice``), and the haircut-weighted BTC and ETH
quantities. A securities price move is applied as a delta to the sums of only the facilities holding
the instruments that moved (index on positions by instrument); a BTC/ETH move is a multiplication.

Everything here is set-based: a fixed number of statements whatever the number of
facilities. It runs on PostgreSQL and on SQLite ≥ 3.35 (UPDATE … FROM, RETURNING and
ON CONFLICT with a partial index); the only vendor differences are LEAST/GREATEST
(SQLite's scalar MIN/MAX) and how numbers are bound (see ``num``).
"""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from lending import valuation as _valuation

ACTIVE = "active"
HEALTHY, WATCH, MARGIN_CALL, CLOSE_OUT = "healthy", "watch", "margin_call", "close_out"
CALL_BANDS = (MARGIN_CALL, CLOSE_OUT)
# A facility with something drawn and no lending value at all (lending.valuation owns the rule).
NO_LENDING_VALUE_UTILISATION = _valuation.NO_LENDING_VALUE_UTILISATION


def least() -> str:
    return "LEAST" if connection.vendor == "postgresql" else "MIN"


def greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def num(value) -> Decimal | float:
    """Bind a number: NUMERIC on PostgreSQL; a float on SQLite, whose driver binds Decimal as TEXT
    (and TEXT compares greater than any number, which would silently break every band test)."""
    if value is None:
        return None
    return float(value) if connection.vendor == "sqlite" else Decimal(value)


def dt(value):
    """Bind a datetime as the backend stores it (SQLite: naive UTC text, as the ORM writes it)."""
    return connection.ops.adapt_datetimefield_value(value)


def va_cap_factor(va_max_share: Decimal) -> Decimal:
    """VA lending value may be at most share/(1 − share) of the securities lending value."""
    if va_max_share >= 1:
        return Decimal("1e9")
    if va_max_share <= 0:
        return Decimal("0")
    return va_max_share / (1 - va_max_share)


@dataclass(frozen=True)
class Scenario:
    """Prices and levels to value the book at (the current market, or a stress scenario)."""

    btc: Decimal
    eth: Decimal
    securities_factor: Decimal
    cap: Decimal
    share: Decimal
    watch: Decimal
    margin_call: Decimal
    close_out: Decimal
    # Early-warning levels (ascending); only the revaluation's warning statement reads them.
    warnings: tuple = ()

    @classmethod
    def current(cls, *, policy, prices: dict, btc_shock=Decimal("0"), eth_shock=Decimal("0"), securities_shock=Decimal("0")):
        return cls(
            btc=Decimal(prices.get("BTC") or 0) * (1 + Decimal(btc_shock)),
            eth=Decimal(prices.get("ETH") or 0) * (1 + Decimal(eth_shock)),
            securities_factor=1 + Decimal(securities_shock),
            cap=va_cap_factor(policy.va_max_share),
            share=Decimal(policy.va_max_share),
            watch=policy.watch_level,
            margin_call=policy.margin_call_level,
            close_out=policy.close_out_level,
            warnings=tuple(policy.warnings()) if hasattr(policy, "warnings") else (),
        )

    def params(self) -> dict:
        half = Decimal("0.00005")  # utilisation is rounded to 4 places before it is banded
        return {
            "btc": num(self.btc), "eth": num(self.eth), "sec": num(self.securities_factor), "cap": num(self.cap),
            "share": num(min(max(self.share, Decimal("0")), Decimal("1"))),
            "watch": num(self.watch), "mc": num(self.margin_call), "co": num(self.close_out),
            "active": ACTIVE, "nolv": num(NO_LENDING_VALUE_UTILISATION),
            # Floats for the prefilter (see live_sql).
            "f_btc": float(self.btc), "f_eth": float(self.eth), "f_sec": float(self.securities_factor), "f_cap": float(self.cap),
            "f_watch": float(self.watch - half), "f_mc": float(self.margin_call + half), "f_co": float(self.close_out - half),
        } | warning_params(self.warnings)


# Early-warning levels are bound into a fixed number of slots, so the SQL text is the same whatever the
# policy says; an unused slot holds a level no utilisation reaches.
WARNING_SLOTS = 4
_UNREACHABLE = Decimal("1000000000")


def warning_params(levels) -> dict:
    half = Decimal("0.00005")
    ordered = sorted((Decimal(str(v)) for v in levels), reverse=True)[:WARNING_SLOTS]
    slots = [None] * (WARNING_SLOTS - len(ordered)) + ordered
    params: dict = {}
    for i, level in enumerate(slots):
        params[f"w{i}"] = num(level if level is not None else _UNREACHABLE)
        params[f"f_w{i}"] = float(level - half) if level is not None else float(_UNREACHABLE)
        params[f"f_wl{i}"] = float(level) if level is not None else 0.0
    return params


def warn_sql(x: str) -> str:
    """The highest early-warning level utilisation ``x`` is at or above, 0 below them all
    (``lending.valuation.warning_level``)."""
    return "CASE " + " ".join(f"WHEN {x} >= %(w{i})s THEN %(w{i})s" for i in range(WARNING_SLOTS)) + " ELSE 0 END"


def _fence() -> str:
    """PostgreSQL inlines subqueries and would re-evaluate a column's expression wherever it is used
    (the utilisation three times in the band CASE); OFFSET 0 makes each level compute its columns once."""
    return "OFFSET 0" if connection.vendor == "postgresql" else ""


# Candidates whose band may have changed, found with float8 arithmetic (several times cheaper than
# NUMERIC on PostgreSQL). A facility is skipped only when its float utilisation, widened by more than
# the float error and the rounding of lending value to cents, bands the same as its stored band on both
# sides: banding is monotone in utilisation, so its exact band is then the stored one. The candidates
# are valued again exactly in NUMERIC; the exact values alone decide.
#
# "Bands the same on both sides" is one interval test: the stored band (and early-warning level) is the
# band of every utilisation in [lo, hi), bounds read off the levels by two simple CASEs on the stored
# band and level, so each facility costs a division and two comparisons (PostgreSQL does not share
# the common subexpressions of a CASE per level: banding each side level by level cost eight times more).
_HUGE = "CAST(1e300 AS DOUBLE PRECISION)"


def _band_bounds(band: str) -> tuple[str, str]:
    """[lo, hi) of the float utilisations banded as the stored band ``band`` (the levels widened by half a
    rounding step, ``f_watch``, ``f_mc``, ``f_co``: at or above close-out, above margin call, at or above watch);
    an unknown band: an empty interval (always a candidate)."""
    lo = (f"CASE {band} WHEN '{HEALTHY}' THEN -{_HUGE} WHEN '{WATCH}' THEN %(f_watch)s WHEN '{MARGIN_CALL}' THEN %(f_mc)s "
          f"WHEN '{CLOSE_OUT}' THEN %(f_co)s ELSE {_HUGE} END")
    hi = (f"CASE {band} WHEN '{HEALTHY}' THEN %(f_watch)s WHEN '{WATCH}' THEN %(f_mc)s WHEN '{MARGIN_CALL}' THEN %(f_co)s "
          f"WHEN '{CLOSE_OUT}' THEN {_HUGE} ELSE -{_HUGE} END")
    return lo, hi


def _warn_bounds(warn: str) -> tuple[str, str]:
    """[lo, hi) of the float utilisations whose highest early-warning level reached is the stored one, ``warn`` (float);
    a level the policy no longer has: an empty interval. Slots run from the highest level down; an unused
    slot's threshold is unreachable, so the highest level in use is bounded above by it."""
    lo = (f"CASE {warn} WHEN 0 THEN -{_HUGE} "
          + " ".join(f"WHEN %(f_wl{i})s THEN %(f_w{i})s" for i in range(WARNING_SLOTS)) + f" ELSE {_HUGE} END")
    hi = (f"CASE {warn} WHEN 0 THEN %(f_w{WARNING_SLOTS - 1})s "
          + " ".join(f"WHEN %(f_wl{i})s THEN {'%(f_w' + str(i - 1) + ')s' if i else _HUGE}" for i in range(WARNING_SLOTS))
          + f" ELSE -{_HUGE} END")
    return lo, hi


def candidates_sql(where: str = "", *, warnings: bool = False, sums: str = "risk_facilitycoefficients", flag: bool = False) -> str:
    """``warnings``: also the facilities whose early-warning level may have changed (same widening).

    ``sums``: where the per-facility sums are read (a CTE that has just updated them: its RETURNING rows).
    ``flag``: every facility of ``sums`` comes back, with a ``candidate`` column, instead of the candidates only.

    It reads the sums alone: their copies of the facility's drawn balance, band, warning level and state
    (kept equal by the database, risk migration 0006), so the whole book is one scan of one narrow table;
    a ``where`` on the facility (``f.``) joins it back."""
    # One fence: lending value (float) and utilisation are computed once per facility; the rest is a few comparisons.
    fence = _fence()
    band_lo, band_hi = _band_bounds("c.band")
    if warnings:
        warn_lo, warn_hi = _warn_bounds("c.warned_level_f")
        lo, hi = f"GREATEST({band_lo}, {warn_lo})", f"LEAST({band_hi}, {warn_hi})"
    else:
        lo, hi = band_lo, band_hi
    lvf = ("(c.securities_lv_f * %(f_sec)s + LEAST(c.btc_weight_f * %(f_btc)s + c.eth_weight_f * %(f_eth)s, "
           "c.securities_lv_f * %(f_sec)s * %(f_cap)s))")
    # Widened by more than the float error and the rounding of lending value to cents (relative 0.006 / lv).
    condition = "l.lvf <= 1 OR l.u * (1 - l.eps) < l.lo OR l.u * (1 + l.eps) >= l.hi"
    return f"""
        SELECT l.facility_id{f", ({condition}) AS candidate" if flag else ""} FROM (
            SELECT v.*, CASE WHEN v.lvf > 1 THEN v.d / v.lvf ELSE 0 END AS u, 1e-9 + 0.006 / GREATEST(v.lvf, 1) AS eps FROM (
                SELECT c.facility_id, c.drawn_f AS d, {lvf} AS lvf, {lo} AS lo, {hi} AS hi
                FROM {sums} c {"JOIN lending_facility f ON f.id = c.facility_id" if "f." in where else ""}
                WHERE c.active {where} {fence}
            ) v {fence}
        ) l
        {"" if flag else f"WHERE {condition}"}
    """


def live_sql(where: str = "", *, changed_only: bool = False) -> str:
    """One row per active facility valued at the scenario: the subquery every reader builds on.

    Columns: facility_id, client_id, drawn, old_band, old_warn, has_call, sec_mv, sec_lv, btc_qty, eth_qty, btc_w,
    eth_w, btc_mv, eth_mv, va_mv, mv, va_lv, lv, util, band.

    ``changed_only`` (PostgreSQL) first narrows the book, with a float prefilter, to facilities whose
    band may have changed; callers still compare ``band`` with ``old_band`` on the exact values.
    """
    fence = _fence()
    if changed_only and connection.vendor == "postgresql":
        where = f"{where} AND f.id IN ({candidates_sql(where)})"
    base = f"""
        SELECT f.id AS facility_id, f.client_id AS client_id, f.drawn_balance AS drawn, f.band AS old_band,
               f.warned_level AS old_warn, f.has_open_margin_call AS has_call,
               c.securities_mv * %(sec)s AS sec_mv, c.securities_lv * %(sec)s AS sec_lv,
               c.btc_qty AS btc_qty, c.eth_qty AS eth_qty, c.btc_weight AS btc_w, c.eth_weight AS eth_w,
               c.btc_qty * %(btc)s AS btc_mv, c.eth_qty * %(eth)s AS eth_mv,
               c.btc_weight * %(btc)s + c.eth_weight * %(eth)s AS va_lv_uncapped
        FROM lending_facility f
        JOIN risk_facilitycoefficients c ON c.facility_id = f.id
        WHERE f.state = %(active)s {where} {fence}
    """
    # The VA cap exactly as lending.valuation.va_counted: compared without dividing; only a binding cap divides.
    capped = f"""
        SELECT b.*, CASE WHEN %(share)s >= 1 THEN b.va_lv_uncapped
                         WHEN b.va_lv_uncapped * (1 - %(share)s) <= b.sec_lv * %(share)s THEN b.va_lv_uncapped
                         ELSE b.sec_lv * %(share)s / (1 - %(share)s) END AS va_lv
        FROM ({base}) b {fence}
    """
    valued = f"""
        SELECT b.*, b.btc_mv + b.eth_mv AS va_mv, b.sec_mv + b.btc_mv + b.eth_mv AS mv,
               ROUND(b.sec_lv + b.va_lv, 2) AS lv
        FROM ({capped}) b {fence}
    """
    with_util = f"""
        SELECT x.*,
               CASE WHEN x.lv > 0 THEN ROUND(x.drawn * 1.0 / x.lv, 4)
                    WHEN x.drawn > 0 THEN %(nolv)s ELSE 0 END AS util
        FROM ({valued}) x {fence}
    """
    return f"""
        SELECT u.*,
               CASE WHEN u.util >= %(co)s THEN '{CLOSE_OUT}'
                    WHEN u.util > %(mc)s THEN '{MARGIN_CALL}'
                    WHEN u.util >= %(watch)s THEN '{WATCH}'
                    ELSE '{HEALTHY}' END AS band
        FROM ({with_util}) u
    """


def id_array(ids) -> str:
    """Ids as one PostgreSQL array literal, bound as text and cast in the SQL (``= ANY(%(name)s::bigint[])``).

    A Python list bound as an array is adapted id by id (about 2 µs each), and a tick binds its thousands of
    candidates into several statements; the literal is built once, by a join."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def fetch(sql: str, params: dict | list | None = None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def execute(sql: str, params: dict | list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


# --- Coefficients ------------------------------------------------------------------------

# A securities position with an instrument is valued at the instrument's book price (none yet: zero);
# a line booked before the instrument master at its recorded market value.
_SEC_MV = "COALESCE(p.quantity * bp.price, CASE WHEN p.instrument_id IS NULL THEN p.market_value END, 0)"
_COEF_SELECT = f"""
    SELECT f.id, f.client_id,
           COALESCE(SUM(CASE WHEN p.kind = 'securities' THEN {_SEC_MV} ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'securities' THEN {_SEC_MV} * (1 - p.haircut) ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'BTC' THEN p.quantity ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'BTC' THEN p.quantity * (1 - p.haircut) ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'ETH' THEN p.quantity ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'ETH' THEN p.quantity * (1 - p.haircut) ELSE 0 END), 0),
           %(now)s, 0, 0, 0,
           CAST(f.drawn_balance AS DOUBLE PRECISION), f.band, CAST(f.warned_level AS DOUBLE PRECISION), f.state = 'active'
    FROM lending_facility f
    LEFT JOIN lending_collateralposition p ON p.facility_id = f.id
    LEFT JOIN collateral_bookprice bp ON bp.instrument_id = p.instrument_id AND p.kind = 'securities'
    WHERE {{where}}
    GROUP BY f.id, f.client_id, f.drawn_balance, f.band, f.warned_level, f.state
"""
_COEF_COLUMNS = ("(facility_id, client_id, securities_mv, securities_lv, btc_qty, btc_weight, eth_qty, eth_weight, updated_at, "
                 "securities_lv_f, btc_weight_f, eth_weight_f, drawn_f, band, warned_level_f, active)")
_COEF_UPSERT = """
    ON CONFLICT (facility_id) DO UPDATE SET
        client_id = excluded.client_id, securities_mv = excluded.securities_mv, securities_lv = excluded.securities_lv,
        btc_qty = excluded.btc_qty, btc_weight = excluded.btc_weight, eth_qty = excluded.eth_qty,
        eth_weight = excluded.eth_weight, updated_at = excluded.updated_at, drawn_f = excluded.drawn_f, band = excluded.band,
        warned_level_f = excluded.warned_level_f, active = excluded.active
"""
# The float copies, set from the exact columns by the database after each insert or upsert.
_COEF_FLOATS = """
    UPDATE risk_facilitycoefficients SET securities_lv_f = CAST(securities_lv AS DOUBLE PRECISION), btc_weight_f = CAST(btc_weight AS DOUBLE PRECISION),
           eth_weight_f = CAST(eth_weight AS DOUBLE PRECISION)
    WHERE updated_at = %(now)s
"""


def coefficients_refresh(*, now, facility_ids: list[int] | None = None) -> int:
    """Recompute coefficients from lending's positions (GROUP BY): for the given facilities, or the whole book."""
    if facility_ids is not None and not facility_ids:
        return 0
    book_prices_sync(now=now)
    params: dict = {"now": dt(now)}
    if facility_ids is None:
        where = "1 = 1"
    else:
        names = []
        for i, fid in enumerate(facility_ids):
            params[f"f{i}"] = int(fid)
            names.append(f"%(f{i})s")
        where = f"f.id IN ({', '.join(names)})"
    count = execute(f"INSERT INTO risk_facilitycoefficients {_COEF_COLUMNS} {_COEF_SELECT.format(where=where)} {_COEF_UPSERT}", params)
    execute(_COEF_FLOATS, {"now": params["now"]})
    return count


# New facilities are opened by lending (application_accept); the revaluation picks them up by
# looking a little behind the highest facility it already knows (ids only grow; the window
# covers facilities committed out of order). The nightly reconcile recomputes everything.
NEW_FACILITY_WINDOW = 10_000


def coefficients_sync_new(*, now) -> int:
    where = (
        "f.id > (SELECT COALESCE(MAX(facility_id), 0) FROM risk_facilitycoefficients) - %(window)s "
        "AND NOT EXISTS (SELECT 1 FROM risk_facilitycoefficients c WHERE c.facility_id = f.id)"
    )
    sql = f"INSERT INTO risk_facilitycoefficients {_COEF_COLUMNS} {_COEF_SELECT.format(where=where)} ON CONFLICT (facility_id) DO NOTHING"
    book_prices_sync(now=now)
    count = execute(sql, {"now": dt(now), "window": NEW_FACILITY_WINDOW})
    if count:
        execute(_COEF_FLOATS, {"now": dt(now)})
    return count



# --- Securities price moves ----------------------------------------------------------------------------------
#
# Invariant: every facility's securities sums equal Σ quantity × book price (× (1 − haircut)). A move is
# applied in one transaction under the book lock: the deltas of the instruments whose reference price
# (lending's current price) differs from their book price are added to the sums of the facilities that
# hold them (through the index on positions by instrument), and the book prices move to the reference.


def book_prices_sync(*, now) -> int:
    """Give every priced instrument without a book price one (at its reference price), before any sum uses it."""
    return execute(
        """
        INSERT INTO collateral_bookprice (instrument_id, price, updated_at)
        SELECT i.id, cp.price_hkd, %(now)s FROM collateral_instrument i JOIN lending_currentprice cp ON cp.asset = i.code
        WHERE i.kind = 'security' AND NOT EXISTS (SELECT 1 FROM collateral_bookprice b WHERE b.instrument_id = i.id)
        """,
        {"now": dt(now)},
    )


def securities_moves() -> list[tuple[int, Decimal, Decimal]]:
    """(instrument id, book price, reference price) of every security whose reference moved. One SELECT."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT b.instrument_id, b.price, cp.price_hkd
            FROM collateral_bookprice b JOIN collateral_instrument i ON i.id = b.instrument_id
            JOIN lending_currentprice cp ON cp.asset = i.code
            WHERE cp.price_hkd <> b.price ORDER BY b.instrument_id
            """
        )
        return [(row[0], Decimal(str(row[1])), Decimal(str(row[2]))) for row in cursor.fetchall()]


def _moves_table(moves, params: dict) -> str:
    """The moves as a derived table m(instrument_id, dp, new_price) (PostgreSQL: arrays; SQLite: VALUES)."""
    if connection.vendor == "postgresql":
        params |= {"m_ids": [m[0] for m in moves], "m_dp": [m[2] - m[1] for m in moves], "m_new": [m[2] for m in moves]}
        return "(SELECT * FROM unnest(%(m_ids)s::bigint[], %(m_dp)s::numeric[], %(m_new)s::numeric[]) AS u(instrument_id, dp, new_price))"
    rows = []
    for k, (iid, old, new) in enumerate(moves or [(0, Decimal(0), Decimal(0))]):
        params |= {f"m{k}i": iid, f"m{k}d": num(new - old), f"m{k}n": num(new)}
        rows.append(f"SELECT %(m{k}i)s AS instrument_id, %(m{k}d)s AS dp, %(m{k}n)s AS new_price")
    return "(" + " UNION ALL ".join(rows) + ")"


def _holders_only(few: bool) -> str:
    """For a few moved instruments (PostgreSQL): the holders' sums found by their primary key. The planner
    estimates an instrument's holders from the average per instrument, not the instruments that moved, and
    would hash-join the holders with a scan of every facility's sums (a cost that grows with the book); an
    array of the holders, computed first, makes it probe just those rows."""
    if not few or connection.vendor != "postgresql":
        return ""
    return ("AND risk_facilitycoefficients.facility_id = ANY(ARRAY(SELECT DISTINCT p2.facility_id FROM lending_collateralposition p2 "
            "WHERE p2.instrument_id = ANY(%(m_ids)s) AND p2.kind = 'securities'))")


def securities_moves_apply(*, moves, now, returning: bool = True, prefilter: dict | None = None,
                           candidates_only: bool = False) -> list:
    """Add the moves' deltas to the sums of the facilities holding the instruments; move the book prices.

    Two statements whatever the size of the book or the number of instruments. Returns the ids of the
    facilities whose sums changed (only those can change band).

    ``prefilter`` (PostgreSQL; the scenario's parameters): the same UPDATE, in a CTE, also runs the float
    prefilter (``candidates_sql``) over the rows it has just written, so the facilities it changed are read
    once; returns (facility id, candidate) pairs, or with ``candidates_only`` the candidates' ids alone (an
    end-of-day file moves most of the book, and only the few whose band may change come back).
    """
    params: dict = {"now": dt(now)} | (prefilter or {})
    table = _moves_table(moves, params)
    float_cast = "DOUBLE PRECISION"
    few = returning and not candidates_only
    update = f"""
            UPDATE risk_facilitycoefficients SET
                securities_mv = risk_facilitycoefficients.securities_mv + d.dmv,
                securities_lv = risk_facilitycoefficients.securities_lv + d.dlv,
                securities_lv_f = CAST(risk_facilitycoefficients.securities_lv + d.dlv AS {float_cast}),
                updated_at = %(now)s
            FROM (SELECT p.facility_id, SUM(p.quantity * m.dp) AS dmv, SUM(p.quantity * m.dp * (1 - p.haircut)) AS dlv
                  FROM lending_collateralposition p JOIN {table} m ON m.instrument_id = p.instrument_id
                  WHERE p.kind = 'securities'
                  GROUP BY p.facility_id) d
            WHERE risk_facilitycoefficients.facility_id = d.facility_id {_holders_only(few)}
            """
    with connection.cursor() as cursor:
        if prefilter is not None:
            returned = "RETURNING " + ", ".join(f"risk_facilitycoefficients.{column}" for column in (
                "facility_id", "securities_lv_f", "btc_weight_f", "eth_weight_f", "drawn_f", "band", "warned_level_f", "active"))
            cursor.execute(f"WITH moved AS ({update} {returned}) {candidates_sql(warnings=True, sums='moved', flag=not candidates_only)}",
                           params)
            rows = cursor.fetchall()
            ids = [row[0] for row in rows] if candidates_only else [(row[0], bool(row[1])) for row in rows]
        else:
            cursor.execute(f"{update} {'RETURNING risk_facilitycoefficients.facility_id' if returning else ''}", params)
            ids = [row[0] for row in cursor.fetchall()] if returning else []
        cursor.execute(
            f"""
            UPDATE collateral_bookprice SET price = m.new_price, updated_at = %(now)s
            FROM {table} m WHERE collateral_bookprice.instrument_id = m.instrument_id
            """,
            params,
        )
    return ids


# --- Haircuts of a policy version ------------------------------------------------------------------------


def _haircut_table(haircuts: dict[int, Decimal], params: dict) -> str:
    """{instrument id: haircut} as a derived table h(instrument_id, haircut)."""
    items = sorted(haircuts.items())
    if connection.vendor == "postgresql":
        params |= {"h_ids": [k for k, _ in items], "h_cut": [v for _, v in items]}
        return "(SELECT * FROM unnest(%(h_ids)s::bigint[], %(h_cut)s::numeric[]) AS u(instrument_id, haircut))"
    rows = []
    for k, (iid, cut) in enumerate(items or [(0, Decimal(1))]):
        params |= {f"h{k}i": iid, f"h{k}c": num(cut)}
        rows.append(f"SELECT %(h{k}i)s AS instrument_id, %(h{k}c)s AS haircut")
    return "(" + " UNION ALL ".join(rows) + ")"


def _class_case(policy, params: dict) -> str:
    """A legacy securities line's haircut by class under ``policy`` (unknown class: not marginable)."""
    parts = []
    for k, (cls, value) in enumerate(sorted(policy.securities_haircuts.items())):
        params |= {f"c{k}n": cls, f"c{k}v": num(Decimal(str(value)))}
        parts.append(f"WHEN %(c{k}n)s THEN %(c{k}v)s")
    return f"CASE p.haircut_class {' '.join(parts)} ELSE 1 END" if parts else "1"


def position_haircuts_apply(*, policy, haircuts: dict[int, Decimal], instruments_only: bool = False) -> int:
    """Put every position at the haircut of ``policy`` (instrument positions by the marginable list, legacy lines
    by class, VA by the policy's VA haircut). One UPDATE; positions already at it are not written.

    ``instruments_only``: only the positions of the instruments ``haircuts`` names (one instrument's
    suspension changed, say); every other position is left as it is."""
    params: dict = {"btc_h": num(policy.btc_haircut), "eth_h": num(policy.eth_haircut)}
    table = _haircut_table(haircuts, params)
    cls = _class_case(policy, params)
    if instruments_only:
        return execute(
            f"""
            UPDATE lending_collateralposition SET haircut = h.haircut FROM {table} h
            WHERE lending_collateralposition.instrument_id = h.instrument_id AND lending_collateralposition.haircut <> h.haircut
            """,
            params,
        ) if haircuts else 0
    return execute(
        f"""
        UPDATE lending_collateralposition SET haircut = x.haircut
        FROM (SELECT p.id, CASE WHEN p.instrument_id IS NOT NULL AND h.haircut IS NOT NULL THEN h.haircut
                                WHEN p.kind = 'virtual_asset' AND p.asset = 'BTC' THEN %(btc_h)s
                                WHEN p.kind = 'virtual_asset' AND p.asset = 'ETH' THEN %(eth_h)s
                                WHEN p.kind = 'securities' AND p.instrument_id IS NULL THEN {cls}
                                ELSE 1 END AS haircut
              FROM lending_collateralposition p LEFT JOIN {table} h ON h.instrument_id = p.instrument_id) x
        WHERE lending_collateralposition.id = x.id AND lending_collateralposition.haircut <> x.haircut
        """,
        params,
    )


def band_changes_under(*, policy_numbers, haircuts: dict[int, Decimal], prices: dict) -> dict:
    """How many active facilities would change band if a proposed policy (its numbers and haircuts) were in
    force now: the whole book valued from its positions at the book prices, in one SELECT (nothing written)."""
    params: dict = {"btc_h": num(policy_numbers.btc_haircut), "eth_h": num(policy_numbers.eth_haircut),
                    "btc": num(Decimal(prices.get("BTC") or 0)), "eth": num(Decimal(prices.get("ETH") or 0)),
                    "share": num(min(max(Decimal(policy_numbers.va_max_share), Decimal(0)), Decimal(1))),
                    "watch": num(policy_numbers.watch_level), "mc": num(policy_numbers.margin_call_level),
                    "co": num(policy_numbers.close_out_level), "nolv": num(NO_LENDING_VALUE_UTILISATION), "active": ACTIVE}
    table = _haircut_table(haircuts, params)
    cls = _class_case(policy_numbers, params)
    cut = (f"CASE WHEN p.instrument_id IS NOT NULL AND h.haircut IS NOT NULL THEN h.haircut WHEN p.asset = 'BTC' THEN %(btc_h)s "
           f"WHEN p.asset = 'ETH' THEN %(eth_h)s WHEN p.instrument_id IS NULL THEN {cls} ELSE 1 END")
    sql = f"""
        SELECT v.old_band, v.band, COUNT(*) FROM (
            SELECT u.old_band, CASE WHEN u.util >= %(co)s THEN '{CLOSE_OUT}' WHEN u.util > %(mc)s THEN '{MARGIN_CALL}'
                                    WHEN u.util >= %(watch)s THEN '{WATCH}' ELSE '{HEALTHY}' END AS band
            FROM (SELECT x.old_band, CASE WHEN x.lv > 0 THEN ROUND(x.drawn * 1.0 / x.lv, 4) WHEN x.drawn > 0 THEN %(nolv)s ELSE 0 END AS util
                  FROM (SELECT s.old_band, s.drawn, ROUND(s.sec_lv + CASE WHEN %(share)s >= 1 THEN s.va_lv
                                   WHEN s.va_lv * (1 - %(share)s) <= s.sec_lv * %(share)s THEN s.va_lv
                                   ELSE s.sec_lv * %(share)s / (1 - %(share)s) END, 2) AS lv
                        FROM (SELECT f.id, f.band AS old_band, f.drawn_balance AS drawn,
                                     COALESCE(SUM(CASE WHEN p.kind = 'securities' THEN {_SEC_MV} * (1 - {cut}) ELSE 0 END), 0) AS sec_lv,
                                     COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' THEN p.quantity * (1 - {cut})
                                                       * CASE p.asset WHEN 'BTC' THEN %(btc)s ELSE %(eth)s END ELSE 0 END), 0) AS va_lv
                              FROM lending_facility f
                              LEFT JOIN lending_collateralposition p ON p.facility_id = f.id
                              LEFT JOIN collateral_bookprice bp ON bp.instrument_id = p.instrument_id AND p.kind = 'securities'
                              LEFT JOIN {table} h ON h.instrument_id = p.instrument_id
                              WHERE f.state = %(active)s
                              GROUP BY f.id, f.band, f.drawn_balance) s) x) u) v
        WHERE v.band <> v.old_band GROUP BY v.old_band, v.band
    """
    rows = fetch(sql, params)
    moves = [{"from": r["old_band"], "to": r["band"], "count": r[list(r)[2]]} for r in rows]
    return {"facilities": sum(m["count"] for m in moves), "moves": moves}
