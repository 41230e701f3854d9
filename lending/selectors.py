"""Reads for lending. Other apps (and the risk engine) may call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from .models import (
    AppState,
    CollateralLine,
    CollateralPolicy,
    CurrentPrice,
    Facility,
    FacilityApplication,
    FacilityState,
    FacilityTransaction,
    PolicyStatus,
    Price,
    ReviewStep,
    ScreeningStatus,
    StepCode,
    WatchListEntry,
)

DECISION_STATES = (AppState.AWAITING_DECISION, AppState.AWAITING_SECOND_APPROVAL)
OPEN_STATES = (AppState.SUBMITTED, AppState.IN_REVIEW, *DECISION_STATES, AppState.RETURNED)


def policy_current() -> CollateralPolicy | None:
    """The policy version in force (None before the first approval); read once per page (``read_once``)."""
    from portal.context import read_once

    return read_once("lending.policy_current", lambda: CollateralPolicy.objects.filter(status=PolicyStatus.APPROVED).first())


def policies() -> QuerySet[CollateralPolicy]:
    return CollateralPolicy.objects.select_related("proposed_by", "decided_by").order_by("-version")


@dataclass(frozen=True)
class PriceQuote:
    asset: str
    price_hkd: Decimal
    source: str
    as_of: object
    fresh: bool


def prices_current(*, max_age_minutes: int | None = None, now=None) -> dict[str, PriceQuote]:
    """The current price per asset, marked stale when older than the policy's freshness limit."""
    from portal.context import read_once

    now = now or timezone.now()
    rows = read_once("lending.prices_current", lambda: list(CurrentPrice.objects.values_list("asset", "price_hkd", "source", "as_of")))
    quotes = {}
    for asset, price, source, as_of in rows:
        fresh = max_age_minutes is None or as_of >= now - timedelta(minutes=max_age_minutes)
        quotes[asset] = PriceQuote(asset, price, source, as_of, fresh)
    return quotes


def price_history(*, asset: str = "") -> QuerySet[Price]:
    qs = Price.objects.select_related("entered_by").order_by("-as_of", "-id")
    return qs.filter(asset=asset) if asset else qs


def watchlist(*, include_inactive: bool = False) -> QuerySet[WatchListEntry]:
    qs = WatchListEntry.objects.all()
    return qs if include_inactive else qs.filter(active=True)


# --- Applications ---------------------------------------------------------------


def applications_for_client(*, user) -> QuerySet[FacilityApplication]:
    return FacilityApplication.objects.filter(client=user).order_by("-id")


def application_for_client(*, user, application_id: int) -> FacilityApplication:
    """The client's own application (lines prefetched); DoesNotExist for anyone else's."""
    return (
        FacilityApplication.objects.filter(client=user)
        .select_related("policy")
        .prefetch_related(Prefetch("lines", queryset=CollateralLine.objects.select_related("instrument")))
        .get(pk=application_id)
    )


# Steps a client never sees: whether and how they were screened against the watch list (tipping-off).
STAFF_ONLY_STEPS = (StepCode.SCREENING,)


def application_steps(*, application: FacilityApplication, for_client: bool = False) -> list[ReviewStep]:
    """The steps of the latest review run, in order (without the staff-only ones for the client)."""
    qs = ReviewStep.objects.filter(application=application, run=application.review_run).order_by("position")
    return list(qs.exclude(code__in=STAFF_ONLY_STEPS) if for_client else qs)


def application_progress(*, application_id: int, user=None) -> dict:
    """The small JSON the application page polls: state and the latest run's steps (two queries)."""
    qs = FacilityApplication.objects.filter(pk=application_id)
    if user is not None:
        qs = qs.filter(client=user)
    app = qs.values("id", "state", "review_run", "recommendation", "review_completed_at").get()
    steps = ReviewStep.objects.filter(application_id=application_id, run=app["review_run"]).order_by("position")
    if user is not None:  # the client's view
        steps = steps.exclude(code__in=STAFF_ONLY_STEPS)
    return {
        "id": app["id"],
        "state": app["state"],
        "state_label": str(AppState(app["state"]).label),
        "review_finished": app["review_completed_at"] is not None,
        "steps": [
            {
                "code": s.code,
                "label": s.get_code_display(),
                "status": s.status,
                "status_label": s.get_status_display(),
                "outcome": s.outcome,
                "outcome_label": s.get_outcome_display() if s.outcome else "",
                "attempts": s.attempts,
                "duration_ms": s.duration_ms,
            }
            for s in steps
        ],
    }


QUEUE_ORDERINGS = {
    "age": ("submitted_at", "id"),
    "-age": ("-submitted_at", "-id"),
    "size": ("-requested_limit", "id"),
    "-size": ("requested_limit", "id"),
}


