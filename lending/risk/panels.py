"""Dashboard panels (constant queries)."""

from __future__ import annotations

from . import selectors


def client_panel(request):
    """The client's open margin calls, first on the dashboard: what cures each, by when, whom to call, what
    the client has done (one query without a call, five with any number of them)."""
    calls = selectors.client_calls(user=request.user)
    if not calls:
        return None
    return "risk/_client_panel.html", {"calls": calls, **selectors.call_contact()}


def staff_panel(request):
    return "risk/_staff_panel.html", {"counts": selectors.margin_call_counts()}
