"""Policy proposal screens in words and percentages (collateral, risk and servicing policies).

The policies store ratios (0.6000); staff read and type percentages (60%). This module is the one place
that turns one into the other for the pages, labels each number with its field's own name, and lists what a
proposal changes against the version in force. The services still validate the ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _

from portal.errors import PortalError

PCT, MONEY, WHOLE = "pct", "money", "whole"
HUNDRED = Decimal("100")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # PCT (stored as a ratio), MONEY (HKD), WHOLE (a whole number: minutes, days)
    unit: str = ""
    places: int = 4  # decimal places of the stored ratio (interest rates and margins keep 6: 1.125% = 0.011250)


def field_label(model, name: str) -> str:
    verbose = str(model._meta.get_field(name).verbose_name)
    return verbose[:1].upper() + verbose[1:]


def _help(model, name: str) -> str:
    return str(model._meta.get_field(name).help_text or "")


def pct(value) -> str:
    """A stored ratio as a percentage for a form or a table: 0.6000 → "60", 0.0250 → "2.5"."""
    if value in (None, ""):
        return ""
    number = (Decimal(str(value)) * HUNDRED).normalize()
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def show(field: Field, value) -> str:
    """A stored value in words for a table cell: "60%", "HK$5,000,000", "2 business days"."""
    if value in (None, ""):
        return "—"
    if field.kind == PCT:
        return f"{pct(value)}%"
    if field.kind == MONEY:
        return f"HK${Decimal(str(value)):,.0f}" if Decimal(str(value)) == Decimal(str(value)).to_integral() else f"HK${Decimal(str(value)):,.2f}"
    return f"{value} {field.unit}".strip()


def from_form(field: Field, raw: str) -> str:
    """What the member of staff typed, as the service expects it (a percentage becomes a ratio). Text that is not
    a number goes through unchanged, so the service's own error names the field."""
    text = (raw or "").strip().rstrip("%").strip().replace(",", "")
    if field.kind != PCT or not text:
        return text
    try:
        ratio = Decimal(text) / HUNDRED
        cents = ratio.quantize(Decimal("0.01"))  # NaN, infinity and a number too long for its places raise here
        stored = ratio.quantize(Decimal(1).scaleb(-field.places))
    except InvalidOperation:
        return text
    if stored != ratio:
        # Rounding it here would decide for the member of staff (59.995% became 60%, above the SFC's floor).
        places = field.places - 2
        raise PortalError("validation_error", _("%(value)s%% has more decimal places than this percentage takes (at most %(places)s).")
                          % {"value": text, "places": places}, {field.name: [_("At most %(places)s decimal places.") % {"places": places}]})
    return str(cents if cents == ratio else stored)


def form_rows(model, fields, current, posted=None) -> list[dict]:
    """One row per number: name, label, help, unit and the value to show (what was posted, else the version in force)."""
    rows = []
    for f in fields:
        if posted is not None and f.name in posted:
            value = posted.get(f.name, "")
        else:
            value = getattr(current, f.name, "") if current is not None else ""
            value = pct(value) if f.kind == PCT else ("" if value is None else str(value))
        rows.append({"name": f.name, "label": field_label(model, f.name), "help": _help(model, f.name), "kind": f.kind,
                     "unit": "%" if f.kind == PCT else ("HKD" if f.kind == MONEY else f.unit), "value": value})
    return rows


def numbers_from_post(fields, post) -> dict:
    return {f.name: from_form(f, post.get(f.name, "")) for f in fields}


def changes(model, fields, proposal, current) -> list[dict]:
    """What ``proposal`` changes against the version in force: [{label, before, after}] (empty when nothing differs)."""
    out = []
    for f in fields:
        after = getattr(proposal, f.name, None)
        before = getattr(current, f.name, None) if current is not None else None
        if current is None or Decimal(str(before)) != Decimal(str(after)):
            out.append({"label": field_label(model, f.name), "before": show(f, before) if current is not None else "—", "after": show(f, after)})
    return out


def haircut_class_changes(proposal, current) -> list[dict]:
    """Securities haircut classes added, removed or changed."""
    new, old = proposal.securities_haircuts or {}, (current.securities_haircuts if current is not None else {}) or {}
    out = []
    for cls in sorted(set(new) | set(old)):
        before, after = old.get(cls), new.get(cls)
        if before is None or after is None or Decimal(str(before)) != Decimal(str(after)):
            out.append({"label": _("Haircut class %(c)s") % {"c": cls}, "before": f"{pct(before)}%" if before is not None else "—",
                        "after": f"{pct(after)}%" if after is not None else _("removed")})
    return out


