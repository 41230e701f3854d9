"""Demo data for the collateral book, made through the services as the back office and staff would.

* ``securities_prices_ensure`` — illustrative HKD prices for the demo's securities (labelled ``demo``).
* ``holdings_load(accounts)`` — the back office's end-of-day positions file and the custody statement
  for the demo borrowers (imports, idempotent per batch id).
* ``seed`` (after the lending and risk demos) — a back-office API key; an intraday file with errors,
  rejected with its line-by-line report; a custody statement that disagrees with the portal (a break);
  an approved haircut change on Tencent that moves the live book; a proposal awaiting approval with
  its preview.
* ``securities_feed_tick`` — the demo's moving market for securities (beat, demo only).
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from portal.audit import SYSTEM
from portal.models import User

# Illustrative prices for the demo only (not market data).
DEMO_PRICES = {
    "00005": "95.40", "00700": "482.60", "01299": "61.35", "00388": "351.20", "02800": "24.18", "02828": "89.75",
    "00939": "6.52", "00941": "84.90", "09988": "118.30", "03690": "131.70", "00016": "84.15", "00001": "44.85",
    "00002": "64.90", "02318": "55.20", "01810": "45.60", "00883": "19.98", "00004": "22.35", "00303": "50.10",
    "02007": "0.30",
}
DEMO_SOURCE = "demo-exchange-feed"


def _eod_batch_id(day) -> str:
    return f"DEMO-EOD-{day:%Y%m%d}"


def securities_prices_ensure() -> None:
    """Opening quotes for the demo's securities from the demo exchange feed, through the price authority."""
    from lending import selectors as lending_selectors
    from lending.risk import services as risk_services

    current = lending_selectors.prices_current()
    missing = [code for code in DEMO_PRICES if code not in current]
    if missing:
        risk_services.source_ensure(code=DEMO_SOURCE, name="Demo exchange feed (HKEX securities)")
        risk_services.quotes_record(actor=SYSTEM, rows=[
            {"source_code": DEMO_SOURCE, "asset": code, "price_hkd": DEMO_PRICES[code]} for code in missing])


def demo_holdings(i: int) -> dict[str, str]:
    """What the back office holds for demo borrower ``i`` (securities in the margin account, VA in custody)."""
    return {
        "00005": str(100_000 + 4_000 * i), "00700": str(10_000 + 500 * (i % 5)), "02800": str(200_000 + 10_000 * (i % 3)),
        "01299": str(50_000 + 2_000 * (i % 4)), "00388": str(10_000 + 300 * (i % 6)), "00941": "120000", "02007": "50000",
        "BTC": str(20 + i), "ETH": str(200 + 6 * i),
    }


def holdings_load(*, accounts: dict[str, int]) -> None:
    """The day's end-of-day positions file and custody statement for ``accounts`` ({account number: borrower index})."""
    from . import services

    day = timezone.localdate()
    pos = ["batch_id,as_of,account,instrument,quantity"]
    cus = ["batch_id,as_of,account,instrument,held,pledged"]
    for account, i in sorted(accounts.items()):
        for code, qty in demo_holdings(i).items():
            if code in ("BTC", "ETH"):
                cus.append(f"DEMO-CUS-{day:%Y%m%d}-{account},{day},{account},{code},{qty},0")
            else:
                pos.append(f"{_eod_batch_id(day)}-{account},{day},{account},{code},{qty}")
    # One file per account (the back office splits its file by account in this demo).
    for lines in (pos, cus):
        header, rows = lines[0], lines[1:]
        by_batch: dict[str, list[str]] = {}
        for row in rows:
            by_batch.setdefault(row.split(",", 1)[0], []).append(row)
        kind = "positions_eod" if header.endswith("quantity") else "custody_statement"
        for rows_of_batch in by_batch.values():
            services.batch_import(kind=kind, actor=SYSTEM, channel="command", content="\n".join([header, *rows_of_batch]) + "\n")


