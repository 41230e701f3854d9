"""``manage.py benchmark crash --facilities 100000`` on PostgreSQL + Redis: a 30% BTC drop on the whole book.

On a dedicated database (name containing "bench" or starting with ``hb_``) the risk benchmark's set-based
builder makes the book (facilities holding board lots of the shipped securities, 60% of them BTC and/or ETH,
drawn balances spread over the bands, the starting calls settled). Two Celery workers (``--pool=solo``) run
against Redis. Then, timed from the first quote:

1. BTC falls 30% through the price authority in two quotes (each within the policy's quote band): each
   quote revalues the book in its own transaction, opens every call and escalates every call at the
   close-out level, and enqueues the call notifications after commit;
2. the close-out planning job runs (as its one-minute beat would) and plans every escalated call in batches;
3. the workers send the notifications: each call claimed once, each e-mail claimed once.

Done when every call of the crash is notified, every close-out has a plan and every notification's e-mail is
sent. Printed beside the target (60 s) and the naive way (a plan per call, one call at a time; measured on a
sample, per call). Checks: no call notified twice, no notification e-mailed twice, one plan per close-out.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, transaction

from portal import bench_db

TARGET_SECONDS = 60.0


def _one(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _workers(n: int):
    env = os.environ | {"PYTHONUNBUFFERED": "1", "DEBUG": "0", "PORTAL_DEMO": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
    return [subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
         "--prefetch-multiplier=1", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"crash{i}@%h"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]


def _wait_ready(n: int, timeout: float = 120) -> None:
    from portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= n:
            return
    raise CommandError("the Celery workers did not start")


def _policies():
    from lending.risk.benchmark import _policy
    from portal.models import User

    from . import selectors, services
    from .demo import RECOVERY_V1

    policy = _policy()
    maker = User.objects.get(email="bench-officer@bench.invalid")
    checker = User.objects.get(email="bench-manager@bench.invalid")
    if selectors.recovery_policy_current() is None:
        proposed = services.recovery_policy_propose(actor=maker, numbers=RECOVERY_V1, reason="benchmark")
        services.recovery_policy_decide(actor=checker, policy_id=proposed.pk, approve=True)
    return policy


def _clear_recovery() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        bench_db.truncate("recovery_execution, recovery_planamendment, recovery_dunningnotice, recovery_recovery, recovery_debt, "
                          "recovery_liquidationline, recovery_liquidationplan")
        bench_users = "SELECT id FROM portal_user WHERE email LIKE '%%@bench.invalid'"
        # A notification's deliveries first (the foreign key is checked at commit).
        cursor.execute(f"DELETE FROM portal_notificationdelivery WHERE notification_id IN (SELECT id FROM portal_notification WHERE user_id IN ({bench_users}))")  # noqa: S608 - constant SQL
        cursor.execute(f"DELETE FROM portal_notification WHERE user_id IN ({bench_users})")  # noqa: S608


def _close_out_tail(policy) -> None:
    """The builder's book tops out at 1.19 utilisation, which a 30% BTC fall cannot take to the close-out level
    (1.30): 2% of the BTC holders are drawn to 1.20–1.28 first, so the crash has close-outs to plan."""
    from lending import selectors as lending_selectors
    from lending.risk import book
    from lending.risk.revaluation import revalue_book

    with transaction.atomic():
        prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
        params = book.Scenario.current(policy=policy, prices=prices).params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE lending_facility SET drawn_balance = ROUND(v.lv * (1.20 + (v.facility_id %% 9) * 0.01), 2)
                    FROM ({book.live_sql()}) v WHERE lending_facility.id = v.facility_id AND v.btc_qty > 0 AND v.facility_id %% 50 = 1""",  # noqa: S608
                params)
        revalue_book(trigger="beat", notify=False)


