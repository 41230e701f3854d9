"""The export benchmark, run by ``manage.py benchmark export --rows 1000000``.

On a dedicated PostgreSQL database (its name must contain "bench"; the lending and risk tables are
emptied first) it stores ``--rows`` end-of-day valuation snapshots (set-based, generate_series), then
exports the whole snapshot list through the real path — the export view with a compliance user, the
list's selector and filters, ``portal.exports`` — as CSV and as XLSX, each in a fresh process so each
peak RSS is that export's own. Beside them, in one run:

* the floor: PostgreSQL's own ``COPY (SELECT …) TO STDOUT WITH CSV`` of the same rows and columns, and a
  bare server-side-cursor fetch of them (no formatting at all);
* the naive way: load the rows as model instances into a list and build the file in memory (CSV), and
  openpyxl's write-only workbook (XLSX), measured on a sample (``--naive-sample``) and scaled per row,
  since at a million rows they would take gigabytes of memory on a shared machine.

Targets: peak RSS < 150 MB, CSV ≥ 50,000 rows/s, XLSX ≥ 10,000 rows/s. The last line says whether
every target was met.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from django.core.management.base import CommandError
from django.db import connection, transaction

from portal import bench_db

DAY0 = "2026-01-01"
TYPES = ("securities", "BTC", "ETH", "total")
FACILITIES = 2500
TARGET_RSS_MB, TARGET_CSV, TARGET_XLSX = 150, 50_000, 10_000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _exec(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _scalar(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _refuse_unless_bench() -> None:
    if connection.vendor != "postgresql":
        raise CommandError("The export benchmark runs on PostgreSQL (set DATABASE_URL=postgres://…/hb_…).")
    if "bench" not in connection.settings_dict["NAME"] and not connection.settings_dict["NAME"].startswith("hb_"):
        raise CommandError("Refusing: the benchmark empties the lending and risk tables; use a database whose name contains 'bench' or starts with 'hb_'.")


def _policy():
    from lending import selectors, services
    from lending.demo import POLICY_V1

    policy = selectors.policy_current()
    if policy:
        return policy
    maker, checker = _user("bench-officer@bench.invalid", "account_officer"), _user("bench-manager@bench.invalid", "credit_manager")
    proposed = services.policy_propose(actor=maker, numbers=POLICY_V1, reason="Benchmark policy")
    return services.policy_approve(actor=checker, policy_id=proposed.pk)


def _user(email, role):
    from portal.models import User
    from portal.permissions import Role
    from portal.services import user_create

    return User.objects.filter(email=email).first() or user_create(email=email, password=None, role=Role(role), full_name=email)


def build(stdout, rows: int) -> None:
    """``rows`` snapshots: FACILITIES facilities × 4 collateral types × as many days as needed."""
    if _scalar("SELECT COUNT(*) FROM risk_valuationsnapshot") == rows:
        stdout.write(f"  {rows:,} snapshots already stored")
        return
    policy = _policy()
    start = time.perf_counter()
    days = -(-rows // (FACILITIES * len(TYPES)))
    bench_db.text_defaults(("lending_facilityapplication", "lending_facility"))  # columns added since the INSERTs below were written
    with transaction.atomic():
        bench_db.truncate("risk_bandchange, risk_margincall, risk_valuationsnapshot, risk_collateraltopup, risk_facilitycoefficients, "
                          "risk_revaluationrun, lending_facilitytransaction, lending_collateralposition, lending_facility, "
                          "lending_reviewstep, lending_collateralline, lending_facilityapplication")
        _exec("DELETE FROM portal_user WHERE email LIKE 'bench-x-%%'")
        clients = FACILITIES // 20
        # Chinese names too: the CSV's BOM and the XLSX's inline strings carry them.
        _exec("""INSERT INTO portal_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined, email,
                                          full_name, preferred_language, authority_limit)
                 SELECT '!', FALSE, '', '', FALSE, TRUE, now(), 'bench-x-' || g || '@bench.invalid', '陳大文 ' || g, 'en', 0
                 FROM generate_series(1, %s) g""", [clients])
        first = _scalar("SELECT MIN(id) FROM portal_user WHERE email LIKE 'bench-x-%%'")
        _exec("""INSERT INTO lending_facilityapplication (id, state, requested_limit, purpose, created_at, updated_at, review_run,
                     recommendation, recommendation_reasons, conditions, second_approval_reasons, decline_reasons, decision_note,
                     questions, client_response, letter_text, letter_sha256, client_id)
                 SELECT g, 'active', 50000000, 'benchmark', now(), now(), 1, 'approve', '[]', '', '[]', '[]', '', '', '', '', '', %s + (g %% %s)
                 FROM generate_series(1, %s) g""", [first, clients, FACILITIES])
        _exec("""INSERT INTO lending_facility (id, state, "limit", drawn_balance, conditions, letter_sha256, accepted_at, opened_at,
                     market_value, va_market_value, lending_value, utilisation, band, has_open_margin_call, suspended_reason,
                     warned_level, client_id, policy_id, application_id)
                 SELECT g, 'active', 50000000, 0, '', '', now(), now(), 0, 0, 0, 0, 'healthy', FALSE, '', 0, %s + (g %% %s), %s, g
                 FROM generate_series(1, %s) g""", [first, clients, policy.pk, FACILITIES])
        _exec("SELECT setval(pg_get_serial_sequence('lending_facility', 'id'), %s)", [FACILITIES])
        _exec("SELECT setval(pg_get_serial_sequence('lending_facilityapplication', 'id'), %s)", [FACILITIES])
        _exec("SELECT setseed(0.13)")
        _exec("""INSERT INTO risk_valuationsnapshot (day, facility_id, client_id, collateral_type, quantity, price_hkd, market_value,
                     lending_value, drawn_balance, utilisation, band, created_at)
                 SELECT x.day, f.id, f.client_id, t.ctype,
                        CASE WHEN t.ctype IN ('BTC', 'ETH') THEN ROUND((random() * 10)::numeric, 8) END,
                        CASE t.ctype WHEN 'BTC' THEN 760000.00 WHEN 'ETH' THEN 27000.00 END,
                        ROUND((random() * 20000000)::numeric, 2), ROUND((random() * 12000000)::numeric, 2),
                        CASE WHEN t.ctype = 'total' THEN ROUND((random() * 9000000)::numeric, 2) END,
                        CASE WHEN t.ctype = 'total' THEN ROUND((random() * 1.2)::numeric, 4) END,
                        CASE WHEN t.ctype = 'total' THEN 'healthy' ELSE '' END,
                        x.day + time '23:55'
                 FROM (SELECT (DATE %s + g) AS day FROM generate_series(0, %s) g) x
                 CROSS JOIN lending_facility f
                 CROSS JOIN (VALUES ('securities'), ('BTC'), ('ETH'), ('total')) t(ctype)
                 ORDER BY x.day, f.id, t.ctype LIMIT %s""", [DAY0, days - 1, rows])
    _exec("ANALYZE risk_valuationsnapshot")
    stdout.write(f"  stored {rows:,} snapshots ({FACILITIES:,} facilities × 4 collateral types × {days} days) in {time.perf_counter() - start:.1f}s")


# --- One measurement, in its own process ----------------------------------------------------------------------


def _request(user, fmt: str):
    from django.test import RequestFactory

    request = RequestFactory().get(f"/reporting/export/snapshots.{fmt}")
    request.user = user
    return request


def measure(which: str, *, sample: int) -> dict:
    """Run one export and return its figures (called in a child process)."""
    from django.db.models import QuerySet  # noqa: F401 - loaded before the baseline RSS

    from lending.reporting import lists, views

    _refuse_unless_bench()
    user = _user("bench-compliance@bench.invalid", "compliance")
    connection.ensure_connection()
    baseline = _rss_mb()
    spec = lists.LISTS["snapshots"]
    out = {"which": which, "baseline_mb": baseline}
    start = time.perf_counter()
    if which in ("csv", "xlsx"):
        response = views.export(_request(user, which), list_name="snapshots", fmt=which)
        size = 0
        with open(os.devnull, "wb") as sink:
            for chunk in response.streaming_content:
                size += len(chunk)
                sink.write(chunk)
        rows = _scalar("SELECT COUNT(*) FROM risk_valuationsnapshot")
    elif which == "floor-copy":
        fields = [c.field.replace("__", ".") for c in spec.columns()]
        cols = ", ".join(f"s.{f}" if "." not in f else "u.email" for f in fields)
        sql = (f"COPY (SELECT {cols} FROM risk_valuationsnapshot s JOIN portal_user u ON u.id = s.client_id "  # noqa: S608 - constants
               "ORDER BY s.day DESC, s.facility_id, s.collateral_type) TO STDOUT WITH CSV HEADER")
        size = 0
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for block in copy:
                size += len(block)
        rows = _scalar("SELECT COUNT(*) FROM risk_valuationsnapshot")
    elif which == "floor-fetch":
        qs = spec.queryset(_request(user, "csv").GET)
        size = 0
        rows = sum(1 for _values in qs.values_list(*[c.field for c in spec.columns()]).iterator(chunk_size=2000))
    elif which == "naive-csv":
        import csv
        import io

        qs = spec.queryset(_request(user, "csv").GET)
        objects = list(qs[:sample])  # every row as a model instance, all in memory
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        cols = spec.columns()
        writer.writerow([str(c.header) for c in cols])
        for obj in objects:
            writer.writerow([c.get(obj) for c in cols])
        size, rows = len(buffer.getvalue().encode()), len(objects)
    elif which == "naive-xlsx":
        import tempfile

        from openpyxl import Workbook

        from portal.exports import rows_of

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Export")
        rows = 0
        qs = spec.queryset(_request(user, "xlsx").GET)[:sample]
        for row in rows_of(qs, spec.columns()):
            sheet.append(row)
            rows += 1
        with tempfile.TemporaryFile() as fh:
            workbook.save(fh)
            size = fh.tell()
    else:
        raise CommandError(f"unknown measurement {which}")
    out.update(seconds=time.perf_counter() - start, rows=rows, bytes=size, peak_mb=_rss_mb())
    return out


def _child(which: str, *, sample: int) -> dict:
    env = os.environ | {"DEBUG": "0", "PYTHONUNBUFFERED": "1"}
    env.setdefault("SECRET_KEY", "benchmark-only-not-a-secret")
    result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "manage.py", "benchmark", "export", "--measure", which, "--naive-sample", str(sample)],
        env=env, capture_output=True, text=True, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise CommandError(f"measurement {which} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(lines[-1])


def run(stdout, *, rows: int, naive_sample: int = 100_000) -> dict:
    _refuse_unless_bench()
    build(stdout, rows)
    # Close our connection so the children's reads do not wait on anything of ours.
    connection.close()
    figures = {}
    for which in ("floor-copy", "floor-fetch", "csv", "xlsx", "naive-csv", "naive-xlsx"):
        figures[which] = r = _child(which, sample=naive_sample)
        r["rate"] = r["rows"] / r["seconds"] if r["seconds"] else 0
        stdout.write(f"  {which:<11} {r['rows']:>9,} rows in {r['seconds']:7.2f}s = {r['rate']:>9,.0f} rows/s; "
                     f"{r['bytes'] / 1e6:8.1f} MB written; peak RSS {r['peak_mb']:.0f} MB (after start-up {r['baseline_mb']:.0f} MB)")
    csv_, xlsx = figures["csv"], figures["xlsx"]
    floor, fetch = figures["floor-copy"], figures["floor-fetch"]
    ncsv, nxlsx = figures["naive-csv"], figures["naive-xlsx"]
    per_row_naive_mb = (ncsv["peak_mb"] - ncsv["baseline_mb"]) / max(ncsv["rows"], 1)
    stdout.write("")
    stdout.write(f"Export of {rows:,} valuation-snapshot rows (12 columns) through the export view, on {os.cpu_count()} cores, "
                 f"load average {os.getloadavg()[0]:.2f}")
    stdout.write(f"CSV : {csv_['rate']:>9,.0f} rows/s, peak RSS {csv_['peak_mb']:.0f} MB  | floor: PostgreSQL COPY … TO STDOUT CSV "
                 f"{floor['rate']:,.0f} rows/s ({floor['rate'] / csv_['rate']:.1f}× faster), bare fetch {fetch['rate']:,.0f} rows/s | "
                 f"naive (instances in a list, file in memory, {ncsv['rows']:,}-row sample): {ncsv['rate']:,.0f} rows/s, "
                 f"{per_row_naive_mb * 1024:.2f} KB per row → ~{per_row_naive_mb * rows / 1024:.1f} GB for {rows:,} rows")
    stdout.write(f"XLSX: {xlsx['rate']:>9,.0f} rows/s, peak RSS {xlsx['peak_mb']:.0f} MB  | openpyxl write-only ({nxlsx['rows']:,}-row sample): "
                 f"{nxlsx['rate']:,.0f} rows/s, peak RSS {nxlsx['peak_mb']:.0f} MB")
    peak = max(csv_["peak_mb"], xlsx["peak_mb"])
    ok = peak < TARGET_RSS_MB and csv_["rate"] >= TARGET_CSV and xlsx["rate"] >= TARGET_XLSX and csv_["rows"] == rows
    stdout.write(("Targets met" if ok else "Targets NOT all met")
                 + f": peak RSS {peak:.0f} MB < {TARGET_RSS_MB} MB, CSV {csv_['rate']:,.0f} ≥ {TARGET_CSV:,} rows/s, "
                   f"XLSX {xlsx['rate']:,.0f} ≥ {TARGET_XLSX:,} rows/s")
    return figures
