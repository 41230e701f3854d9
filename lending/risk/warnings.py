"""Early warnings before a margin call: the fan-out of the crossings the revaluation engine recorded,
and the reads pages use to show a facility's warning state.

The engine (``revaluation.revalue_book``: ``_warning_crossings`` and ``_facilities_store``) is the only
writer of ``Facility.warned_level`` and of ``WarningCrossing`` rows; this module only tells clients. A fixed number of queries per batch,
whatever the number of facilities: one claiming UPDATE, one SELECT, then ``notify_many`` per wording.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from lending.valuation import price_falls_to_level

from .models import WarningCrossing

KIND = "risk.warning.level_crossed"

TITLE = _("Early warning: facility %(ref)s has reached %(util)s utilisation")
# One wording per collateral mix, so each is a whole sentence in the catalogue.
BODIES = {
    "both": _("Utilisation of facility %(ref)s has risen to %(util)s, past the early-warning level of %(level)s. "
              "A margin call is made above %(call)s. With other prices unchanged, a fall of %(btc_fall)s in bitcoin "
              "(to HK$%(btc_price)s) or of %(eth_fall)s in ether (to HK$%(eth_price)s) would bring a margin call. "
              "To keep clear of a call, repay part of the loan or add collateral."),
    "BTC": _("Utilisation of facility %(ref)s has risen to %(util)s, past the early-warning level of %(level)s. "
             "A margin call is made above %(call)s. With other prices unchanged, a fall of %(btc_fall)s in bitcoin "
             "(to HK$%(btc_price)s) would bring a margin call. To keep clear of a call, repay part of the loan or add collateral."),
    "ETH": _("Utilisation of facility %(ref)s has risen to %(util)s, past the early-warning level of %(level)s. "
             "A margin call is made above %(call)s. With other prices unchanged, a fall of %(eth_fall)s in ether "
             "(to HK$%(eth_price)s) would bring a margin call. To keep clear of a call, repay part of the loan or add collateral."),
    "none": _("Utilisation of facility %(ref)s has risen to %(util)s, past the early-warning level of %(level)s. "
              "A margin call is made above %(call)s: a fall of %(lv_fall)s in the lending value of your collateral would bring one. "
              "To keep clear of a call, repay part of the loan or add collateral."),
}


def _pct(value: Decimal, places: int = 1) -> str:
    return f"{Decimal(value) * 100:.{places}f}%"


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):,.2f}"


def warning_message(*, crossing: WarningCrossing, margin_call_level: Decimal) -> tuple[str, dict]:
    """(wording key, params) of one crossing's warning: the distance to the call in BTC/ETH price terms,
    from the coefficients recorded at the crossing (``lending.valuation.price_falls_to_level``)."""
    btc, eth = crossing.btc_price or Decimal("0"), crossing.eth_price or Decimal("0")
    falls = price_falls_to_level(securities_lv=crossing.securities_lending_value, btc_weight=crossing.btc_weight,
                                 eth_weight=crossing.eth_weight, btc=btc, eth=eth, drawn=crossing.drawn_balance,
                                 level=margin_call_level)
    # A fall "to zero" that still brings no call is no distance worth stating.
    held = [a for a in ("BTC", "ETH") if falls[a] is not None and falls[a] < 1]
    key = "both" if len(held) == 2 else (held[0] if held else "none")
    params = {
        "ref": f"FAC-{crossing.facility_id:06d}", "util": _pct(crossing.utilisation), "level": _pct(crossing.to_level, 0),
        "call": _pct(margin_call_level, 0),
        "lv_fall": _pct(max(Decimal("0"), 1 - Decimal(crossing.utilisation) / margin_call_level)),
    }
    if "BTC" in held:
        params |= {"btc_fall": _pct(falls["BTC"]), "btc_price": _money(btc * (1 - falls["BTC"]))}
    if "ETH" in held:
        params |= {"eth_fall": _pct(falls["ETH"]), "eth_price": _money(eth * (1 - falls["ETH"]))}
    return key, params


@transaction.atomic
def warnings_notify(*, run_id: int | None = None) -> int:
    """Send the warnings of ``run_id`` (or every crossing still waiting): in the portal and by the client's
    channels (email, SMS/push), in each client's language. Each crossing is claimed by one conditional
    UPDATE before anything is sent, so a task run twice sends each warning once. Returns how many."""
    from lending import selectors as lending_selectors
    from portal.notifications import Recipient, notify_many

    batch = uuid.uuid4().hex
    pending = WarningCrossing.objects.filter(notify=True, notified_at__isnull=True)
    if run_id is not None:
        pending = pending.filter(run_id=run_id)
    claimed = pending.update(notified_at=timezone.now(), notice_batch=batch)
    if not claimed:
        return 0
    policy = lending_selectors.policy_current()
    by_wording: dict[str, list[Recipient]] = {}
    for crossing in WarningCrossing.objects.filter(notice_batch=batch).select_related("client").order_by("id"):
        key, params = warning_message(crossing=crossing, margin_call_level=policy.margin_call_level)
        by_wording.setdefault(key, []).append(
            Recipient(user=crossing.client, params=params, link=f"/lending/facilities/{crossing.facility_id}/")
        )
    for key, recipients in by_wording.items():
        notify_many(users=recipients, kind=KIND, title=TITLE, body=BODIES[key])
    return claimed


# --- Reads ---------------------------------------------------------------------------------------------


def facility_warning(*, facility) -> dict | None:
    """The early-warning level ``facility`` is at (from its stored state; no query), for pages:
    None while below every level."""
    level = Decimal(facility.warned_level or 0)
    if level <= 0:
        return None
    return {"level": level, "level_pct": _pct(level, 0)}


def warnings_for_facility(*, facility_id: int, limit: int = 20):
    """The facility's warning history, newest first (crossings up that warned, and re-armed levels)."""
    return WarningCrossing.objects.filter(facility_id=facility_id).order_by("-at", "-id")[:limit]
