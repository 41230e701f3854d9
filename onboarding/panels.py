"""Dashboard and workbench panels: a fixed number of queries each."""

from __future__ import annotations

from portal.permissions import Perm
from portal.products import Product

from . import selectors


def client_checklist(request):
    """One checklist with its progress and next step; once every VA margin requirement is met it
    folds away (the dashboard moves folded panels below the account). Eligibility is the request's,
    computed once for every dashboard panel."""
    checklist = selectors.onboarding_checklist(
        va_margin=selectors.eligibility_for_request(request=request, product=Product.VA_MARGIN),
        perpetuals=selectors.eligibility_for_request(request=request, product=Product.PERPETUALS),
    )
    return "onboarding/panels/checklist.html", {"checklist": checklist, "folded": checklist.complete}


QUEUE_PERMS = (Perm.ONBOARDING_REVIEW, Perm.SUITABILITY_REVIEW, Perm.PERPETUALS_GRANT)


def staff_queue(request):
    if not any(request.user.has_perm(perm) for perm in QUEUE_PERMS):
        return None  # e.g. an administrator: nothing in this queue is theirs to act on, so "nothing is waiting" would mislead
    return "onboarding/panels/queue.html", {"items": selectors.onboarding_queue(user=request.user, limit=8),
                                            "total": selectors.onboarding_queue_total(user=request.user)}