def pledge_lines(i: int) -> list[dict]:
    """An application's collateral for demo borrower ``i``: part of the holdings, in full or in part."""
    lines = [
        {"kind": "securities", "instrument": ["00005", "00700", "01299", "00388"][i % 4], "quantity": ["30000", "3000", "15000", "2500"][i % 4]},
        {"kind": "securities", "instrument": "02800", "quantity": str(40_000 + 5_000 * (i % 3))},
    ]
    if i % 3 != 2:
        lines.append({"kind": "virtual_asset", "asset": "BTC", "quantity": str(Decimal("0.5") + Decimal(i) / 4)})
    if i % 2 == 0:
        lines.append({"kind": "virtual_asset", "asset": "ETH", "quantity": str(5 + i)})
    return lines


def seed(stdout) -> None:
    from lending import selectors as lending_selectors
    from lending import services as lending_services
    from lending.demo import POLICY_V1

    from . import selectors, services
    from .models import ImportBatch, MachineKey

    manager = User.objects.get(email="manager@demo.vamargin.hk")
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    if MachineKey.objects.exists():
        stdout.write("  collateral demo already seeded")
        return
    with transaction.atomic():
        key, _token = services.machine_key_create(actor=manager, name="Back office (positions and custody, demo)")
    from .models import CustodyBalance

    holders = sorted(set(CustodyBalance.objects.filter(held__gt=0).values_list("client_id", flat=True)))
    accounts = {selectors.margin_account_of(user_id=cid): cid for cid in holders}
    accounts.pop("", None)
    # An intraday update with mistakes: rejected whole, with its report for operations.
    first = next(iter(accounts), "M-700000")
    bad = "\n".join([
        "batch_id,as_of,account,instrument,quantity",
        f"DEMO-ID-ERR,{timezone.localdate()},{first},00005,52000",
        f"DEMO-ID-ERR,{timezone.localdate()},{first},99999,100",
        f"DEMO-ID-ERR,{timezone.localdate()},M-999999,00700,100",
        f"DEMO-ID-ERR,{timezone.localdate()},{first},00700,-200",
    ]) + "\n"
    services.batch_import(kind="positions_intraday", content=bad, machine_key=key, channel="api")
    # The custody platform's statement for every account: it agrees with the portal except for one
    # BTC pledge it reports 0.1 short, a break for operations.
    rows = ["batch_id,as_of,account,instrument,held,pledged"]
    for n, (account, client_id) in enumerate(sorted(accounts.items())):
        for h in selectors.custody_for_client(client_id=client_id, kind="virtual_asset"):
            reported = h.pledged - Decimal("0.1") if n == 0 and h.instrument.code == "BTC" and h.pledged >= Decimal("0.1") else h.pledged
            rows.append(f"DEMO-CUS-CHECK,{timezone.localdate()},{account},{h.instrument.code},{h.held},{reported}")
    if len(rows) > 1:
        services.batch_import(kind="custody_statement", content="\n".join(rows) + "\n", machine_key=key, channel="api")
    # A haircut change approved by a credit manager: Tencent's haircut rises to 45%; the live book moves.
    current = lending_selectors.policy_current()
    # (Proposal and approval in transactions of their own: approval takes the book lock before any audit row.)
    proposed = lending_services.policy_propose(actor=officer, reason="Concentration in Tencent across the book: haircut 45%.",
                                               numbers=POLICY_V1 | {"marginable": {"entries": {"00700": "0.45"}, "suspended_haircut": "1"}})
    lending_services.policy_approve(actor=manager, policy_id=proposed.pk, note="Approved: concentration.")
    # And one awaiting approval, with its preview on the policy page.
    lending_services.policy_propose(actor=officer, reason="Proposal: class B haircut to 60%.",
                                    numbers=POLICY_V1 | {"securities_haircuts": {"A": "0.30", "B": "0.60", "C": "0.70", "E": "0.25"},
                                                         "marginable": {"entries": {"00700": "0.45"}}})
    _security_overrides(manager)
    stdout.write(f"  collateral: back-office key {key.prefix}; {ImportBatch.objects.filter(status='applied').count()} batches applied, "
                 f"{ImportBatch.objects.filter(status='rejected').count()} rejected with a report; {selectors.breaks().count()} open breaks; "
                 f"policy v{current.version if current else '?'} → v{proposed.version} (Tencent 45%) moved the live book")


