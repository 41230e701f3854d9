"""Control characters: no field or file the portal takes may carry one, and PostgreSQL cannot store NUL in text.

One rule for every entry point: ``portal.middleware.InputHygieneMiddleware`` applies it to addresses, query
strings and form fields; the file importers (back-office batches, instrument lists, price files) apply it to
the text of a file or JSON document, where a request's parameters do not reach.
"""

from __future__ import annotations

import re

# C0 control characters and DEL, except tab, line feed and carriage return (text areas and files have those).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_line(value) -> int | None:
    """The line (from 1) of the first control character in a text, or 1 for one in any string, key or
    value of a parsed JSON document; None when there is none."""
    if isinstance(value, str):
        found = CONTROL.search(value)
        return None if found is None else value.count("\n", 0, found.start()) + 1
    if isinstance(value, dict):
        return next((1 for k, v in value.items() if control_line(k) or control_line(v)), None)
    if isinstance(value, (list, tuple)):
        return next((1 for v in value if control_line(v)), None)
    return None
