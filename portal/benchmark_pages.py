"""``manage.py benchmark pages [--scale 1.0] [--requests 40] [--reuse]``: the main pages and list API at a broker's volume.

On a dedicated, freshly migrated database (SQLite or PostgreSQL; its name must contain "bench" or start
with ``hb_``) it builds, in bulk and in the shape the services write, a book at a tenth of the volume,
measures every page, grows the book to the full volume and measures again:

* 100,000 active facilities (each with its accepted application, 2–5 shipped securities in board lots,
  BTC/ETH for 60%, the drawdown as a ledger entry) for 5,000 clients with profiles; the risk engine's
  coefficients, a full revaluation (bands, margin calls) and the book summary the board reads;
* 10,000 applications in the credit queue's states; 2,000 submitted PI attestations and 1,000 margin
  accounts waiting for confirmation (the onboarding queue);
* 1,000,000 audit rows, hash-chained as ``portal.audit`` chains them.

Each page is requested in-process with Django's test Client (the whole middleware stack: session, auth,
MFA, CSP), DEBUG off, as the staff member or client who uses it, each request paired with one to a bare
view that runs one query behind the same middleware (so both see the same load on a shared machine). Per
page: median server time, throughput (1 / median), the share of the bare view's throughput, SQL statements,
and, where the page used to do it another way, that naive way's cost at the same volume.

Targets per page: median < 50 ms; at least 1/8 of the bare view's throughput; at the full volume within
1.2× of its own median at a tenth (nothing grows with the data). The last line says whether every target
was met. The machine's load average is printed beside the figures: they move with whatever else runs.

``--reuse``: when the database already holds the full book this run would build (left by an earlier run), measure
it again instead of building it (about 13 minutes at the full volume); its statistics are refreshed and the
engine settled at fresh quotes first. The figures at a tenth (the growth baseline) then come from the run that
built the book, as it saved them, and are printed with their time, load average and the code they measured.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection, transaction
from django.http import HttpResponse
from django.test.utils import override_settings
from django.urls import include, path
from django.utils import timezone

FULL = {"facilities": 100_000, "applications": 10_000, "audit": 1_000_000, "attestations": 2_000, "profiles_waiting": 1_000}
TARGET_MS = 50.0
THROUGHPUT_SHARE = 1 / 8
GROWTH = 1.2
EMAIL = "bench-p-{}@bench.invalid"


# --- the bare view and its URLconf (used only while measuring) ----------------------------------------------


def bare_view(request):
    from portal.models import User

    n = User.objects.filter(pk=request.user.pk).count()
    return HttpResponse(f"ok {n}", content_type="text/plain")


urlpatterns = [path("bench/bare/", bare_view), path("", include("portal.urls"))]


# --- entry point -------------------------------------------------------------------------------------------------


def run(stdout, *, scale: float = 1.0, requests: int = 40, reuse: bool = False) -> bool:
    # Floors keep a tenth meaningful at small scales: the queues then still fill their first page.
    floors = {"facilities": 1000, "applications": 1000, "audit": 10_000, "attestations": 600, "profiles_waiting": 300}
    full = {k: max(floors[k], int(v * scale)) for k, v in FULL.items()}
    tenth = {k: max(1, v // 10) for k, v in full.items()}
    saved = _guard(full, reuse=reuse)
    stdout.write(f"Database: {connection.vendor} ({_db_name()}); load average {_load()} on {os.cpu_count()} cores; code {_code()}")
    results = {}
    if saved is not None:
        actors = _actors_reused()
        results["tenth"] = saved["tenth"]
        note = f"saved by the run that built the book at {saved['at']} (load average {saved['load']}, code {saved['code']})"
        stdout.write(f"Reusing the book of {full['facilities']:,} facilities, {full['applications']:,} queue applications, {full['audit']:,} audit rows; "
                     f"figures at a tenth {note}")
        started = time.perf_counter()
        _reused_settle()
        summary_ms = _settle(actors)
        stdout.write(f"  statistics refreshed, quotes recorded again, engine settled ({time.perf_counter() - started:.0f} s); "
                     f"book summary taken in {summary_ms:.0f} ms (once a minute, not per request)")
        results["full"] = _measure_all(stdout, actors, requests=requests)
        results["full"]["naive"] = _naive(actors)
        return _report(stdout, results, full=full, tenth_note=note if saved["code"] == _code() else note + " — the code has changed since")
    actors = _actors(stdout)
    built = {k: 0 for k in full}
    for label, wanted in (("tenth", tenth), ("full", full)):
        started = time.perf_counter()
        _grow(stdout, actors, built, wanted)
        stdout.write(f"Built {label}: " + ", ".join(f"{v:,} {k}" for k, v in built.items()) + f" ({time.perf_counter() - started:.0f} s)")
        summary_ms = _settle(actors)
        stdout.write(f"  engine: full revaluation and the book summary the board reads: summary taken in {summary_ms:.0f} ms (once a minute, not per request)")
        results[label] = _measure_all(stdout, actors, requests=requests)
        results[label]["naive"] = _naive(actors)
        if label == "tenth":
            _save({"full": full, "tenth": results["tenth"], "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load": _load(),
                   "code": _code()})
    return _report(stdout, results, full=full)


def _db_name() -> str:
    return str(connection.settings_dict["NAME"])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _code() -> str:
    """The commit the measured code is at (``+`` when the work tree differs from it), to tell saved figures apart."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S607
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S607
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return commit + ("+" if dirty else "")


