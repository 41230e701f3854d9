"""Why a servicing request was refused, as a code and parameters, rendered in the reader's language.

The portal's own refusals (a release that would leave utilisation above the policy's initial level) are
stored as ``refused_code`` + ``refused_params`` beside the English sentence (``refused_reason``, kept for
the audit trail and API clients that read it), the way the credit review stores its reasons
(``lending.review``: ``ReviewStep.reason_codes``). A reason a member of staff typed is their own words:
it has no code and is shown as written. Parameters are stored formatted (``"85.00%"``): figures read
the same in every language.
"""

from __future__ import annotations

import re

from django.utils import translation
from django.utils.translation import gettext_lazy as _

REFUSAL_TEXTS = {
    "release.above_initial_level": _("Utilisation after the release would be %(after)s, above the initial level of %(level)s set by policy: "
                                     "repay or add collateral first."),
}


def refusal_render(code: str, params: dict | None, *, fallback: str = "", language: str | None = None) -> str:
    """The refusal in ``language`` (the active one by default); a reason without a known code as written."""
    if code not in REFUSAL_TEXTS:
        return fallback
    with translation.override(language or translation.get_language()):
        try:
            return str(REFUSAL_TEXTS[code]) % (params or {})
        except (KeyError, TypeError, ValueError):  # parameters that no longer fit the sentence
            return fallback or str(REFUSAL_TEXTS[code])


class Refusal:
    """A request's refusal whose ``str()`` is the sentence in the active language (for notifications,
    which render each recipient's copy in their language)."""

    def __init__(self, code: str, params: dict | None, text: str):
        self.code, self.params, self.text = code, params or {}, text

    def __str__(self) -> str:
        return refusal_render(self.code, self.params, fallback=self.text)


def refusal_from_text(text: str) -> tuple[str, dict] | None:
    """The code and parameters of a refusal sentence the portal wrote in English, or None (staff's own words)."""
    with translation.override("en"):
        for code, sentence in REFUSAL_TEXTS.items():
            pattern = "^" + re.sub(r"%\\\(([a-z_]+)\\\)s", r"(?P<\1>.+?)", re.escape(str(sentence).replace("%%", "%"))) + "$"
            match = re.match(pattern, (text or "").strip(), re.S)
            if match:
                return code, match.groupdict()
    return None
