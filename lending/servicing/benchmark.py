"""``manage.py benchmark interest --facilities 100000 [--statements 10000]`` on PostgreSQL + Redis.

1. Daily accrual for the whole book: one ``accrue_day`` (one INSERT … SELECT reading each facility's
   balance from the ledger) timed over several days, beside
   * the floor: the bare grouped scan of the ledger that any accrual must read (balance per facility);
   * a naive per-facility ORM loop (balance aggregate + get_or_create per facility) on a sample;
   and a rerun of the same day, which must insert nothing.
2. Monthly statements (PDF) for ``--statements`` clients (half of them reading Chinese) issued by the job
   with two real Celery workers (``--pool=solo``) on Redis, one of them killed (SIGKILL) halfway and
   replaced by a fresh worker while the resume task re-claims its batch once the lease expires:
   statements per second over the whole run, beside the floor (the PDF rendering alone, in-process,
   times two workers) and the naive way (``issue_one`` per facility, one process), and every statement
   present exactly once.

The book is synthetic (the risk benchmark's set-based builder), on a database whose name contains "bench".
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, transaction

from portal import bench_db

DAYS = [date(2026, 10, d) for d in (1, 2, 3, 4, 5)]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _exec(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _one(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _servicing_in_force():
    from lending.risk.benchmark import _policy
    from portal.models import User

    from . import selectors, services
    from .demo import SERVICING_V1

    policy = _policy()
    maker = User.objects.get(email="bench-officer@bench.invalid")
    checker = User.objects.get(email="bench-manager@bench.invalid")
    if selectors.servicing_policy_current() is None:
        proposed = services.servicing_policy_propose(actor=maker, numbers=SERVICING_V1, reason="benchmark")
        services.servicing_policy_decide(actor=checker, policy_id=proposed.pk, approve=True)
    if not selectors.fixings_in_effect(day=DAYS[0]):
        from portal.permissions import Role
        from portal.services import user_create

        other = User.objects.filter(email="bench-officer2@bench.invalid").first() or user_create(
            email="bench-officer2@bench.invalid", password=None, role=Role.ACCOUNT_OFFICER, full_name="bench officer 2")
        fixing = services.fixing_enter(actor=maker, base_rate="hkd_prime", rate="0.052500", effective_date=date(2026, 1, 1), source="benchmark")
        services.fixing_decide(actor=other, fixing_id=fixing.pk, confirm=True)
    return policy


def _book(stdout, n: int, *, own_clients: bool = False) -> None:
    """The risk benchmark's synthetic book, then: every drawn balance as one ledger entry value-dated 1 Sep 2026,
    facilities opened before it, servicing tables emptied; optionally one client per facility."""
    from lending.risk.benchmark import _build

    # The risk builder names the columns it knew; text columns added since get an empty default.
    bench_db.text_defaults(("lending_facilityapplication", "lending_facility", "lending_collateralposition"))
    with transaction.atomic():
        bench_db.truncate("servicing_interestaccrual, servicing_accrualday, servicing_interestposting, servicing_statementbatch, "
                          "servicing_statement, servicing_statementjob, servicing_servicingrequest, servicing_facilityterms, servicing_limitchange")
    _build(stdout, n, _servicing_in_force(), holders=min(1000, max(1, n // 10)))
    with transaction.atomic():
        _exec("UPDATE lending_facility SET opened_at = '2026-08-01 00:00+08'")
        _exec("""INSERT INTO lending_facilitytransaction (facility_id, kind, amount, delta, balance_after, value_date, reference, narrative, created_at)
                 SELECT id, 'drawdown', drawn_balance, drawn_balance, drawn_balance, DATE '2026-09-01', 'BENCH', '', now()
                 FROM lending_facility WHERE drawn_balance > 0 ORDER BY id""")
        if own_clients:
            _exec("DELETE FROM portal_user WHERE email LIKE 'bench-s-%%' AND id NOT IN (SELECT client_id FROM lending_facility)")
            _exec("""INSERT INTO portal_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined, email,
                                              full_name, preferred_language, authority_limit)
                     SELECT '!', FALSE, '', '', FALSE, TRUE, now(), 'bench-s-' || g || '@bench.invalid', 'Statement Client ' || g,
                            CASE WHEN g %% 2 = 0 THEN 'zh-hant' ELSE 'en' END, 0
                     FROM generate_series(1, %s) g ON CONFLICT DO NOTHING""", [n])
            _exec("""UPDATE lending_facility f SET client_id = u.id FROM portal_user u
                     WHERE u.email = 'bench-s-' || f.id || '@bench.invalid'""")
            # Positions pledged through the collateral services are named after their instrument; the risk
            # builder leaves the name empty, which would print a statement's holdings unnamed.
            _exec("""UPDATE lending_collateralposition p SET description = i.name_en FROM collateral_instrument i
                     WHERE p.instrument_id = i.id AND p.description = ''""")
    from lending.ledger import ledger_check

    from .interest import terms_ensure

    with transaction.atomic():
        terms_ensure()
    # Bulk-built tables have no planner statistics yet (autovacuum would gather them within minutes on a
    # real database); without them PostgreSQL plans the accrual as nested loops over a few hundred rows.
    _exec("ANALYZE lending_facility, lending_facilitytransaction, servicing_facilityterms, risk_margincall, servicing_interestaccrual")
    if not ledger_check().ok:
        raise CommandError("the synthetic ledger does not add up")


def _naive_accrual(sample: int, day: date) -> float:
    """Per facility: read the balance from the ledger, compute, get_or_create the row (what an ORM loop does)."""
    from django.db.models import Sum

    from lending.models import Facility, FacilityTransaction

    from .interest import base_rates_on, daily_interest
    from .models import FacilityTerms, InterestAccrual

    ids = list(Facility.objects.order_by("id").values_list("id", flat=True)[:sample])
    rates = base_rates_on(day)
    start = time.perf_counter()
    with transaction.atomic():
        for fid in ids:
            terms = FacilityTerms.objects.get(facility_id=fid)
            balance = FacilityTransaction.objects.filter(facility_id=fid, value_date__lte=day).aggregate(b=Sum("delta"))["b"] or Decimal(0)
            rate = rates[terms.base_rate] + terms.margin
            InterestAccrual.objects.get_or_create(facility_id=fid, day=day, defaults={
                "balance": balance, "annual_rate": rate, "amount": daily_interest(balance=balance, annual_rate=rate)})
        transaction.set_rollback(True)
    return (time.perf_counter() - start) / len(ids)


def _workers(n: int, tag: str):
    env = os.environ | {"PYTHONUNBUFFERED": "1", "DEBUG": "0", "PORTAL_DEMO": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                        "SERVICING_STATEMENT_LEASE_SECONDS": "20"}
    return [subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
         "--prefetch-multiplier=1", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"stmt-{tag}{i}@%h"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]


def _wait_ready(n: int, timeout: float = 120) -> None:
    from portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= n:
            return
    raise CommandError("the Celery workers did not start")


def _cpu(proc) -> float:
    """CPU seconds (user + system) a live worker process has used: what its statements cost whatever else
    shares the cores."""
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _issued(job_id: int) -> int:
    from .models import Statement

    return Statement.objects.filter(job_id=job_id).count()


def _run_job(kind: str, start: date, end: date, *, expected: int, kill_at: float | None, stdout) -> tuple[float, dict]:
    from portal.celery import app

    from . import statements
    from .tasks import statement_job_run, statement_jobs_resume

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    procs = _workers(2, kind[:3])
    info: dict = {}
    cpu_dead = 0.0
    try:
        _wait_ready(2)
        job, _created = statements.job_start(kind=kind, period_start=start, period_end=end)
        t0 = time.perf_counter()
        statement_job_run.delay(job.pk)
        statement_job_run.delay(job.pk)  # one chain per worker; each claims batches by conditional UPDATE
        killed = False
        deadline = time.monotonic() + max(600, expected)
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == "done":
                break
            done = _issued(job.pk)
            if kill_at is not None and not killed and done >= expected * kill_at:
                cpu_dead = _cpu(procs[0])
                procs[0].send_signal(signal.SIGKILL)  # a worker dies mid-batch
                procs[0].wait()
                killed = True
                info["killed_at"] = done
                stdout.write(f"    worker killed with {done:,} of {expected:,} issued; a fresh worker joins")
                procs[0] = _workers(1, "r")[0]
            if killed and job.status == "running":
                statement_jobs_resume.delay()  # what the resume beat does every ten minutes
                statement_job_run.delay(job.pk)
            time.sleep(2 if killed else 0.5)
        elapsed = time.perf_counter() - t0
        info["worker_cpu"] = sum(_cpu(p) for p in procs) + (cpu_dead if killed else 0.0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    job.refresh_from_db()
    from .models import Statement

    rows = Statement.objects.filter(kind=kind, period_end=end)
    info.update(status=job.status, issued=rows.count(), distinct=rows.values("facility_id").distinct().count(), batches=job.batches)
    return elapsed, info


def run(stdout, *, facilities: int, statements_n: int, naive_sample: int = 2000) -> None:
    if connection.vendor != "postgresql":
        raise CommandError("The interest benchmark runs on PostgreSQL (DATABASE_URL=postgres://…/…bench…).")
    name = connection.settings_dict["NAME"]
    if "bench" not in name and not name.startswith("hb_"):
        raise CommandError("Refusing: the benchmark empties the lending, risk and servicing tables; use a database whose name contains 'bench' or starts with 'hb_'.")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise CommandError("Run with a Redis broker: CELERY_BROKER_URL=redis://…")
    from portal.celery import app

    from . import interest, statements

    app.conf.task_always_eager = False
    stdout.write(f"Building a book of {facilities:,} facilities …  (load {_load()})")
    _book(stdout, facilities)
    drawn = _one("SELECT COUNT(*) FROM lending_facility WHERE drawn_balance > 0")[0]
    times = []
    for day in DAYS:
        t0 = time.perf_counter()
        record = interest.accrue_day(day=day)
        times.append(time.perf_counter() - t0)
        stdout.write(f"  accrue {day}: {record.facilities:,} facilities, HK${record.total:,}  {times[-1] * 1000:.0f} ms")
    t0 = time.perf_counter()
    interest.accrue_day(day=DAYS[0])
    rerun = time.perf_counter() - t0
    rows = _one("SELECT COUNT(*) FROM servicing_interestaccrual WHERE day = %s", [DAYS[0]])[0]
    floors = []
    for day in DAYS:
        t0 = time.perf_counter()
        _one("SELECT COUNT(*), SUM(b) FROM (SELECT facility_id, SUM(delta) AS b FROM lending_facilitytransaction WHERE value_date <= %s GROUP BY facility_id) s", [day])
        floors.append(time.perf_counter() - t0)
    naive = _naive_accrual(min(naive_sample, facilities), DAYS[-1] + timedelta(days=1))
    median, floor = statistics.median(times), statistics.median(floors)
    stdout.write(f"Daily accrual, whole book ({drawn:,} facilities with a balance): median {median * 1000:.0f} ms "
                 f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; {len(times)} days); target < 2 s  (load {_load()})")
    stdout.write(f"  floor — the grouped ledger scan every accrual reads: {floor * 1000:.0f} ms → ratio {median / floor:.2f}×")
    stdout.write(f"  naive per-facility ORM loop: {naive * 1e6:.0f} µs per facility (sample {min(naive_sample, facilities):,}) → "
                 f"{naive * drawn:.0f} s for the book; set-based is {naive * drawn / median:,.0f}× faster")
    stdout.write(f"  rerun of {DAYS[0]}: {rerun * 1000:.0f} ms, rows for the day still {rows:,} (one per facility with a balance: {rows == drawn})")
    accrual_ok = median < 2 and rows == drawn

    stdout.write(f"Building {statements_n:,} facilities with one client each (half read Chinese) for the statements …")
    _book(stdout, statements_n, own_clients=True)
    t0 = time.perf_counter()
    d = date(2026, 9, 1)
    while d <= date(2026, 9, 30):
        interest.accrue_day(day=d)
        d += timedelta(days=1)
    interest.post_month(period_end=date(2026, 9, 30))
    stdout.write(f"  September accrued and posted ({time.perf_counter() - t0:.1f} s)")
    # Floor: rendering alone (build + HTML + PDF), in-process, on a sample; naive: issue_one per facility.
    from lending.models import Facility

    ids = list(Facility.objects.order_by("id").values_list("id", flat=True)[:42])
    # A worker's first statement in each language also parses the stylesheet and loads its fonts (once per
    # process, not per statement): rendered before the clock starts, as every worker of the run has done it
    # within its first batch.
    for item in statements.build(facility_ids=ids[:2], kind="monthly", period_start=date(2026, 9, 1), period_end=date(2026, 9, 30)):
        statements.render(item)
    ids = ids[2:]
    t0, c0 = time.perf_counter(), time.process_time()
    for item in statements.build(facility_ids=ids, kind="monthly", period_start=date(2026, 9, 1), period_end=date(2026, 9, 30)):
        statements.render(item)
    render_per, render_cpu = (time.perf_counter() - t0) / len(ids), (time.process_time() - c0) / len(ids)
    t0 = time.perf_counter()
    for fid in ids[:20]:
        statements.issue_one(facility_id=fid, kind="monthly", period_start=date(2026, 8, 1), period_end=date(2026, 8, 31))
    naive_per = (time.perf_counter() - t0) / 20
    stdout.write(f"Monthly statements for September by the job, two Celery workers; one SIGKILLed halfway and replaced  (load {_load()})")
    elapsed, info = _run_job("monthly", date(2026, 9, 1), date(2026, 9, 30), expected=statements_n, kill_at=0.5, stdout=stdout)
    rate = info["issued"] / elapsed if elapsed else 0
    complete = info["status"] == "done" and info["issued"] == info["distinct"] == statements_n
    stdout.write(f"  {info['issued']:,} statements for {info['distinct']:,} facilities (expected {statements_n:,}; job {info['status']}, "
                 f"{info['batches']} batches): {'none missing, none doubled' if complete else 'MISMATCH'}")
    stdout.write(f"Monthly statements (PDF), two workers, kill and resume included: {rate:.1f} statements/s ({elapsed:.1f} s); target ≥ 10/s  (load {_load()})")
    stdout.write(f"  floor — rendering alone, in-process: {render_per * 1000:.0f} ms per statement ({render_cpu * 1000:.0f} ms CPU) → "
                 f"{2 / render_per:.1f}/s for two workers on two free cores; the job reaches {rate * render_per / 2:.0%} of it")
    cpu_per = info["worker_cpu"] / max(info["issued"], 1)
    stdout.write(f"  the workers' CPU per statement issued (start-up, claims, reads, rendering, writes; the killed worker's "
                 f"lost batch included): {cpu_per * 1000:.0f} ms → {2 / cpu_per:.1f}/s if the two workers had a core each "
                 f"(PostgreSQL's share is not in it)")
    stdout.write(f"  naive — issue_one per facility in one process: {1 / naive_per:.1f}/s")
    stmt_ok = rate >= 10 and complete
    ok = accrual_ok and stmt_ok
    stdout.write(("Every target met" if ok else "Targets NOT all met") + f": accrual < 2 s ({'yes' if accrual_ok else 'no'}), "
                 f"statements ≥ 10/s with two workers ({'yes' if stmt_ok else 'no'}), resumable after a kill with none missing or doubled "
                 f"({'yes' if complete else 'no'})  (load {_load()})")
