"""SQL over the whole book: live valuation, revaluation, coefficients, snapshots.

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

ACTIVE = "active"
HEALTHY, WATCH, MARGIN_CALL, CLOSE_OUT = "healthy", "watch", "margin_call", "close_out"
CALL_BANDS = (MARGIN_CALL, CLOSE_OUT)
# A facility with something drawn and no lending value at all (as lending.services does).
NO_LENDING_VALUE_UTILISATION = Decimal("99")


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
    watch: Decimal
    margin_call: Decimal
    close_out: Decimal

    @classmethod
    def current(cls, *, policy, prices: dict, btc_shock=Decimal("0"), eth_shock=Decimal("0"), securities_shock=Decimal("0")):
        return cls(
            btc=Decimal(prices.get("BTC") or 0) * (1 + Decimal(btc_shock)),
            eth=Decimal(prices.get("ETH") or 0) * (1 + Decimal(eth_shock)),
            securities_factor=1 + Decimal(securities_shock),
            cap=va_cap_factor(policy.va_max_share),
            watch=policy.watch_level,
            margin_call=policy.margin_call_level,
            close_out=policy.close_out_level,
        )

    def params(self) -> dict:
        half = Decimal("0.00005")  # utilisation is rounded to 4 places before it is banded
        return {
            "btc": num(self.btc), "eth": num(self.eth), "sec": num(self.securities_factor), "cap": num(self.cap),
            "watch": num(self.watch), "mc": num(self.margin_call), "co": num(self.close_out),
            "active": ACTIVE, "nolv": num(NO_LENDING_VALUE_UTILISATION),
            # Floats for the prefilter (see live_sql).
            "f_btc": float(self.btc), "f_eth": float(self.eth), "f_sec": float(self.securities_factor), "f_cap": float(self.cap),
            "f_watch": float(self.watch - half), "f_mc": float(self.margin_call + half), "f_co": float(self.close_out - half),
        }


def _band_f(x: str) -> str:
    return (f"CASE WHEN {x} >= %(f_co)s THEN '{CLOSE_OUT}' WHEN {x} >= %(f_mc)s THEN '{MARGIN_CALL}' "
            f"WHEN {x} >= %(f_watch)s THEN '{WATCH}' ELSE '{HEALTHY}' END")


def _fence() -> str:
    """PostgreSQL inlines subqueries and would re-evaluate a column's expression wherever it is used
    (the utilisation three times in the band CASE); OFFSET 0 makes each level compute its columns once."""
    return "OFFSET 0" if connection.vendor == "postgresql" else ""


# Candidates whose band may have changed, found with float8 arithmetic (several times cheaper than
# NUMERIC on PostgreSQL). A facility is skipped only when its float utilisation, widened by more than
# the float error and the rounding of lending value to cents, bands the same as its stored band on both
# sides: banding is monotone in utilisation, so its exact band is then the stored one. The candidates
# are valued again exactly in NUMERIC; the exact values alone decide.
def candidates_sql(where: str = "") -> str:
    # One fence: lending value (float) is computed once per facility; the rest is cheap float arithmetic.
    fence = _fence()
    eps = "(1e-9 + 0.006 / GREATEST(l.lvf, 1))"
    ulo, uhi = f"(l.d / l.lvf * (1 - {eps}))", f"(l.d / l.lvf * (1 + {eps}))"
    return f"""
        SELECT l.facility_id FROM (
            SELECT f.id AS facility_id, f.band AS old_band, f.drawn_balance::float8 AS d,
                   c.securities_lv_f * %(f_sec)s
                   + LEAST(c.btc_weight_f * %(f_btc)s + c.eth_weight_f * %(f_eth)s, c.securities_lv_f * %(f_sec)s * %(f_cap)s) AS lvf
            FROM lending_facility f JOIN risk_facilitycoefficients c ON c.facility_id = f.id
            WHERE f.state = %(active)s {where} {fence}
        ) l
        WHERE l.lvf <= 1 OR ({_band_f(ulo)}) <> l.old_band OR ({_band_f(uhi)}) <> l.old_band
    """


def live_sql(where: str = "", *, changed_only: bool = False) -> str:
    """One row per active facility valued at the scenario: the subquery every reader builds on.

    Columns: facility_id, client_id, drawn, old_band, has_call, sec_mv, sec_lv, btc_qty, eth_qty, btc_w,
    eth_w, btc_mv, eth_mv, va_mv, mv, va_lv, lv, util, band.

    ``changed_only`` (PostgreSQL) first narrows the book, with a float prefilter, to facilities whose
    band may have changed; callers still compare ``band`` with ``old_band`` on the exact values.
    """
    lo = least()
    fence = _fence()
    if changed_only and connection.vendor == "postgresql":
        where = f"{where} AND f.id IN ({candidates_sql(where)})"
    base = f"""
        SELECT f.id AS facility_id, f.client_id AS client_id, f.drawn_balance AS drawn, f.band AS old_band,
               f.has_open_margin_call AS has_call,
               c.securities_mv * %(sec)s AS sec_mv, c.securities_lv * %(sec)s AS sec_lv,
               c.btc_qty AS btc_qty, c.eth_qty AS eth_qty, c.btc_weight AS btc_w, c.eth_weight AS eth_w,
               c.btc_qty * %(btc)s AS btc_mv, c.eth_qty * %(eth)s AS eth_mv,
               {lo}(c.btc_weight * %(btc)s + c.eth_weight * %(eth)s, c.securities_lv * %(sec)s * %(cap)s) AS va_lv
        FROM lending_facility f
        JOIN risk_facilitycoefficients c ON c.facility_id = f.id
        WHERE f.state = %(active)s {where} {fence}
    """
    valued = f"""
        SELECT b.*, b.btc_mv + b.eth_mv AS va_mv, b.sec_mv + b.btc_mv + b.eth_mv AS mv,
               ROUND(b.sec_lv + b.va_lv, 2) AS lv
        FROM ({base}) b {fence}
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

_COEF_SELECT = """
    SELECT f.id, f.client_id,
           COALESCE(SUM(CASE WHEN p.kind = 'securities' THEN p.market_value ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'securities' THEN p.market_value * (1 - p.haircut) ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'BTC' THEN p.quantity ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'BTC' THEN p.quantity * (1 - p.haircut) ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'ETH' THEN p.quantity ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN p.kind = 'virtual_asset' AND p.asset = 'ETH' THEN p.quantity * (1 - p.haircut) ELSE 0 END), 0),
           %(now)s, 0, 0, 0
    FROM lending_facility f
    LEFT JOIN lending_collateralposition p ON p.facility_id = f.id
    WHERE {where}
    GROUP BY f.id, f.client_id
"""
_COEF_COLUMNS = ("(facility_id, client_id, securities_mv, securities_lv, btc_qty, btc_weight, eth_qty, eth_weight, updated_at, "
                 "securities_lv_f, btc_weight_f, eth_weight_f)")
_COEF_UPSERT = """
    ON CONFLICT (facility_id) DO UPDATE SET
        client_id = excluded.client_id, securities_mv = excluded.securities_mv, securities_lv = excluded.securities_lv,
        btc_qty = excluded.btc_qty, btc_weight = excluded.btc_weight, eth_qty = excluded.eth_qty,
        eth_weight = excluded.eth_weight, updated_at = excluded.updated_at
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
    count = execute(sql, {"now": dt(now), "window": NEW_FACILITY_WINDOW})
    if count:
        execute(_COEF_FLOATS, {"now": dt(now)})
    return count
