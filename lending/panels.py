"""Dashboard panels (constant queries)."""

from __future__ import annotations

from . import selectors


def client_panel(request):
    from .services import submission_blockers

    summary = selectors.client_facility_summary(user=request.user)
    # "Apply" only for a client who may apply; otherwise what is missing, with links (constant queries).
    try:
        from onboarding.selectors import eligibility_for_request
        from portal.products import Product

        eligibility = eligibility_for_request(request=request, product=Product.VA_MARGIN)
    except ImportError:
        eligibility = None
    return "lending/_client_panel.html", summary | {"blockers": submission_blockers(user=request.user, eligibility=eligibility)}


def staff_panel(request):
    return "lending/_staff_panel.html", {"counts": selectors.queue_counts()}
