"""Price alarm texts: one pattern per alarm kind, filled from the parameters the alarm keeps.

The engine raises alarms with no reader (a feed, the beat), so an alarm keeps its parameters
(``details["text"]``) and is put in words when it is read, in the reader's language. The stored
``message`` is the same pattern filled in English: the record of what was raised, and what the API
and the admin show. An alarm stored without parameters is shown by its stored message.
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .models import AlarmKind

TEXTS = {
    AlarmKind.SOURCE_STALE: _("%(source)s: last %(asset)s quote at %(as_of)s is older than %(minutes)s minutes."),
    AlarmKind.SOURCE_DEVIATION: _("%(source)s quotes %(asset)s at HK$%(price)s, %(deviation)s from the median HK$%(median)s (limit %(limit)s)."),
    AlarmKind.OVERRIDE: _("Manual %(asset)s price HK$%(price)s in force until %(until)s (proposed by %(proposed_by)s, approved by %(approved_by)s)."),
    AlarmKind.STALE_PRICE: _("No %(asset)s source has quoted within %(minutes)s minutes; the reference price is not updated."),
    AlarmKind.VOLATILITY: _("%(asset)s 30-day realised volatility %(volatility)s is above the policy level %(level)s."),
    AlarmKind.QUOTE_REFUSED: _("%(source)s: %(asset)s quote of HK$%(price)s refused: %(reason)s"),
}

# Why a feed's quote was refused (the price authority's bounds), by refusal code: the quote-refused alarm
# names the reason in the reader's language too.
QUOTE_REFUSALS = {
    "quote_in_future": _("A quote cannot be dated in the future (%(as_of)s)."),
    "quote_stale": _("A quote dated %(as_of)s is older than the %(minutes)s-minute freshness limit."),
    "quote_out_of_band": _("%(source)s's %(asset)s quote of HK$%(price)s is %(deviation)s from the governed price HK$%(governed)s, beyond the "
                           "policy band of %(band)s. A price that far needs a manual override approved by two credit managers."),
}


def _filled(kind: str, params: dict) -> str:
    params = dict(params)
    reason = params.pop("reason", None)
    if isinstance(reason, dict):  # a refusal the price authority names by code
        pattern = QUOTE_REFUSALS.get(reason.get("code"))
        params["reason"] = pattern % reason.get("params", {}) if pattern is not None else reason.get("message", "")
    elif reason is not None:
        params["reason"] = reason
    return str(TEXTS[kind]) % params


def alarm_message(kind: str, params: dict) -> str:
    """The alarm's stored message: its pattern filled in English."""
    with translation.override("en"):
        return _filled(kind, params)


def alarm_text(alarm) -> str:
    """The alarm in words in the active language; its stored message where it kept no parameters (or they no
    longer fit the pattern)."""
    params = (alarm.details or {}).get("text")
    if not isinstance(params, dict) or alarm.kind not in TEXTS:
        return alarm.message
    try:
        return _filled(alarm.kind, params)
    except (KeyError, TypeError, ValueError):
        return alarm.message
