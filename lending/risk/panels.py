"""Dashboard panels (constant queries)."""

from __future__ import annotations

from . import selectors
from .models import OPEN_CALL_STATES, MarginCall


def client_panel(request):
    """The client's open margin calls, if any (one query)."""
    calls = list(MarginCall.objects.filter(client=request.user, state__in=OPEN_CALL_STATES).select_related("facility").order_by("opened_at")[:5])
    if not calls:
        return None
    return "risk/_client_panel.html", {"calls": calls}


def staff_panel(request):
    return "risk/_staff_panel.html", {"counts": selectors.margin_call_counts()}