def _quote(factor: Decimal) -> None:
    from lending import selectors as lending_selectors
    from lending.risk import services as risk
    from portal.audit import SYSTEM

    btc = lending_selectors.prices_current()["BTC"].price_hkd
    risk.quotes_record(actor=SYSTEM, rows=[{"source_code": "bench", "asset": "BTC", "price_hkd": (btc * factor).quantize(Decimal("0.01"))}])


def _naive_per_call(sample: int) -> tuple[float, int]:
    """A plan per call, one call at a time (its own queries for positions, terms, versions), rolled back."""
    from django.utils import timezone

    from lending.risk.models import MarginCall
    from portal.audit import SYSTEM

    from .models import LiquidationPlan
    from .services import _build_plans, _inputs

    calls = list(MarginCall.objects.filter(state="escalated").select_related("facility").order_by("?")[:sample])
    if not calls:
        return 0.0, 0
    try:
        with transaction.atomic():
            # The crash's plans stand aside inside this rolled-back transaction, so the same calls are planned again.
            LiquidationPlan.objects.filter(call_id__in=[c.pk for c in calls], state="proposed").update(state="withdrawn")
            start = time.perf_counter()
            for call in calls:
                _build_plans([call], actor=SYSTEM, inputs=_inputs(), now=timezone.now())
            elapsed = time.perf_counter() - start
            raise _Rollback
    except _Rollback:
        pass
    return elapsed / len(calls), len(calls)


class _Rollback(Exception):
    pass