def _guard(full: dict, *, reuse: bool) -> dict | None:
    """Refuses a database not meant for benchmarks; returns the saved figures when ``reuse`` finds the book this run
    would build (``None``: build it)."""
    name = Path(_db_name()).name
    if "bench" not in name and not name.startswith("hb_"):
        raise CommandError("Refusing: the pages benchmark fills the database with a synthetic book; use a database whose name contains "
                           "'bench' or starts with 'hb_' (e.g. DATABASE_URL=postgres://…/hb_pages or sqlite:////tmp/hb_pages.sqlite3).")
    from portal.models import User

    if not User.objects.filter(email__startswith="bench-p-").exists():
        return None
    saved = _saved()
    if not reuse:
        raise CommandError("This database already holds a pages-benchmark book: measure it again with --reuse, or start from a fresh one "
                           "(dropdb/createdb hb_pages, or delete the SQLite file).")
    if saved is None or saved["full"] != full:
        raise CommandError("This database holds a pages-benchmark book of another size, or one a run did not finish building "
                           f"(saved: {saved['full'] if saved else 'nothing'}; this run: {full}): start from a fresh database.")
    return saved


_SAVED = "bench_pages_saved"


def _save(value: dict) -> None:
    """The figures at a tenth, kept beside the book for runs that reuse it (JSON text: SQLite and PostgreSQL alike)."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {_SAVED} (id integer PRIMARY KEY, value text NOT NULL)")
        cursor.execute(f"DELETE FROM {_SAVED}")  # noqa: S608 - a constant
        cursor.execute(f"INSERT INTO {_SAVED} (id, value) VALUES (1, %s)", [json.dumps(value)])  # noqa: S608


def _saved() -> dict | None:
    if _SAVED not in connection.introspection.table_names():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {_SAVED} WHERE id = 1")  # noqa: S608 - a constant
        row = cursor.fetchone()
    return json.loads(row[0]) if row else None


# --- who asks ------------------------------------------------------------------------------------------------------


def _actors(stdout) -> dict:
    """Staff enrolled in MFA and a fully onboarded client, all through the services."""
    from allauth.account.models import EmailAddress

    from lending.demo import client_make_eligible, policy_ensure, prices_ensure
    from lending.risk.benchmark import _prices_ensure as securities_prices
    from portal.demo import totp_ensure
    from portal.permissions import Role
    from portal.services import user_create

    def staff(email, role, limit=None):
        user = user_create(email=email, password=None, role=role, full_name=email.split("@")[0].replace("-", " ").title(), authority_limit=limit)
        totp_ensure(user)
        return user

    with transaction.atomic():
        officer = staff("bench-p-officer@bench.invalid", Role.ACCOUNT_OFFICER, Decimal("5000000"))
        manager = staff("bench-p-manager@bench.invalid", Role.CREDIT_MANAGER, Decimal("50000000"))
        manager2 = staff("bench-p-manager2@bench.invalid", Role.CREDIT_MANAGER, Decimal("50000000"))
        compliance = staff("bench-p-compliance@bench.invalid", Role.COMPLIANCE)
    policy = policy_ensure(maker=officer, checker=manager)
    prices_ensure()
    securities_prices()
    with transaction.atomic():
        client = user_create(email="bench-p-client@bench.invalid", password=None, role=Role.CLIENT, full_name="Bench Client")
        EmailAddress.objects.create(user=client, email=client.email, verified=True, primary=True)
    client_make_eligible(user=client, staff=officer, index=99_001)
    stdout.write("  staff (officer, two credit managers, compliance) enrolled in MFA; one client onboarded through the services")
    return {"officer": officer, "manager": manager, "manager2": manager2, "compliance": compliance, "client": client, "policy": policy}


def _actors_reused() -> dict:
    """The staff and the measured client an earlier run made, and the policy in force."""
    from lending import selectors as lending_selectors
    from portal.models import User

    users = {u.email: u for u in User.objects.filter(email__in=[f"bench-p-{r}@bench.invalid" for r in ("officer", "manager", "manager2", "compliance", "client")])}
    actors = {r: users[f"bench-p-{r}@bench.invalid"] for r in ("officer", "manager", "manager2", "compliance", "client")}
    return actors | {"policy": lending_selectors.policy_current()}


def _reused_settle() -> None:
    """A reused book: dead rows of earlier runs vacuumed away, statistics fresh, the bench feed's quotes recorded again
    (the same prices, fresh times) so nothing reads as stale."""
    from lending.risk.benchmark import _prices_ensure as securities_prices

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    securities_prices()


# --- the book ---------------------------------------------------------------------------------------------------


def _grow(stdout, actors, built: dict, wanted: dict) -> None:
    """Add rows until ``built`` reaches ``wanted`` (bulk, batches of 5,000)."""
    rng = random.Random(len(str(wanted)) + wanted["facilities"])
    clients = _clients(actors, wanted["facilities"] // 20)
    _facilities(actors, clients, built["facilities"], wanted["facilities"], rng)
    built["facilities"] = wanted["facilities"]
    _queue_applications(actors, clients, built["applications"], wanted["applications"], rng)
    built["applications"] = wanted["applications"]
    _onboarding_work(actors, clients, built, wanted)
    _audit(actors, built["audit"], wanted["audit"], rng)
    built["audit"] = wanted["audit"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _clients(actors, n: int) -> list[int]:
    """``n`` bench clients (users in the client group, each with a completed profile and a confirmed
    margin account), reused across growth steps."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from onboarding.models import ClientProfile
    from portal.models import User

    have = list(User.objects.filter(email__regex=r"^bench-p-[0-9]+@").order_by("id").values_list("id", flat=True))
    if len(have) < n:
        group = Group.objects.get(name="client")
        now = timezone.now()
        UNUSABLE = make_password(None)  # noqa: N806 - they never sign in
        users = [User(email=EMAIL.format(i), password=UNUSABLE, full_name=f"Bench Client {i:05d}", preferred_language="en", authority_limit=0)
                 for i in range(len(have), n)]
        with transaction.atomic():
            made = User.objects.bulk_create(users, batch_size=2000)
            if made and made[0].pk is None:  # a backend that does not return ids
                made = list(User.objects.filter(email__in=[u.email for u in users]).order_by("id"))
            User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in made], batch_size=5000)
            ClientProfile.objects.bulk_create([
                ClientProfile(user_id=u.pk, legal_name=u.full_name.upper(), margin_account_number=f"BM-{u.pk:07d}",
                              margin_account_confirmed_at=now, margin_account_confirmed_by=actors["officer"], updated_at=now - timedelta(days=30))
                for u in made], batch_size=2000)
        have += [u.pk for u in made]
    return have


