"""A reference price's source in words: what the price authority stores with the price, and how a page reads it.

``reference_prices_refresh`` has no reader (a feed, the beat), so lending's ``Price.source`` and
``CurrentPrice.source`` keep the source in English, the record the API and the admin show: "median of 3
sources", "override OVR-000001". A page reads it in the reader's language through ``source_text``; a source
stored in another form (an older row, a price set outside the authority) is shown as it is.
"""

from __future__ import annotations

import re

from django.utils import translation
from django.utils.translation import gettext, ngettext

# The stored forms, as the patterns below fill them in English ("override #12" is an older override's form).
_MEDIAN = re.compile(r"median of (?P<count>\d+) sources?")
_OVERRIDE = re.compile(r"override (?P<reference>#?\S+)")


def _median(count: int) -> str:
    return ngettext("median of %(count)s source", "median of %(count)s sources", count) % {"count": count}


def _override(reference: str) -> str:
    return gettext("override %(reference)s") % {"reference": reference}


def median_source(count: int) -> str:
    """The stored source of a reference price that is the weighted median of ``count`` fresh quotes."""
    with translation.override("en"):
        return _median(count)


def override_source(reference: str) -> str:
    """The stored source of a reference price set by the manual override ``reference``."""
    with translation.override("en"):
        return _override(reference)


def source_text(stored: str) -> str:
    """A stored source in the active language; text in no form this module writes is shown as it is."""
    stored = stored or ""
    if match := _MEDIAN.fullmatch(stored):
        return _median(int(match["count"]))
    if match := _OVERRIDE.fullmatch(stored):
        return _override(match["reference"])
    return stored
