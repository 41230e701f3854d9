"""Dashboard and workbench panels: a fixed number of queries each."""

from __future__ import annotations

from portal.products import Product

from . import selectors


def client_checklist(request):
    user = request.user
    facts = selectors.client_facts(user=user)
    products = [
        (Product.VA_MARGIN.label, selectors.product_eligibility(user=user, product=Product.VA_MARGIN, facts=facts)),
        (Product.PERPETUALS.label, selectors.product_eligibility(user=user, product=Product.PERPETUALS, facts=facts)),
    ]
    return "onboarding/panels/checklist.html", {"products": products}


def staff_queue(request):
    items = selectors.onboarding_queue(user=request.user)
    return "onboarding/panels/queue.html", {"items": items[:8], "total": len(items)}