def run(stdout, *, facilities: int = 100_000, naive_sample: int = 300, timeout: float = 600) -> dict:
    from lending.risk.benchmark import _build
    from portal.celery import app

    from .tasks import plans_prepare

    if connection.vendor != "postgresql":
        raise CommandError("The crash benchmark runs on PostgreSQL (set DATABASE_URL=postgres://…/hb_bench).")
    name = connection.settings_dict["NAME"]
    if "bench" not in name and not name.startswith("hb_"):
        raise CommandError("Refusing: the benchmark empties the lending, risk and recovery tables; use a database whose name contains 'bench' (or starts with 'hb_').")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise CommandError("Run with a Redis broker: set CELERY_BROKER_URL=redis://…")
    policy = _policies()
    _clear_recovery()
    from unittest import mock

    with mock.patch("lending.risk.tasks.margin_calls_notify.delay_on_commit"):
        _build(stdout, facilities, policy, holders=min(1000, facilities // 100))
        _close_out_tail(policy)
    # The calls open before the crash are old news: mark them told, so the run counts the crash's own.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE risk_margincall SET notified_at = now() WHERE notified_at IS NULL")
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM risk_margincall")
        first_call = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM portal_notification")
        first_note = cursor.fetchone()[0]
        cursor.execute("SELECT COUNT(*) FROM risk_margincall WHERE state IN ('open', 'escalated')")
        open_before = cursor.fetchone()[0]
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    procs = _workers(2)
    out: dict = {}
    try:
        _wait_ready(2)
        stdout.write(f"Two workers ready; {open_before:,} calls open before the crash. BTC falls 30% in two quotes …")
        t0 = time.perf_counter()
        _quote(Decimal("0.85"))
        t_first = time.perf_counter() - t0
        _quote(Decimal("0.70") / Decimal("0.85"))
        t_prices = time.perf_counter() - t0
        plans_prepare.delay()  # the one-minute beat's run, sent at once
        deadline = time.monotonic() + timeout
        phases: dict[str, float] = {}
        while True:
            row = _one(
                """SELECT
                     (SELECT COUNT(*) FROM risk_margincall WHERE id > %s),
                     (SELECT COUNT(*) FROM risk_margincall WHERE notified_at IS NULL),
                     (SELECT COUNT(*) FROM risk_margincall m WHERE m.state = 'escalated' AND m.band = 'close_out'
                        AND NOT EXISTS (SELECT 1 FROM recovery_liquidationplan p WHERE p.call_id = m.id)),
                     (SELECT COUNT(*) FROM portal_notification WHERE id > %s),
                     (SELECT COUNT(*) FROM portal_notification WHERE id > %s AND emailed_at IS NULL)""",
                [first_call, first_note, first_note])
            calls, unnotified, unplanned, notes, unsent = row
            now = time.perf_counter() - t0
            for key, done in (("notified", calls and not unnotified), ("planned", not unplanned), ("emailed", notes and not unsent and not unnotified)):
                if done and key not in phases:
                    phases[key] = now
            if calls and not unnotified and not unplanned and notes and not unsent:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        out.update(phases=phases, calls=calls, unnotified=unnotified, unplanned=unplanned, notes=notes, unsent=unsent, elapsed=elapsed,
                   first_quote=t_first, prices=t_prices)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    opened = _one("SELECT COUNT(*) FROM risk_margincall WHERE id > %s", [first_call])[0]
    escalated = _one("SELECT COUNT(*) FROM risk_margincall WHERE state = 'escalated' AND band = 'close_out'")[0]
    plans = _one("SELECT COUNT(*) FROM recovery_liquidationplan")[0]
    plan_dupes = _one("SELECT COUNT(*) FROM (SELECT call_id FROM recovery_liquidationplan GROUP BY call_id HAVING COUNT(*) > 1) d")[0]
    note_dupes = _one(
        "SELECT COUNT(*) FROM (SELECT user_id, kind, title FROM portal_notification WHERE id > %s GROUP BY user_id, kind, title HAVING COUNT(*) > 1) d",
        [first_note])[0]
    lines = _one("SELECT COUNT(*) FROM recovery_liquidationline")[0]
    naive_per, sampled = _naive_per_call(naive_sample)
    batched_per = None
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(proposed_at), MAX(proposed_at) FROM recovery_liquidationplan")
        lo, hi = cursor.fetchone()
    if lo and hi and plans:
        batched_per = max((hi - lo).total_seconds(), 0.001) / plans
    ok_time = out["elapsed"] <= TARGET_SECONDS and not out["unnotified"] and not out["unplanned"] and not out["unsent"]
    ok_once = plan_dupes == 0 and note_dupes == 0 and plans == escalated
    stdout.write("")
    stdout.write(f"Book: {facilities:,} facilities. The crash opened {opened:,} calls; {escalated:,} are escalated at the close-out level.")
    stdout.write(f"Prices: first quote revalued the book in {out['first_quote']:.2f} s, both in {out['prices']:.2f} s (the price authority's transactions).")
    stdout.write(f"Everything done {out['elapsed']:.1f} s after the first quote (target ≤ {TARGET_SECONDS:.0f} s with two workers): "
                 f"{out['unnotified']:,} calls not notified, {out['unplanned']:,} close-outs without a plan, {out['unsent']:,} of {out['notes']:,} notifications not e-mailed"
                 + (" — met" if ok_time else " — NOT met"))
    ph = out["phases"]
    stdout.write("Phases after the first quote: " + ", ".join(f"{k} {ph[k]:.1f} s" for k in ("planned", "notified", "emailed") if k in ph)
                 + " (calls notified by lending.risk's margin_calls_notify, one call per transaction; e-mails one task each)")
    stdout.write(f"Plans: {plans:,} ({lines:,} lines), one per close-out ({plan_dupes} calls with two); batched "
                 + (f"{batched_per * 1000:.2f} ms per plan" if batched_per else "n/a")
                 + f"; the naive way (one call at a time): {naive_per * 1000:.2f} ms per plan on {sampled} calls → {naive_per * escalated:.1f} s for the close-outs")
    stdout.write(f"Notifications: {out['notes']:,} created, each e-mailed once ({note_dupes} duplicates by recipient and title)")
    stdout.write(("Every target met" if ok_time and ok_once else "Targets NOT all met")
                 + f": every call notified, every close-out planned and every notification sent within {TARGET_SECONDS:.0f} s; each exactly once")
    return out | {"opened": opened, "escalated": escalated, "plans": plans, "ok": ok_time and ok_once}