def application_queue(
    *, states=None, min_limit: Decimal | None = None, max_limit: Decimal | None = None, search: str = "",
    recommendation: str = "", order: str = "age",
) -> QuerySet[FacilityApplication]:
    """The officer workbench queue: decisions pending first, oldest first by default."""
    qs = FacilityApplication.objects.exclude(state=AppState.DRAFT).select_related("client", "decided_by")
    qs = qs.filter(state__in=states or DECISION_STATES)
    if min_limit is not None:
        qs = qs.filter(requested_limit__gte=min_limit)
    if max_limit is not None:
        qs = qs.filter(requested_limit__lte=max_limit)
    if recommendation:
        qs = qs.filter(recommendation=recommendation)
    if search:
        term = search.strip()
        match = Q(client__email__icontains=term) | Q(client__full_name__icontains=term)
        if term.upper().startswith("APP-") and term[4:].isascii() and term[4:].isdigit() and len(term) <= 15:
            match |= Q(pk=int(term[4:]))
        qs = qs.filter(match)
    return qs.order_by(*QUEUE_ORDERINGS.get(order, QUEUE_ORDERINGS["age"]))


def queue_counts() -> dict[str, int]:
    """How many applications are in each state but draft (one query of a row per state: the database keeps
    the counts, ``ApplicationStateCount``, so the queue never counts the book)."""
    from .models import ApplicationStateCount

    rows = ApplicationStateCount.objects.exclude(state=AppState.DRAFT).filter(n__gt=0).values_list("state", "n")
    return dict(rows)


def application_for_staff(*, application_id: int) -> FacilityApplication:
    return (
        FacilityApplication.objects.select_related(
            "client", "policy", "decision_policy", "decided_by", "second_approver"
        )
        .prefetch_related(Prefetch("lines", queryset=CollateralLine.objects.select_related("instrument")))
        .get(pk=application_id)
    )


def client_by_id(*, user_id: int):
    """The client ``user_id`` (None for staff or an unknown id): whose holdings an officer reads."""
    from portal.models import User

    user = User.objects.filter(pk=user_id).first()
    return user if user is not None and user.is_client else None


def holdings_to_pledge(*, user, policy, quotes: dict[str, PriceQuote]) -> list[dict]:
    """The client's holdings to pledge from (the application form and the holdings API): quantity held, pledged and free,
    price, the haircut of ``policy``'s marginable list (not marginable: 100%) and the lending value of all that is free.
    Two queries (haircuts, custody) beside the policy and prices the caller read."""
    from django.utils import translation

    from lending.collateral import selectors as collateral_selectors

    from . import valuation

    haircuts = collateral_selectors.haircuts_by_code(policy=policy)
    rows = []
    for h in collateral_selectors.custody_for_client(user=user):
        code = h.instrument.code
        quote = quotes.get(code)
        haircut = haircuts.get(code, Decimal("1"))
        price = quote.price_hkd if quote else None
        rows.append({
            "instrument": h.instrument, "code": code, "name": h.instrument.name_for(translation.get_language()),
            "kind": "virtual_asset" if h.instrument.is_virtual_asset else "securities", "held": h.held, "free": h.free, "pledged": h.pledged,
            "price": price, "fresh": bool(quote and quote.fresh), "haircut": haircut,
            "free_lending_value": valuation.holding_lending_value(market_value=h.free * price, haircut=haircut) if price is not None else None,
        })
    return rows


# --- Facilities -------------------------------------------------------------------


def facilities_for_client(*, user, with_positions: bool = False) -> QuerySet[Facility]:
    """``with_positions``: each facility's positions and their instruments loaded with it (two more queries), to
    value the facilities at current prices (``facility_valued_now``)."""
    qs = Facility.objects.filter(client=user).select_related("application").order_by("-id")
    if with_positions:
        from .models import CollateralPosition

        qs = qs.prefetch_related(Prefetch("positions", queryset=CollateralPosition.objects.select_related("instrument")))
    return qs


def _facility_page() -> QuerySet[Facility]:
    """A facility with what its page shows beside it, loaded with it: the application and who decided it (the
    limit history's opening entry), the positions with their instruments (valued at current prices)."""
    from .models import CollateralPosition

    return (Facility.objects.select_related("application__decided_by", "application__second_approver")
            .prefetch_related(Prefetch("positions", queryset=CollateralPosition.objects.select_related("instrument"))))


def facility_for_client(*, user, facility_id: int) -> Facility:
    return _facility_page().filter(client=user).get(pk=facility_id)


def facilities_for_staff(*, state: str = "", band: str = "", search: str = "") -> QuerySet[Facility]:
    qs = Facility.objects.select_related("client").order_by("-id")
    if state:
        qs = qs.filter(state=state)
    if band:
        qs = qs.filter(band=band)
    if search:
        qs = qs.filter(Q(client__email__icontains=search) | Q(client__full_name__icontains=search))
    return qs


