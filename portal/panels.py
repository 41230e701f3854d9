"""The portal's own workbench panels (constant queries)."""

from __future__ import annotations


def jobs_panel(request):
    """Every periodic job with its last success, next due time and status (two queries)."""
    from .scheduling import jobs_health

    jobs = jobs_health()
    return "portal/panels/jobs.html", {"jobs": jobs, "overdue": sum(1 for j in jobs if j.enabled and (j.overdue or not j.registered))}
