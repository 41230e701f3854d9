"""The facility letter: written once, in the client's language, as plain text the client accepts by its
SHA-256; shown and printed as a formatted document made from exactly that text.

The text is the contract: ``letter_compose`` writes it when the application is approved, lending keeps it
with its hash, and acceptance compares the hash. Headings, lists and labelled lines are marked by the text
itself (a line ending in a colon heads the bullet lines ``- …`` under it; ``Label: value`` lines), so
``letter_blocks`` turns the stored text into a document without adding, dropping or rewording anything:
every character of every line is still there, and the page and the PDF say what was accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.utils import translation
from django.utils.translation import gettext as _

from . import selectors
from .models import BaseRate, FacilityTerms


def letter_language(client) -> str:
    """The language the client reads the portal in (as statements: English or Traditional Chinese)."""
    from .statements import language_of

    return language_of(client)


def letter_compose(*, application, policy, terms: FacilityTerms) -> str:
    """The whole facility letter in the client's language: the facility, the collateral policy's levels,
    the interest, fees, review and statements (``terms``: the servicing terms offered with it)."""
    client = application.client
    with translation.override(letter_language(client)):
        return "\n".join([
            _("FACILITY LETTER — %(ref)s") % {"ref": application.reference},
            "",
            _("Borrower: %(name)s") % {"name": client.full_name or client.email},
            _("Facility: virtual-asset margin financing, limit HK$%(limit)s") % {"limit": f"{application.approved_limit:,}"},
            _("Conditions: %(conditions)s") % {"conditions": application.conditions or _("none beyond the standard terms")},
            "",
            _("Collateral policy version %(version)s:") % {"version": policy.version},
            "- " + _("Bitcoin haircut %(btc)s; ether haircut %(eth)s (at least 60%% under SFC circular 26EC5).")
            % {"btc": f"{policy.btc_haircut:.0%}", "eth": f"{policy.eth_haircut:.0%}"},
            "- " + _("Virtual assets provide at most %(share)s of lending value; securities are the main support.")
            % {"share": f"{policy.va_max_share:.0%}"},
            "- " + _("Lending value = market value × (1 − haircut). Utilisation = drawn balance ÷ lending value."),
            "- " + _("Watch at %(watch)s utilisation; margin call above %(call)s, to be met within %(days)s Hong Kong business days; "
                     "forced liquidation may begin at %(close)s.")
            % {"watch": f"{policy.watch_level:.0%}", "call": f"{policy.margin_call_level:.0%}", "days": policy.cure_days,
               "close": f"{policy.close_out_level:.0%}"},
            "- " + _("No further drawdowns while a margin call is open or a required risk disclosure is outstanding."),
            "- " + _("Client virtual assets pledged as collateral are not re-pledged."),
            *_servicing_section(terms),
            "",
            _("Virtual assets are highly volatile. You may lose more than the collateral you provide."),
        ])


def _servicing_section(terms: FacilityTerms) -> list[str]:
    policy = terms.policy
    fixing = selectors.fixings_in_effect().get(terms.base_rate)
    base = str(BaseRate(terms.base_rate).label)
    margin = f"{terms.margin:.3%}"
    if fixing:
        rate = _("%(base)s plus a margin of %(margin)s a year (today %(fixing)s + %(margin)s = %(total)s a year).") % {
            "base": base, "margin": margin, "fixing": f"{fixing.rate:.3%}", "total": f"{fixing.rate + terms.margin:.3%}"}
    else:
        rate = _("%(base)s plus a margin of %(margin)s a year.") % {"base": base, "margin": margin}
    return [
        "",
        _("Interest (servicing policy version %(version)s, pricing tier '%(tier)s'):") % {"version": policy.version, "tier": terms.tier},
        "- " + _("Rate: %(rate)s The rate follows %(base)s from the date each new fixing takes effect.") % {"rate": rate, "base": base},
        "- " + _("How it is computed: each day, the drawn balance at the end of that day (Hong Kong time) × the annual rate ÷ 365 "
                 "(actual/365, also in leap years), rounded half up to the cent."),
        "- " + _("When it is charged: the daily amounts are added to the drawn balance on the last day of each calendar month; "
                 "they then count in utilisation and bear interest. Accrued interest is shown on the facility page."),
        "- " + _("Overdue interest: a margin-call shortfall not met by its cure deadline, and interest posted to the balance and "
                 "left unpaid for more than %(days)s days, bear a further %(rate)s a year until paid.")
        % {"rate": f"{terms.overdue_margin:.3%}", "days": policy.unpaid_interest_grace_days},
        "",
        _("Fees:"),
        "- " + (_("Arrangement fee: HK$%(fee)s, added to the drawn balance when you accept this letter.") % {"fee": f"{terms.arrangement_fee:,}"}
                if terms.arrangement_fee else _("Arrangement fee: none.")),
        "- " + (_("Liquidation fee: %(rate)s of the proceeds of any forced sale of collateral.") % {"rate": f"{terms.liquidation_fee_rate:.2%}"}
                if terms.liquidation_fee_rate else _("Liquidation fee: none.")),
        "",
        _("Review: the facility is reviewed every %(months)s months from the date you accept it; the review date is shown on the "
          "facility page. We may renew it, change the limit or give notice to close.") % {"months": policy.review_months},
        _("Statements: an activity statement after each drawdown, repayment, interest posting, collateral movement, margin call or "
          "disposal, by the second business day after it; a monthly statement by the seventh business day of the next month."),
    ]


# --- the stored text as a document ----------------------------------------------------------------------

_LABELLED = re.compile(r"^(?P<label>[^:：\-][^:：]{0,40}?[:：])\s*(?P<value>\S.*)$")


@dataclass
class Block:
    kind: str  # "title", "heading", "list", "labelled", "paragraph"
    text: str = ""
    label: str = ""
    items: list[str] = field(default_factory=list)


def letter_blocks(text: str) -> list[Block]:
    """The letter's lines as document blocks, in order, every character kept (the first line is the title)."""
    blocks: list[Block] = []
    lines = (text or "").split("\n")
    for n, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if n == 0:
            blocks.append(Block("title", text=stripped))
        elif stripped.startswith("- "):
            if not blocks or blocks[-1].kind != "list":
                blocks.append(Block("list"))
            blocks[-1].items.append(stripped[2:])
        elif stripped.endswith((":", "：")):
            blocks.append(Block("heading", text=stripped))
        elif (m := _LABELLED.match(stripped)) is not None:
            blocks.append(Block("labelled", label=m.group("label"), text=m.group("value")))
        else:
            blocks.append(Block("paragraph", text=stripped))
    return blocks