def facility_for_staff(*, facility_id: int) -> Facility:
    return _facility_page().select_related("client", "policy").get(pk=facility_id)


def facility_transactions(*, facility: Facility) -> QuerySet[FacilityTransaction]:
    return facility.transactions.select_related("recorded_by").order_by("-id")


def facility_has_open_margin_call(*, facility: Facility) -> bool:
    """Drawdowns stop while a margin call is open.

    Hook for the monitoring issue: it owns ``Facility.has_open_margin_call`` (sets it when it
    opens a call, clears it when the call is met, waived or closed out). Lending only reads it.
    """
    return bool(facility.has_open_margin_call)


def client_exposure(*, user, exclude_application_id: int | None = None) -> Decimal:
    """Total of the client's live facility limits plus approved-but-unaccepted applications."""
    live = Facility.objects.filter(client=user).exclude(state=FacilityState.CLOSED).aggregate(s=Sum("limit"))["s"] or 0
    pending = (
        FacilityApplication.objects.filter(client=user, state=AppState.APPROVED)
        .exclude(pk=exclude_application_id)
        .aggregate(s=Sum("approved_limit"))["s"]
        or 0
    )
    return Decimal(live) + Decimal(pending)


def firm_exposure() -> Decimal:
    live = Facility.objects.exclude(state=FacilityState.CLOSED).aggregate(s=Sum("limit"))["s"] or 0
    return Decimal(live)


def client_facility_summary(*, user, facilities: list | None = None) -> dict:
    """For the dashboard panel: constant queries. ``facilities``: the client's live facilities newest first,
    when the caller already loaded them (``lending.risk.selectors.client_book``)."""
    apps = list(
        FacilityApplication.objects.filter(client=user).exclude(state__in=[AppState.WITHDRAWN, AppState.DECLINED, AppState.ACTIVE])
        .order_by("-id")[:5]
    )
    if facilities is None:
        facilities = Facility.objects.filter(client=user).exclude(state=FacilityState.CLOSED).order_by("-id")
    facilities = list(facilities[:5])
    return {"applications": apps, "facilities": facilities}


def application_with_lines_prefetch() -> Prefetch:
    return Prefetch("lines")


def facility_valued_now(*, facility) -> list:
    """For the facility pages: value ``facility`` and its positions at the current prices IN MEMORY
    (nothing is saved), with ``lending.valuation``, so the figures match the live risk panel rather than
    the last stored valuation. Returns the positions (market values at current prices). Three queries."""
    from . import valuation
    from .models import CollateralKind

    prefetched = "positions" in getattr(facility, "_prefetched_objects_cache", {})  # by facility_for_client / _for_staff
    positions = list(facility.positions.all() if prefetched else facility.positions.select_related("instrument"))
    policy = policy_current() or facility.policy
    prices = {code: q.price_hkd for code, q in prices_current().items()}
    inputs = []
    for p in positions:
        code = p.asset if p.kind == CollateralKind.VIRTUAL_ASSET else (p.instrument.code if p.instrument_id else "")
        p.price = price = prices.get(code) if code else None
        if code:
            p.market_value = valuation.money((p.quantity or 0) * (price or 0))
        p.lending_value = valuation.holding_lending_value(market_value=p.market_value, haircut=p.haircut)
        inputs.append(valuation.PositionValueInput(kind=p.kind, haircut=p.haircut, quantity=p.quantity, price=price if code else None,
                                                   market_value=None if code else p.market_value))
    if policy is not None:
        v = valuation.value_facility(positions=inputs, drawn=facility.drawn_balance, max_share=policy.va_max_share,
                                     watch=policy.watch_level, margin_call=policy.margin_call_level, close_out=policy.close_out_level)
        facility.market_value, facility.va_market_value, facility.lending_value = v.market_value, v.va_market_value, v.lending_value
        facility.utilisation, facility.band = v.utilisation, v.band
        facility.valued_at = timezone.now()
    return positions


def screening_hits(*, status: str = ScreeningStatus.PENDING) -> QuerySet[FacilityApplication]:
    """Applications whose name screening found a possible match, for compliance (oldest first)."""
    return (
        FacilityApplication.objects.filter(screening_status=status)
        .select_related("client", "screening_decided_by").order_by("review_completed_at", "id")
    )


def screening_steps(*, applications) -> dict[int, ReviewStep]:
    """The screening step of each application's latest run (one query)."""
    wanted = Q(pk__in=[])
    for app in applications:
        wanted |= Q(application_id=app.pk, run=app.review_run)
    return {s.application_id: s for s in ReviewStep.objects.filter(wanted, code=StepCode.SCREENING)}
