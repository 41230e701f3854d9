"""The portal's own workbench panels (constant queries)."""

from __future__ import annotations


def jobs_panel(request):
    """Every periodic job with its last success, next due time and status (two queries)."""
    from .scheduling import jobs_health

    jobs = jobs_health()
    return "portal/panels/jobs.html", {"jobs": jobs, "overdue": sum(1 for j in jobs if j.enabled and (j.overdue or not j.registered))}


def mfa_prompt(request):
    """Until the client has an authenticator: they can borrow millions, and a password alone
    should not be what stands in the way (one query, none once enrolled is cached on the user)."""
    from django.urls import reverse

    from .mfa import user_has_mfa

    if user_has_mfa(request.user):
        return None
    return "portal/panels/mfa_prompt.html", {"enrol_url": reverse("mfa_activate_totp")}