# HKEX's spread table: below each price, the step a security trades in (above the last: HK$5).
SPREADS = ((0.25, "0.001"), (0.50, "0.005"), (10, "0.01"), (20, "0.02"), (100, "0.05"), (200, "0.1"), (500, "0.2"), (1000, "0.5"),
           (2000, "1"), (5000, "2"))


def on_the_spread(price: float) -> Decimal:
    """``price`` rounded to the nearest step HKEX trades it in (at least HK$0.001)."""
    step = Decimal(next((s for top, s in SPREADS if price <= top), "5"))
    return max(Decimal("0.001"), (Decimal(str(price)) / step).quantize(Decimal(1)) * step)


@transaction.atomic
def securities_feed_tick(*, seconds: float = 30, rng=None) -> dict:
    """Demo only: the securities market moves (a shared market factor plus each stock's own noise).

    Prices are quotes from one named source through the risk engine's price governance; the reference
    refresh revalues the book in the same transaction, applying the moves to the facilities holding them.
    """
    from lending import selectors as lending_selectors
    from lending.risk import services as risk_services

    from .models import Instrument

    rng = rng or random.SystemRandom()
    current = lending_selectors.prices_current()
    now = timezone.now()
    codes = list(Instrument.objects.filter(kind="security", suspended=False, code__in=list(DEMO_PRICES)).values_list("code", flat=True))
    sigma = 0.35 * math.sqrt(seconds * 60 / (250 * 6.5 * 3600))  # demo time runs fast, as the VA demo feed's
    market = rng.gauss(0, sigma)
    rows = []
    for code in codes:
        last = float(current[code].price_hkd) if code in current else float(DEMO_PRICES[code])
        pull = -0.01 * math.log(last / float(DEMO_PRICES[code]))
        price = last * math.exp(pull + market + rng.gauss(0, sigma))
        rows.append({"source_code": DEMO_SOURCE, "asset": code, "price_hkd": on_the_spread(price), "as_of": now})
    if rows:
        risk_services.source_ensure(code=DEMO_SOURCE, name="Demo exchange feed (HKEX securities)")
        risk_services.quotes_record(actor=SYSTEM, rows=rows)  # the reference moves and the book is revalued with it
    return {"prices": len(rows)}


def _security_overrides(manager) -> None:
    """Manual prices for securities, under the same maker-checker as BTC's: the suspended Country Garden valued at
    its last trade less a fifth until trading resumes (approved, in force), and a proposed HKEX price after a
    broken feed, waiting for the second credit manager with its preview of the facilities holding it."""
    from datetime import timedelta

    from lending import selectors as lending_selectors
    from lending.risk import services as risk_services

    second = User.objects.filter(email="manager2@demo.vamargin.hk").first()
    current = lending_selectors.prices_current()
    now = timezone.now()
    if second is not None and "02007" in current:
        suspended = risk_services.override_propose(
            actor=manager, asset="02007", price_hkd=on_the_spread(float(current["02007"].price_hkd) * 0.8),
            expires_at=now + timedelta(days=7) - timedelta(minutes=5), reason="Demo: trading suspended; valued at the last trade less 20%.",
            justification="Suspended pending an announcement; no source can quote it. Policy: last price less a fifth until it resumes.")
        risk_services.override_decide(actor=second, override_id=suspended.pk, approve=True, note="Agreed until trading resumes.")
    if "00388" in current:
        risk_services.override_propose(
            actor=manager, asset="00388", price_hkd=on_the_spread(float(current["00388"].price_hkd) * 0.88),
            expires_at=now + timedelta(hours=8), reason="Demo: the exchange feed printed a stale HKEX price after a gateway restart.",
            justification="The gateway replayed the morning price; trades on the exchange are 12% lower. Until the feed is fixed.")
