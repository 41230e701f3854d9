"""Dashboard panels (constant queries)."""

from __future__ import annotations

from . import selectors


def client_panel(request):
    """The client's account first: total drawn, available, utilisation across facilities, interest accrued,
    any call and its deadline, the next thing due; then the facilities (live) and open applications."""
    from lending.risk import selectors as risk_selectors

    from .services import submission_blockers

    # The live facilities valued now, loaded once: the account block and the panel's list both read them.
    book = risk_selectors.client_book(user=request.user)
    summary = selectors.client_facility_summary(user=request.user, facilities=[r["facility"] for r in book["rows"]])
    context = summary | {"account": _account(request.user, book) if summary["facilities"] else None}
    # "Apply" only for a client who may apply; otherwise what is missing, with links (constant queries).
    try:
        from onboarding.selectors import eligibility_for_request
        from portal.products import Product

        eligibility = eligibility_for_request(request=request, product=Product.VA_MARGIN)
    except ImportError:
        eligibility = None
    blockers = submission_blockers(user=request.user, eligibility=eligibility)
    # The onboarding checklist on the same dashboard already lists every unmet eligibility requirement with
    # its link: the panel points there and lists only what the checklist does not (a missing collateral policy).
    on_checklist = {r.code for r in eligibility.requirements} if eligibility is not None else set()
    onboarding_left = sum(1 for b in blockers if b["code"] in on_checklist)
    return "lending/_client_panel.html", context | {
        "blockers": [b for b in blockers if b["code"] not in on_checklist], "onboarding_left": onboarding_left}


def _account(user, book: dict) -> dict:
    from datetime import datetime

    from django.utils import timezone
    from django.utils.translation import gettext_lazy as _

    from lending.servicing import selectors as servicing_selectors
    from lending.servicing.interest import month_end
    from lending.servicing.models import StatementKind
    from lending.servicing.statements import due_by

    interest = servicing_selectors.client_interest(user=user, facility_ids=[r["facility"].pk for r in book["rows"]])
    due = [(c["cure_deadline"], _("Margin call %(ref)s: respond by") % {"ref": c["reference"]}, True) for c in book["calls"]]
    if interest["next_posting"]:
        due.append((interest["next_posting"], _("Interest charged to the balance"), False))
    due.append((due_by(kind=StatementKind.MONTHLY, period_end=month_end(timezone.localdate())), _("Monthly statement issued by"), False))
    if interest["review_date"]:
        due.append((interest["review_date"], _("Facility review"), False))
    due.sort(key=lambda d: (timezone.localtime(d[0]).date() if isinstance(d[0], datetime) else d[0], not d[2]))
    return book | {"interest": interest, "due": due}


def staff_panel(request):
    return "lending/_staff_panel.html", {"counts": selectors.queue_counts()}