def _facilities(actors, clients: list[int], lo: int, hi: int, rng) -> None:
    from lending import selectors as lending_selectors
    from lending.collateral.models import Instrument
    from lending.collateral.selectors import haircuts_for
    from lending.models import AppState, CollateralPosition, Facility, FacilityApplication, FacilityTransaction

    if hi <= lo:
        return
    policy, officer = actors["policy"], actors["officer"]
    prices = {a: q.price_hkd for a, q in lending_selectors.prices_current().items()}
    haircuts = haircuts_for(policy=policy)
    pool = list(Instrument.objects.filter(kind="security", active=True, suspended=False).values_list("pk", "code"))
    pool = [(pk, code) for pk, code in pool if code in prices]
    btc, eth = (Instrument.objects.get(code=c).pk for c in ("BTC", "ETH"))
    now = timezone.now()
    measured_client = actors["client"].pk
    for start in range(lo, hi, 5000):
        stop = min(hi, start + 5000)
        apps, facilities, positions, ledger = [], [], [], []
        for i in range(start, stop):
            # The measured client holds three facilities, the rest are spread over the bench clients.
            client_id = measured_client if i < 3 else clients[i % len(clients)]
            apps.append(FacilityApplication(
                client_id=client_id, state=AppState.ACTIVE, requested_limit=Decimal("50000000"), purpose="benchmark book",
                created_at=now - timedelta(days=90), submitted_at=now - timedelta(days=89), review_run=1, recommendation="approve",
                recommended_limit=Decimal("50000000"), approved_limit=Decimal("50000000"), decided_by=officer, decided_at=now - timedelta(days=88),
                policy=policy, decision_policy=policy, letter_sha256="0" * 64,
            ))
        with transaction.atomic():
            apps = _bulk(FacilityApplication, apps)
            rows = []
            for i, app in zip(range(start, stop), apps, strict=True):
                held, lv = [], Decimal("0")
                for s in range(2 + i % 4):
                    pk, code = pool[(i * 7919 + s * 104729) % len(pool)]
                    qty = Decimal(500 * rng.randint(1, 60))
                    held.append(("securities", pk, "", qty, haircuts.get(pk, Decimal("1"))))
                    lv += qty * prices[code] * (1 - haircuts.get(pk, Decimal("1")))
                if i % 10 < 4 or i % 10 == 9:
                    qty = Decimal(str(round(0.05 + rng.random() * 3, 8)))
                    held.append(("virtual_asset", btc, "BTC", qty, policy.btc_haircut))
                    lv += qty * prices["BTC"] * (1 - policy.btc_haircut)
                if i % 10 >= 8:
                    qty = Decimal(str(round(0.5 + rng.random() * 60, 8)))
                    held.append(("virtual_asset", eth, "ETH", qty, policy.eth_haircut))
                    lv += qty * prices["ETH"] * (1 - policy.eth_haircut)
                # Most healthy, a tail near and over the levels (as the revaluation benchmark spreads them).
                r = rng.random()
                u = Decimal(str(0.20 + r * 0.85 if r < 0.75 else (0.84 + (r - 0.75) * 0.75 if r < 0.95 else 0.99 + (r - 0.95) * 0.40)))
                drawn = (lv * u).quantize(Decimal("0.01"))
                rows.append((app, client_id_of(app), held, drawn))
            facilities = _bulk(Facility, [
                Facility(client_id=cid, application=app, state="active", limit=Decimal("50000000"), drawn_balance=drawn, letter_sha256="0" * 64,
                         accepted_at=now - timedelta(days=87), opened_at=now - timedelta(days=87), policy=policy)
                for app, cid, _held, drawn in rows])
            for facility, (_app, _cid, held, drawn) in zip(facilities, rows, strict=True):
                for kind, instrument, asset, qty, haircut in held:
                    positions.append(CollateralPosition(facility=facility, kind=kind, instrument_id=instrument, asset=asset, quantity=qty,
                                                        haircut=haircut, custody_reference=f"BENCH-{facility.pk}" if asset else ""))
                if drawn > 0:
                    ledger.append(FacilityTransaction(facility=facility, kind="drawdown", amount=drawn, delta=drawn, balance_after=drawn,
                                                      value_date=(now - timedelta(days=86)).date(), reference=f"BENCH-{facility.pk}",
                                                      narrative="Drawdown", created_at=now - timedelta(days=86)))
            CollateralPosition.objects.bulk_create(positions, batch_size=5000)
            FacilityTransaction.objects.bulk_create(ledger, batch_size=5000)


