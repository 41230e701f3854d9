"""``manage.py benchmark review --applications 1000``, ``manage.py benchmark revaluation --facilities 100000``, ``… crash`` (lending.recovery.benchmark), ``manage.py benchmark pages`` (portal.benchmark_pages).

``revaluation`` is the risk engine's whole-book revaluation benchmark (lending.risk.benchmark.run,
described there). ``review`` is the credit review against PostgreSQL and Redis:

Two measurements:

1. latency — applications submitted one at a time; the time from the submit commit to the
   application reaching awaiting_decision (as seen by polling the database);
2. throughput — a burst of submissions drained by two worker processes (``celery -A portal
   worker --pool=solo --concurrency=1``, twice, started by this command with DEBUG off), in
   reviews per second, with the CPU the workers used per review (a figure that, unlike
   reviews/s, hardly moves with whatever else the shared 2-core machine is doing).

Clients are made eligible through the onboarding and disclosures services first (not timed).

Where a review's time goes (measured with CaptureQueriesContext and cProfile): 36 SQL statements
— claiming the run (select for update + transition), loading steps/policy/lines/prices, the
client's onboarding facts (3) and disclosure status (1) loaded once and shared by the
eligibility, suitability and disclosure steps, one statement per step that stores its result
and claims the next step, the exposure sums (3), the watch list, and the final transition with
its audit row (advisory lock on the hash chain, durable commit). Most of the worker's CPU is
Django building those statements; the broker costs one publish and one delivery/ack per review.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries


class Command(BaseCommand):
    help = "Benchmark the credit review (PostgreSQL + a Redis-backed worker)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="which", required=True)
        review = sub.add_parser("review")
        review.add_argument("--applications", type=int, default=1000)
        review.add_argument("--latency-samples", type=int, default=200, help="How many of them to submit one at a time.")
        review.add_argument("--workers", type=int, default=2)
        review.add_argument("--prefetch", type=int, default=1, help="Messages each worker reserves ahead (settings: 1).")
        revaluation = sub.add_parser("revaluation")
        revaluation.add_argument("--facilities", type=int, default=100_000)
        revaluation.add_argument("--ticks", type=int, default=8)
        revaluation.add_argument("--naive-sample", type=int, default=5000)
        revaluation.add_argument("--statements-at", type=int, default=10_000, help="Smaller book size at which the SQL statement count is compared.")
        revaluation.add_argument("--holders", type=int, default=1000, help="Facilities holding the single security the one-security tick moves.")
        revaluation.add_argument("--reuse", action="store_true", help="Tick the book an earlier run built (same size and holders) instead of building it again.")
        revaluation.add_argument("--baseline-database", default="",
                                 help="With --facilities above 100,000: time the growth baseline in this run on the 100,000-facility book "
                                      "(same holders) an earlier `--facilities 100000` run left in this database, instead of the figure saved "
                                      "when this book was built.")
        revaluation.add_argument("--cases", default="btc,one,eod",
                                 help="The ticks to time, comma-separated (btc, one, eod); targets of the others are reported as not measured.")

        interest = sub.add_parser("interest", help="Daily accrual for the whole book and statements by the job (lending.servicing.benchmark).")
        interest.add_argument("--facilities", type=int, default=100_000)
        interest.add_argument("--statements", type=int, default=10_000)
        interest.add_argument("--naive-sample", type=int, default=2000)
        crash = sub.add_parser("crash", help="A 30%% BTC drop on the whole book: calls, close-out plans and notifications with two workers (lending.recovery.benchmark).")
        crash.add_argument("--facilities", type=int, default=100_000)
        crash.add_argument("--naive-sample", type=int, default=300)
        export = sub.add_parser("export", help="Streamed CSV/XLSX export of the valuation-snapshot list (lending.reporting.benchmark).")
        export.add_argument("--rows", type=int, default=1_000_000)
        export.add_argument("--naive-sample", type=int, default=100_000)
        export.add_argument("--measure", default="", help=argparse.SUPPRESS)
        pages = sub.add_parser("pages", help="Main pages and list APIs at a broker's volume, beside a bare view (portal.benchmark_pages).")
        pages.add_argument("--scale", type=float, default=1.0, help="Fraction of the full volume (100,000 facilities, 10,000 applications, 1,000,000 audit rows).")
        pages.add_argument("--requests", type=int, default=40, help="Timed requests per page.")
        pages.add_argument("--reuse", action="store_true", help="Measure the book an earlier run built (same scale) instead of building it again.")

    def handle(self, *args, which, **options):
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(f"The database {connection.settings_dict['NAME']} has unapplied migrations: run "
                               "`python manage.py migrate` against it first (the benchmark builds its book with the current schema).")
        if which == "pages":
            from portal.benchmark_pages import run as pages_run

            pages_run(self.stdout, scale=options["scale"], requests=options["requests"], reuse=options["reuse"])
            return
        if which == "export":
            from lending.reporting import benchmark

            if options["measure"]:  # one measurement in a child process: print its figures as JSON
                self.stdout.write(json.dumps(benchmark.measure(options["measure"], sample=options["naive_sample"])))
            else:
                benchmark.run(self.stdout, rows=options["rows"], naive_sample=options["naive_sample"])
            return
        if which == "crash":
            from lending.recovery.benchmark import run as crash_run

            crash_run(self.stdout, facilities=options["facilities"], naive_sample=options["naive_sample"])
            return
        if which == "interest":
            from lending.servicing.benchmark import run as interest_run

            interest_run(self.stdout, facilities=options["facilities"], statements_n=options["statements"], naive_sample=options["naive_sample"])
            return
        if which == "review":
            self.review(**options)
        elif which == "revaluation":
            from lending.risk.benchmark import run

            run(self.stdout, facilities=options["facilities"], ticks=options["ticks"],
                naive_sample=options["naive_sample"], statements_at=options["statements_at"], holders=options["holders"],
                reuse=options["reuse"], baseline_database=options["baseline_database"], cases=_cases(options["cases"]))

    # --- set-up ---------------------------------------------------------------------------

    def _clients(self, n: int, staff):
        from allauth.account.models import EmailAddress
        from django.db import transaction

        from lending.demo import client_make_eligible
        from portal.models import User
        from portal.permissions import Role
        from portal.services import user_create

        # Reviews of one client's many applications would hit the client exposure limit;
        # spread them over enough clients, each eligible through the real services.
        wanted = max(10, n // 20)
        users = list(User.objects.filter(email__startswith="bench-client-").order_by("id")[:wanted])
        start = time.perf_counter()
        for i in range(len(users), wanted):
            with transaction.atomic():
                user = user_create(email=f"bench-client-{i:05d}@bench.invalid", password=None, role=Role.CLIENT, full_name=f"Bench Client {i}")
                EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
                client_make_eligible(user=user, staff=staff, index=90000 + i)
            users.append(user)
        self.stdout.write(f"  {len(users)} eligible clients ready ({time.perf_counter() - start:.1f}s)")
        return users

    def _staff(self):
        from portal.models import User
        from portal.permissions import Role
        from portal.services import user_create

        def get(email, role):
            return User.objects.filter(email=email).first() or user_create(email=email, password=None, role=role, full_name=email)

        return get("bench-officer@bench.invalid", Role.ACCOUNT_OFFICER), get("bench-manager@bench.invalid", Role.CREDIT_MANAGER)

    def _draft(self, user):
        from lending import services

        return services.application_create(
            user=user, requested_limit="1000000", purpose="benchmark",
            lines=[{"kind": "securities", "haircut_class": "A", "market_value": "5000000"},
                   {"kind": "virtual_asset", "asset": "BTC", "quantity": "0.5", "custody_reference": "BENCH"}],
        )

    def _workers(self, n: int, *, prefetch: int = 1):
        """``n`` worker processes, each ``--pool=solo`` (one task at a time, no child process, no
        threads): "two worker processes" means exactly two Python processes running reviews.

        They run as in production: DEBUG off (with DEBUG on Django keeps every SQL statement of
        every task in memory and Celery warns about it), with a throwaway secret key.
        """
        env = os.environ | {"PYTHONUNBUFFERED": "1", "DEBUG": "0", "PORTAL_DEMO": "0", "SECRET_KEY": secrets.token_urlsafe(50)}
        procs = []
        for i in range(n):
            procs.append(subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
                [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
                 f"--prefetch-multiplier={prefetch}", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench{i}@%h"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        return procs

    def _stop(self, procs) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)

    def _wait_ready(self, n: int, timeout=180):
        from portal.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            if len(replies) >= n:
                return
        raise CommandError("The workers did not start.")

    # --- the benchmark --------------------------------------------------------------------------

    def review(self, *, applications: int, latency_samples: int, workers: int, prefetch: int = 1, **_):
        from lending import selectors, services
        from lending.demo import POLICY_V1, prices_ensure
        from lending.models import AppState, FacilityApplication
        from portal.celery import app

        if connection.vendor != "postgresql":
            raise CommandError("Run against PostgreSQL: set DATABASE_URL=postgres://…")
        if not settings.CELERY_BROKER_URL.startswith("redis://"):
            raise CommandError("Run with a Redis broker: set CELERY_BROKER_URL=redis://…")
        officer, manager = self._staff()
        if selectors.policy_current() is None:
            proposed = services.policy_propose(actor=officer, numbers=POLICY_V1 | {"client_exposure_limit": "5000000000"}, reason="benchmark")
            services.policy_approve(actor=manager, policy_id=proposed.pk)
        prices_ensure()
        from lending.risk import services as risk_services
        from portal.audit import SYSTEM

        # Fresh quotes from the demo sources (the credit review values collateral at fresh prices only).
        risk_services.quotes_record(actor=SYSTEM, rows=[{"source_code": code, "asset": asset, "price_hkd": price}
                                                        for code, _name in risk_services.DEMO_SOURCES
                                                        for asset, price in (("BTC", "760000"), ("ETH", "27000"))])
        clients = self._clients(applications, officer)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)

        # Queries per review, measured in-process on one application.
        from django.test.utils import CaptureQueriesContext

        probe = self._draft(clients[0])
        app.conf.task_always_eager = False
        from unittest import mock

        with mock.patch("lending.tasks.credit_review.delay_on_commit"):
            services.application_submit(user=clients[0], application_id=probe.pk, confirm_terms=True)
        with CaptureQueriesContext(connection) as ctx:
            services.review_run(application_id=probe.pk, run=1)
        review_queries = len(ctx.captured_queries)
        reset_queries()

        procs = self._workers(workers, prefetch=prefetch)
        try:
            self._wait_ready(workers)
            # 1. Latency: one at a time.
            samples = min(latency_samples, applications)
            drafts = [self._draft(clients[i % len(clients)]) for i in range(samples)]
            latencies = []
            for d in drafts:
                started = time.perf_counter()
                services.application_submit(user=d.client, application_id=d.pk, confirm_terms=True)
                while FacilityApplication.objects.filter(pk=d.pk, state=AppState.AWAITING_DECISION).values_list("id", flat=True).first() is None:
                    time.sleep(0.005)
                    if time.perf_counter() - started > 30:
                        raise CommandError(f"Application {d.pk} did not finish its review in 30 s.")
                latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        finally:
            self._stop(procs)
        # 2. Throughput: a burst queued while no worker runs, then drained by fresh workers.
        burst_n = max(applications - samples, 0) or applications
        burst = [self._draft(clients[i % len(clients)]) for i in range(burst_n)]
        ids = [d.pk for d in burst]
        for d in burst:
            services.application_submit(user=d.client, application_id=d.pk, confirm_terms=True)
        cpu_before = os.times()
        procs = self._workers(workers, prefetch=prefetch)
        try:
            self._wait_ready(workers)
            pending = FacilityApplication.objects.filter(pk__in=ids).exclude(state=AppState.AWAITING_DECISION)
            started, waiting = time.perf_counter(), pending.count()
            while pending.exists():
                time.sleep(0.02)
                if time.perf_counter() - started > 600:
                    raise CommandError("The burst did not drain in 10 minutes.")
            elapsed = time.perf_counter() - started
        finally:
            self._stop(procs)
        cpu_after = os.times()
        # CPU the worker processes used (start-up included), per review: unlike reviews/s it hardly
        # depends on what else the shared machine is doing.
        worker_cpu = (cpu_after.children_user + cpu_after.children_system) - (cpu_before.children_user + cpu_before.children_system)
        rate = waiting / elapsed
        self.stdout.write(self.style.SUCCESS("Credit review benchmark"))
        self.stdout.write(f"  one at a time ({samples} applications): median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms")
        self.stdout.write(f"  burst of {burst_n} with {workers} worker processes: {rate:.1f} reviews/s ({waiting} queued reviews drained in {elapsed:.1f} s)")
        self.stdout.write(f"  worker CPU: {worker_cpu * 1000 / burst_n:.1f} ms per review (both processes, start-up included); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        self.stdout.write(f"  SQL statements per review (7 steps + transitions, measured in-process): {review_queries}; broker round trips per review: 1 publish + 1 delivery/ack")
        self.stdout.write(f"  targets: median < 300 ms {'OK' if statistics.median(latencies) < 300 else 'MISSED'}, p95 < 1000 ms {'OK' if p95 < 1000 else 'MISSED'}, ≥ 30 reviews/s {'OK' if rate >= 30 else 'MISSED'}")
        _ = Decimal


def _cases(text: str) -> tuple[str, ...]:
    from lending.risk.benchmark import CASES

    cases = tuple(c.strip() for c in (text or "").split(",") if c.strip())
    unknown = sorted(set(cases) - set(CASES))
    if unknown or not cases:
        raise CommandError(f"--cases: choose among {', '.join(CASES)} (got {text!r}).")
    return cases