def haircut_classes_from_post(post) -> dict:
    """The haircut-class table (class[] and haircut[] in percent, blank rows ignored) as the service expects it."""
    classes = {}
    for cls, value in zip(post.getlist("class_name"), post.getlist("class_haircut"), strict=False):
        cls = (cls or "").strip().upper()
        if cls:
            classes[cls] = from_form(Field("class", PCT), value)
    return classes


def haircut_class_rows(current, posted=None, blank: int = 2) -> list[dict]:
    if posted is not None:
        rows = [{"name": c, "haircut": v} for c, v in zip(posted.getlist("class_name"), posted.getlist("class_haircut"), strict=False) if c or v]
    else:
        classes = (current.securities_haircuts if current is not None else None) or {"A": "0.30", "B": "0.50", "C": "0.70"}
        rows = [{"name": c, "haircut": pct(v)} for c, v in sorted(classes.items())]
    return rows + [{"name": "", "haircut": ""} for _ in range(blank)]


COLLATERAL_FIELDS = [
    Field("btc_haircut", PCT), Field("eth_haircut", PCT), Field("va_max_share", PCT),
    Field("watch_level", PCT), Field("margin_call_level", PCT), Field("close_out_level", PCT),
    Field("cure_days", WHOLE, _("business days")), Field("price_max_age_minutes", WHOLE, _("minutes")),
    Field("officer_authority_default", MONEY), Field("client_exposure_limit", MONEY), Field("firm_exposure_limit", MONEY),
    Field("client_concentration_max", PCT),
]

# The collateral-book part of a version (lending.collateral.models.MarginableList): concentration limits, the haircut of a
# suspended security, how limits are rounded, how long a security's last price stays usable; and its entries.
MARGINABLE_FIELDS = [
    Field("suspended_haircut", PCT), Field("instrument_concentration_max", PCT), Field("issuer_concentration_max", PCT),
    Field("sector_concentration_max", PCT), Field("firm_instrument_concentration_max", PCT), Field("firm_issuer_concentration_max", PCT),
    Field("firm_sector_concentration_max", PCT), Field("firm_concentration_min_book", MONEY), Field("limit_rounding_unit", MONEY),
    Field("securities_price_max_age_days", WHOLE, _("days")),
]


def entries_of(listed) -> dict[str, Decimal]:
    """A marginable list's entries by instrument code (its prefetched rows; none: empty)."""
    return {e.instrument.code: e.haircut for e in listed.entries.all()} if listed is not None else {}


def marginable_entry_rows(listed, posted=None, blank: int = 3) -> list[dict]:
    """The marginable-list table of the form: code and haircut (%) per entry, what was posted, else the version in force."""
    if posted is not None:
        rows = [{"code": c, "haircut": v} for c, v in zip(posted.getlist("entry_code"), posted.getlist("entry_haircut"), strict=False) if c or v]
    else:
        rows = [{"code": c, "haircut": pct(v)} for c, v in sorted(entries_of(listed).items())]
    return rows + [{"code": "", "haircut": ""} for _ in range(blank)]


def marginable_from_post(post) -> dict:
    """The collateral-book numbers and entries typed on the form, as ``lending.collateral.services.marginable_list_create``
    expects them (percentages become ratios; a row with no code is ignored, so clearing a code removes its entry)."""
    numbers = {f.name: from_form(f, post[f.name]) for f in MARGINABLE_FIELDS if f.name in post}
    if "entry_code" in post:
        numbers["entries"] = {code.strip(): from_form(Field("entry", PCT), cut)
                              for code, cut in zip(post.getlist("entry_code"), post.getlist("entry_haircut"), strict=False) if (code or "").strip()}
    return numbers


def marginable_changes(proposed, current) -> list[dict]:
    """What a proposal's marginable list changes against the one in force: its numbers, then entries added, removed or changed."""
    from lending.collateral.models import MarginableList

    if proposed is None:
        return []
    out = changes(MarginableList, MARGINABLE_FIELDS, proposed, current)
    new, old = entries_of(proposed), entries_of(current)
    for code in sorted(set(new) | set(old)):
        before, after = old.get(code), new.get(code)
        if before is None or after is None or before != after:
            out.append({"label": _("Marginable list: %(code)s") % {"code": code}, "before": f"{pct(before)}%" if before is not None else "—",
                        "after": f"{pct(after)}%" if after is not None else _("removed")})
    return out


RISK_FIELDS = [
    Field("source_deviation_max", PCT), Field("volatility_alarm_level", PCT), Field("stress_btc_shock", PCT),
    Field("stress_eth_shock", PCT), Field("stress_securities_shock", PCT), Field("quote_band_max", PCT),
    Field("override_justification_level", PCT),
]
