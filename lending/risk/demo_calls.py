"""Demo margin calls from the client's side: calls answered by a repayment notice (one waiting for the back
office, one confirmed), one answered by a top-up request, one the market met, one nobody has answered yet.

Each facility is made the way a real client's is (apply, review, approve, accept, draw down) against a
security only these facilities pledge, so a price move in it (through the price authority) opens their
calls without moving the rest of the demo book. Run by ``manage.py seed_demo`` after the servicing demo.
Idempotent (keyed on the demo's own batch of positions).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from portal.audit import SYSTEM
from portal.models import User

# (client, what the client does about the call, the security pledged)
PLAN = [
    ("lee.kaying@demo.vamargin.hk", "repayment_notice", "00939"),
    ("borrower08@demo.vamargin.hk", "top_up_request", "00939"),
    ("borrower09@demo.vamargin.hk", "repayment_confirmed", "00939"),
    ("borrower10@demo.vamargin.hk", "nothing_yet", "00939"),
    ("borrower11@demo.vamargin.hk", "met_by_market", "00016"),
]
SHARES = {"00939": 1_500_000, "00016": 120_000}
BATCH = "DEMO-EOD-CALLS"


def _holdings(user, code: str) -> None:
    """The back office reports the extra shares in the client's margin account (their usual holdings kept)."""
    from lending.collateral import selectors as collateral_selectors
    from lending.collateral import services as collateral_services
    from lending.collateral.demo import demo_holdings

    account = collateral_selectors.margin_account_of(user_id=user.pk)
    day = timezone.localdate()
    held = {c: q for c, q in demo_holdings(0).items() if c not in ("BTC", "ETH")}
    for h in collateral_selectors.custody_for_client(user=user):
        if not h.instrument.is_virtual_asset:
            held[h.instrument.code] = str(h.held)
    held[code] = str(SHARES[code])
    rows = [f"{BATCH}-{day:%Y%m%d}-{account},{day},{account},{c},{q}" for c, q in sorted(held.items())]
    collateral_services.batch_import(kind="positions_eod", actor=SYSTEM, channel="command",
                                     content="\n".join(["batch_id,as_of,account,instrument,quantity", *rows]) + "\n")


def _facility(user, code: str, officer, manager):
    from lending import services as lending
    from lending.models import AppState, FacilityApplication

    lines = [{"kind": "securities", "instrument": code, "quantity": str(SHARES[code] * 2 // 3 // 1000 * 1000)},
             {"kind": "virtual_asset", "asset": "BTC", "quantity": "1"}]
    app = lending.application_create(user=user, requested_limit="8000000", purpose="Demo: a facility that meets a margin call", lines=lines)
    lending.application_submit(user=user, application_id=app.pk, confirm_terms=True)
    lending.review_run(application_id=app.pk, run=1)  # the worker would run it after commit
    app = FacilityApplication.objects.get(pk=app.pk)
    if app.state != AppState.AWAITING_DECISION:
        return None
    lending.application_approve(actor=officer, application_id=app.pk, limit=app.lending_value.quantize(Decimal("1")),
                                conditions="Demo facility: margin call walkthrough.")
    app = FacilityApplication.objects.get(pk=app.pk)
    if app.state == AppState.AWAITING_SECOND_APPROVAL:
        lending.application_second_approve(actor=manager, application_id=app.pk, note="Demo second approval.")
        app = FacilityApplication.objects.get(pk=app.pk)
    if app.state != AppState.APPROVED:
        return None
    facility = lending.application_accept(user=user, application_id=app.pk, letter_sha256=app.letter_sha256)
    lending.facility_drawdown(actor=officer, facility_id=facility.pk, amount=(facility.available * Decimal("0.97")).quantize(Decimal("0.01")),
                              reference="Demo drawdown")
    return facility


def _quote(code: str, factor: str) -> None:
    from lending import selectors as lending_selectors
    from lending.collateral.demo import DEMO_SOURCE

    from . import services

    price = lending_selectors.prices_current()[code].price_hkd
    services.quotes_record(actor=SYSTEM, rows=[{"source_code": DEMO_SOURCE, "asset": code,
                                                "price_hkd": (price * Decimal(factor)).quantize(Decimal("0.01"))}])


def seed(stdout) -> None:
    from lending.collateral.models import ImportBatch
    from lending.servicing import requests as servicing_requests

    from . import selectors, services
    from .models import MarginCall

    if ImportBatch.objects.filter(batch_id__startswith=BATCH).exists():
        stdout.write("  margin-call demo already seeded")
        return
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    officer2 = User.objects.get(email="officer2@demo.vamargin.hk")
    manager = User.objects.get(email="manager@demo.vamargin.hk")
    made = {}
    for email, what, code in PLAN:
        user = User.objects.filter(email=email).first()
        if user is None:
            continue
        _holdings(user, code)
        facility = _facility(user, code, officer, manager)
        if facility is not None:
            made[what] = (user, facility)
    # The close: CCB 'H' and Sun Hung Kai Properties fall 12% (through the price authority; the engine revalues their holders).
    _quote("00939", "0.88")
    _quote("00016", "0.88")
    calls = {what: MarginCall.objects.filter(facility=f, state__in=["open", "escalated"]).first() for what, (_u, f) in made.items()}
    done = []
    if calls.get("repayment_notice"):
        user, _f = made["repayment_notice"]
        c = selectors.client_calls(user=user, call_id=calls["repayment_notice"].pk)[0]
        req = services.margin_call_repayment_notice(user=user, call_id=c["call"].pk, amount=c["live"]["cure"].repay, note="Demo: FPS transfer sent")
        done.append(f"{c['call'].reference} repayment notice {req.reference} waiting for the back office")
    if calls.get("top_up_request"):
        user, _f = made["top_up_request"]
        c = selectors.client_calls(user=user, call_id=calls["top_up_request"].pk)[0]
        qty = c["live"]["cure"].btc_quantity or Decimal("1")
        req = services.margin_call_top_up_request(user=user, call_id=c["call"].pk, instrument="BTC",
                                                  quantity=qty.quantize(Decimal("0.0001")) + Decimal("0.0001"), custody_reference="DEMO-CUST-BTC-0808")
        done.append(f"{c['call'].reference} top-up {req.reference} requested")
    if calls.get("repayment_confirmed"):
        user, _f = made["repayment_confirmed"]
        c = selectors.client_calls(user=user, call_id=calls["repayment_confirmed"].pk)[0]
        req = services.margin_call_repayment_notice(user=user, call_id=c["call"].pk, amount=c["live"]["cure"].repay, note="Demo: bank transfer")
        servicing_requests.request_approve(actor=officer2, request_id=req.pk, received_reference="DEMO-BO-RCPT-0909")
        done.append(f"{c['call'].reference} met by a confirmed repayment")
    if calls.get("met_by_market"):
        _quote("00016", "1.15")  # Sun Hung Kai Properties recovers: the engine meets the call
        done.append(f"{calls['met_by_market'].reference} met by the market")
    stdout.write(f"  margin calls from the client's side: {'; '.join(done) or 'none (no eligible demo client)'}")