def client_id_of(app) -> int:
    return app.client_id


def _bulk(model, objs: list) -> list:
    """bulk_create that hands back rows with their ids on every backend (SQLite 3.35+ and PostgreSQL return them)."""
    made = model.objects.bulk_create(objs, batch_size=2000)
    if made and made[0].pk is None:
        raise CommandError("This database does not return ids from a bulk insert (SQLite 3.35+ or PostgreSQL needed).")
    return made


QUEUE_MIX = [("awaiting_decision", 50), ("awaiting_second_approval", 10), ("submitted", 4), ("in_review", 4), ("returned_to_client", 6),
             ("declined", 12), ("approved", 8), ("withdrawn", 6)]


def _queue_applications(actors, clients, lo: int, hi: int, rng) -> None:
    from lending.models import FacilityApplication

    if hi <= lo:
        return
    states = [s for s, weight in QUEUE_MIX for _ in range(weight)]
    now, officer, policy = timezone.now(), actors["officer"], actors["policy"]
    apps = []
    for i in range(lo, hi):
        state = states[i % len(states)]
        submitted = now - timedelta(minutes=5 * (hi - i) + rng.randint(0, 4))
        decided = state in ("awaiting_second_approval", "declined", "approved")
        rec = rng.choice(["approve", "approve", "refer", "decline"]) if state not in ("submitted", "in_review") else ""
        apps.append(FacilityApplication(
            client_id=clients[(i * 31) % len(clients)], state=state, requested_limit=Decimal(250_000 * rng.randint(2, 40)), purpose="benchmark queue",
            created_at=submitted - timedelta(hours=1), submitted_at=submitted, review_run=1, recommendation=rec,
            recommended_limit=Decimal(250_000 * rng.randint(1, 20)) if rec else None, policy=policy,
            decided_by=officer if decided else None, decided_at=submitted + timedelta(hours=2) if decided else None,
        ))
    with transaction.atomic():
        _bulk(FacilityApplication, apps)


