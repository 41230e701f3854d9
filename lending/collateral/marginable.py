"""The effective haircut of each instrument under a policy version (pure; selectors load the rows).

* BTC / ETH: the policy's VA haircut (never below 60%: policy service, CHECK constraints).
* A security listed on the marginable list: the entry's haircut (1.0000 = not marginable).
* Otherwise: the haircut of its margin class in the policy; a class the policy does not list, or no
  class, is not marginable (100%).
* A suspended security: valued at its last price with the list's ``suspended_haircut`` (or heavier).
* A delisted instrument (``active`` false): not marginable (100%), whatever its entry or class.
"""

from __future__ import annotations

from decimal import Decimal

ONE = Decimal("1")
DEFAULT_SUSPENDED_HAIRCUT = ONE


def effective_haircut(*, instrument, policy, entry_haircut: Decimal | None, suspended_haircut: Decimal | None) -> Decimal:
    if not instrument.active:
        return ONE
    if instrument.kind == "virtual_asset":
        haircut = policy.va_haircut(instrument.code)
        return max(haircut, entry_haircut) if entry_haircut is not None else haircut
    if entry_haircut is not None:
        haircut = entry_haircut
    else:
        haircut = policy.securities_haircut(instrument.margin_class) if instrument.margin_class else None
        haircut = ONE if haircut is None else haircut
    if instrument.suspended:
        haircut = max(haircut, suspended_haircut if suspended_haircut is not None else DEFAULT_SUSPENDED_HAIRCUT)
    return min(ONE, haircut)
