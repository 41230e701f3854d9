"""Dashboard panels (constant queries)."""

from __future__ import annotations

from . import selectors


def client_panel(request):
    summary = selectors.client_facility_summary(user=request.user)
    return "lending/_client_panel.html", summary


def staff_panel(request):
    return "lending/_staff_panel.html", {"counts": selectors.queue_counts()}