def _onboarding_work(actors, clients, built: dict, wanted: dict) -> None:
    """Submitted PI attestations and margin accounts still to confirm, oldest first by a spread of times."""
    from onboarding.models import ClientProfile, PIAttestation
    from onboarding.policy import current_policy

    now, policy = timezone.now(), current_policy()
    with transaction.atomic():
        lo, hi = built["attestations"], wanted["attestations"]
        _bulk(PIAttestation, [
            PIAttestation(client_id=clients[(i * 17) % len(clients)], state="submitted", declared_amount=Decimal(8_000_000 + 1000 * i),
                          relevant_date=now.date() - timedelta(days=10), understood_pi_treatment=True, policy=policy,
                          created_at=now - timedelta(hours=hi - i + 1), submitted_at=now - timedelta(hours=hi - i))
            for i in range(lo, hi)]) if hi > lo else None
        built["attestations"] = hi
        lo, hi = built["profiles_waiting"], wanted["profiles_waiting"]
        if hi > lo:
            # Margin accounts given by clients and not yet confirmed by staff (the oldest profiles' accounts).
            ids = clients[lo:hi] if hi <= len(clients) else clients[lo:]
            ClientProfile.objects.filter(user_id__in=ids).update(margin_account_confirmed_at=None, margin_account_confirmed_by=None)
        built["profiles_waiting"] = hi


AUDIT_ACTIONS = [("lending.facility.drawdown", "lending.facility"), ("lending.facility.repayment", "lending.facility"),
                 ("lending.application.submitted", "lending.facilityapplication"), ("lending.application.approved", "lending.facilityapplication"),
                 ("risk.margin_call.opened", "risk.margincall"), ("onboarding.profile.updated", "onboarding.clientprofile"),
                 ("disclosures.acknowledgement.recorded", "disclosures.acknowledgement"), ("risk.book.revalued", "risk.revaluationrun")]


def _audit(actors, lo: int, hi: int, rng) -> None:
    """Audit rows appended to the hash chain exactly as ``portal.audit`` appends them (prev_hash → hash)."""
    from django.db.models import QuerySet

    from portal.models import AuditEvent

    if hi <= lo:
        return
    officer = actors["officer"]
    now = timezone.now()
    span = timedelta(days=365)
    for start in range(lo, hi, 10_000):
        stop = min(hi, start + 10_000)
        with transaction.atomic():
            last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or "0" * 64
            events = []
            for i in range(start, stop):
                action, object_type = AUDIT_ACTIONS[i % len(AUDIT_ACTIONS)]
                staff = i % 3 == 0
                event = AuditEvent(
                    actor=officer if staff else None, actor_label=officer.email if staff else "system", action=action, object_type=object_type,
                    object_id=str(1 + i % 100_000), object_repr=f"{object_type} {1 + i % 100_000}",
                    before={"drawn_balance": str(rng.randint(0, 9_000_000))} if i % 2 else None,
                    after={"drawn_balance": str(rng.randint(0, 9_000_000)), "reference": f"BENCH-{i}"},
                    created_at=now - span + span * (i / max(hi, 1)),
                )
                event.prev_hash = last
                event.hash = last = event.compute_hash()
                events.append(event)
            # As portal.audit does: the chain's own bulk insert (the manager refuses bulk_create elsewhere).
            QuerySet.bulk_create(AuditEvent.objects.all(), events, batch_size=2000)


def _settle(actors) -> float:
    """The engine's view of the new book: coefficients, one full revaluation (bands and margin calls), the board's summary."""
    from unittest import mock

    from lending.risk import book, services
    from lending.risk.revaluation import revalue_book

    with transaction.atomic():
        book.coefficients_refresh(now=timezone.now())
    with mock.patch("lending.risk.tasks.margin_calls_notify.delay_on_commit"):
        revalue_book(trigger="beat", notify=False)
    started = time.perf_counter()
    services.book_summary_take()
    return (time.perf_counter() - started) * 1000


# --- measuring ------------------------------------------------------------------------------------------------------


def _client_for(user):
    """A test Client signed in as ``user``, past the second factor for staff (as allauth records it)."""
    from allauth.account.internal.flows.login import (
        _AUTHENTICATION_METHODS_USER_SESSION_KEY,
        AUTHENTICATION_METHODS_SESSION_KEY,
    )
    from django.test import Client

    c = Client()
    c.force_login(user)
    session = c.session
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [{"method": "password", "at": time.time(), "email": user.email},
                                                   {"method": "mfa", "at": time.time(), "type": "totp"}]
    session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
    session.save()
    return c


def _pages(actors) -> list[tuple[str, str, str]]:
    from lending.models import Facility

    facility = Facility.objects.filter(client=actors["client"]).order_by("id").values_list("id", flat=True).first()
    return [
        ("bare one-query view", "officer", "/bench/bare/"),
        ("credit queue", "officer", "/lending/staff/queue/"),
        ("onboarding queue", "officer", "/onboarding/staff/"),
        ("risk board", "manager", "/risk/board/"),
        ("audit trail", "compliance", "/workbench/audit/"),
        ("client dashboard", "client", "/dashboard/"),
        ("facility page", "client", f"/lending/facilities/{facility}/"),
        ("applications API (staff queue)", "officer", "/api/v1/lending/staff/applications/"),
        ("applications API (client)", "client", "/api/v1/lending/applications/"),
    ]


def _measure_all(stdout, actors, *, requests: int) -> dict:
    out = {}
    with override_settings(ROOT_URLCONF=__name__, DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        clients = {role: _client_for(actors[role]) for role in ("officer", "manager", "compliance", "client")}
        bare = _client_for(actors["officer"])
        for _ in range(3):
            bare.get("/bench/bare/")
        for label, role, url in _pages(actors):
            c = clients[role]
            for _ in range(3):  # warm: caches, compiled templates, the session
                response = c.get(url)
                if response.status_code != 200:
                    raise CommandError(f"{label}: {url} answered {response.status_code}")
            statements = []

            def count(execute, sql, params, many, context, statements=statements):
                statements.append(sql)
                return execute(sql, params, many, context)

            # Counted by an execute wrapper: SQLite connections close at the end of each request (CONN_MAX_AGE 0).
            with connection.execute_wrapper(count):
                c.get(url)
            # Each page request is paired with a bare-view request just before it, so both see the same load on
            # the shared machine: the ratios (throughput share, growth) are taken from the paired medians.
            times, bare_times = [], []
            for _ in range(requests):
                started = time.perf_counter()
                bare.get("/bench/bare/")
                bare_times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                c.get(url)
                times.append((time.perf_counter() - started) * 1000)
            out[label] = {"median": statistics.median(times), "p90": sorted(times)[int(len(times) * 0.9) - 1], "queries": len(statements),
                          "bytes": len(response.content), "bare": statistics.median(bare_times)}
    return out


def _timed(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _naive(actors) -> dict:
    """What the pages used to do per request, timed at the same volume (that work alone, without the page around it)."""
    from django.core.paginator import Paginator
    from django.template.loader import render_to_string

    from lending.collateral.selectors import concentration
    from lending.risk import selectors as risk_selectors
    from lending.risk.revaluation import current_inputs
    from lending.services import submission_blockers
    from onboarding import selectors as onboarding_selectors
    from portal.products import Product
    from portal.selectors import audit_events

    officer, client = actors["officer"], actors["client"]
    policy, prices = current_inputs()

    def board():  # the whole book valued again for every viewer
        risk_selectors.book_figures(policy=policy, prices=prices, nearest_limit=20)
        concentration()

    def audit():  # a numbered pager: COUNT(*) of the trail, then the page
        page = Paginator(audit_events(), 50).page(1)
        list(page)
        page.paginator.num_pages  # noqa: B018 - the count is the cost

    def onboarding():  # every waiting item, looked up, linked and rendered on one page
        import warnings

        items = onboarding_selectors.onboarding_queue(user=officer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rendered without a request: the CSRF token warning is expected
            render_to_string("onboarding/staff/queue.html", {"items": items, "total": len(items), "page": 1, "has_next": False})

    def dashboard():  # eligibility computed by the checklist, again by the lending panel, statuses again by the disclosures panel
        from disclosures.selectors import statuses_by_product

        facts = onboarding_selectors.client_facts(user=client)
        onboarding_selectors.product_eligibility(user=client, product=Product.VA_MARGIN, facts=facts)
        onboarding_selectors.product_eligibility(user=client, product=Product.PERPETUALS, facts=facts)
        submission_blockers(user=client)
        statuses_by_product(user=client)

    return {
        "risk board": ("live whole-book valuation + concentration per request", _timed(board)),
        "audit trail": ("COUNT(*) pager", _timed(audit)),
        "onboarding queue": ("every waiting item on one page", _timed(onboarding, 3)),
        "client dashboard": ("eligibility three times (the work alone)", _timed(dashboard)),
    }


def _report(stdout, results: dict, *, full: dict, tenth_note: str = "") -> bool:
    tenth, whole = results["tenth"], results["full"]
    stdout.write("")
    stdout.write(f"Pages at {full['facilities']:,} facilities, {full['applications']:,} queue applications, {full['audit']:,} audit rows "
                 f"(and at a tenth); {connection.vendor}; load average {_load()} on {os.cpu_count()} cores (shared machine); code {_code()}")
    if tenth_note:
        stdout.write(f"(figures at a tenth {tenth_note})")
    header = f"{'page':<32} {'median ms':>9} {'p90 ms':>7} {'req/s':>7} {'× bare':>7} {'at 1/10':>8} {'growth':>7} {'SQL':>4} {'KB':>5}  targets"
    stdout.write(header)
    stdout.write("-" * len(header))
    ok_all = True
    for label, r in whole.items():
        if label == "naive":
            continue
        small = tenth[label]
        share = r["bare"] / r["median"] if r["median"] else 0
        growth = (r["median"] / r["bare"]) / (small["median"] / small["bare"]) if small["median"] and r["bare"] else float("inf")
        if label == "bare one-query view":
            verdict = "(the floor)"
        else:
            checks = [r["median"] < TARGET_MS, share >= THROUGHPUT_SHARE, growth <= GROWTH]
            ok_all = ok_all and all(checks) and small["queries"] == r["queries"]
            verdict = (f"< {TARGET_MS:.0f} ms {'met' if checks[0] else 'MISSED'}; ≥ 1/8 bare {'met' if checks[1] else 'MISSED'}; "
                       f"≤ {GROWTH}× {'met' if checks[2] else 'MISSED'}" + ("" if small["queries"] == r["queries"] else f"; SQL {small['queries']}→{r['queries']} "
                          + ("GROWS" if r["queries"] > small["queries"] else "differs (not compared: fewer statements than the saved tenth)")))
        stdout.write(f"{label:<32} {r['median']:>9.1f} {r['p90']:>7.1f} {1000 / r['median']:>7.0f} {share:>7.2f} {small['median']:>8.1f} {growth:>7.2f} "
                     f"{r['queries']:>4} {r['bytes'] / 1024:>5.0f}  {verdict}")
    stdout.write("(× bare: the bare view's median over the page's, each page beside its own paired bare requests; growth: the page's "
                 "time relative to its paired bare view at the full volume over the same at a tenth)")
    stdout.write("")
    stdout.write("The naive way, timed at the full volume (the work alone, per request):")
    for label, (how, ms) in whole["naive"].items():
        small = tenth["naive"][label][1]
        stdout.write(f"  {label}: {how}: {ms:.1f} ms ({small:.1f} ms at a tenth) — the page now {whole[label]['median']:.1f} ms in all")
    stdout.write(("Every target met" if ok_all else "Targets NOT all met")
                 + f": median < {TARGET_MS:.0f} ms, ≥ 1/8 of the bare view's throughput, ≤ {GROWTH}× the time at a tenth of the volume, "
                 "SQL statements independent of the volume")
    return ok_all
