"""Lending pages: the client's applications and facilities; the officer workbench."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from django.contrib import messages
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.access import client_required, staff_required
from portal.errors import PortalError
from portal.navigation import id_url
from portal.permissions import Perm

from . import selectors, services
from .inputs import checked_params, facility_filters, id_input, int_param, page_param, queue_filters
from .models import (
    CLIENT_DECLINE_TEXTS,
    STAFF_QUEUE_LABELS,
    AppState,
    Asset,
    Band,
    DeclineReason,
    Facility,
    FacilityApplication,
    FacilityState,
    Recommendation,
    WatchListCategory,
    client_decline_reasons,
    watchlist_category_label,
)
from .valuation import policy_numbers


def _fail(request, exc: PortalError) -> None:
    messages.error(request, exc.message)


def _lines_from_post(post) -> list[dict]:
    """The holdings table: parallel lists line_instrument[], line_kind[], line_quantity[]; rows with a quantity."""
    lines = []
    instruments, kinds, quantities = post.getlist("line_instrument"), post.getlist("line_kind"), post.getlist("line_quantity")
    for i, code in enumerate(instruments):
        qty = (quantities[i] if i < len(quantities) else "").strip()
        if not code or not qty or qty in ("0", "0.0"):
            continue
        kind = kinds[i] if i < len(kinds) else "securities"
        lines.append({"kind": kind, "instrument": code, "quantity": qty})
    return lines


# --- client pages ---------------------------------------------------------------------------


@client_required
def client_home(request):
    return render(request, "lending/client_home.html", {
        "applications": selectors.applications_for_client(user=request.user)[:50],
        "facilities": selectors.facilities_for_client(user=request.user)[:50],
        "blockers": _blockers_or_message(request),
    })


def _blockers_or_message(request):
    try:
        return services.submission_blockers(user=request.user)
    except ImportError:
        return [{"code": "unavailable", "label": _("Eligibility"), "reason": _("Eligibility cannot be checked right now."), "fix_url": ""}]


@client_required
def application_new(request):
    policy = selectors.policy_current()
    form = {"requested_limit": "", "purpose": "", "lines": []}
    if request.method == "POST":
        form = {"requested_limit": request.POST.get("requested_limit", ""), "purpose": request.POST.get("purpose", ""), "lines": _lines_from_post(request.POST),
                "confirm_terms": request.POST.get("confirm_terms") == "on"}
        submitting = request.POST.get("submit") == "1"
        try:
            if submitting and not form["confirm_terms"]:
                # Refused before anything is written: the form comes back with the terms, the
                # figures and the client's entries, instead of a draft on another page.
                raise PortalError("terms_not_confirmed", _("Confirm that you have read the facility terms: tick the box below them, then submit again."),
                                  {"confirm_terms": [_("Tick this box to submit.")]})
            application = services.application_create(user=request.user, requested_limit=form["requested_limit"], purpose=form["purpose"], lines=form["lines"])
            if submitting:
                services.application_submit(user=request.user, application_id=application.pk, confirm_terms=request.POST.get("confirm_terms") == "on")
                messages.success(request, _("Application submitted. The credit review has started."))
            else:
                messages.success(request, _("Draft saved."))
            return redirect("lending:application", pk=application.pk)
        except PortalError as exc:
            _fail(request, exc)
            if "application" in locals():
                return redirect("lending:application", pk=application.pk)
            form["errors"] = exc.fields or {}
    quotes = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes if policy else None)
    chosen = {line["instrument"]: line["quantity"] for line in form["lines"]}
    holdings = [h | {"chosen": chosen.get(h["code"], "")} for h in selectors.holdings_to_pledge(user=request.user, policy=policy, quotes=quotes)] if policy else []
    return render(request, "lending/application_form.html", {
        "policy": policy,
        "policy_data": policy_numbers(policy) if policy else None,
        "holdings": holdings,
        "blockers": _blockers_or_message(request),
        "form": form,
    })


@client_required
def application_detail(request, pk):
    try:
        application = selectors.application_for_client(user=request.user, application_id=pk)
    except FacilityApplication.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "submit":
                services.application_submit(user=request.user, application_id=pk, confirm_terms=request.POST.get("confirm_terms") == "on")
                messages.success(request, _("Application submitted. The credit review has started."))
            elif action == "withdraw":
                services.application_withdraw(user=request.user, application_id=pk)
                messages.success(request, _("Application withdrawn."))
            elif action == "respond":
                services.application_respond(user=request.user, application_id=pk, response=request.POST.get("response", ""))
                messages.success(request, _("Thank you. Your answers are with the credit review."))
            elif action == "accept":
                if request.POST.get("acknowledge") != "on":
                    raise PortalError("not_acknowledged", _("Tick the box to confirm you have read and accept the facility letter."))
                facility = services.application_accept(user=request.user, application_id=pk, letter_sha256=request.POST.get("letter_sha256", ""))
                messages.success(request, _("Your facility is active."))
                return redirect("lending:facility", pk=facility.pk)
        except PortalError as exc:
            _fail(request, exc)
        return redirect("lending:application", pk=pk)
    facility = Facility.objects.filter(application=application).only("id").first() if application.state == AppState.ACTIVE else None
    return render(request, "lending/application_detail.html", {
        "application": application,
        "steps": selectors.application_steps(application=application, for_client=True),
        "decline_reasons": client_decline_reasons(application.decline_reasons) if application.state == AppState.DECLINED else [],
        "blockers": _blockers_or_message(request) if application.state in (AppState.DRAFT, AppState.RETURNED) else [],
        "facility": facility,
        "polling": application.state in (AppState.SUBMITTED, AppState.IN_REVIEW),
    })


@client_required
def facility_detail(request, pk):
    try:
        facility = selectors.facility_for_client(user=request.user, facility_id=pk)
    except Facility.DoesNotExist:
        raise Http404 from None
    return render(request, "lending/facility_detail.html", {
        "facility": facility,
        "positions": selectors.facility_valued_now(facility=facility),
        "transactions": selectors.facility_transactions(facility=facility)[:50],
        "staff_view": False,
    })


def _holdings_page(request, *, client, staff_view: bool):
    """A client's custody: each holding (held, pledged, free, price, haircut, lending value of what is free) and the
    ledger's movements, newest first, 50 a page (``lending.collateral.selectors.custody_entries``)."""
    from lending.collateral import selectors as collateral_selectors

    policy = selectors.policy_current()
    quotes = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes if policy else None)
    holdings = selectors.holdings_to_pledge(user=client, policy=policy, quotes=quotes) if policy else []
    entries = Paginator(collateral_selectors.custody_entries(client_id=client.pk), 50).get_page(page_param(request.GET))
    facility_url = id_url("lending:staff-facility" if staff_view else "lending:facility")
    for e in entries.object_list:
        e.facility_url = facility_url(e.facility_id) if e.facility_id else ""
    return render(request, "lending/holdings.html", {"client": client, "staff_view": staff_view, "holdings": holdings, "entries": entries})


@client_required
@checked_params
def holdings(request):
    return _holdings_page(request, client=request.user, staff_view=False)


# --- staff pages ------------------------------------------------------------------------------


@staff_required(Perm.APPLICATION_DECIDE)
@checked_params
def queue(request):
    q = request.GET
    filters = queue_filters(q)
    states = filters["states"] or []
    qs = selectors.application_queue(**filters)
    page = Paginator(qs, 50).get_page(page_param(q))
    query = q.copy()
    query.pop("page", None)
    # Each label translated once per request, not once per row and loop (the template only looks them up).
    state_labels = {code: str(STAFF_QUEUE_LABELS[code]) for code in AppState.values}
    recommendation_labels = {code: str(label) for code, label in Recommendation.choices}
    # Each row's cells as text here (the review link reversed once per page), not looked up and filtered per row.
    review_url = id_url("lending:review")
    for a in page.object_list:
        a.state_label = state_labels[a.state]
        a.recommendation_label = recommendation_labels.get(a.recommendation, "")
        a.url = review_url(a.pk)
        a.client_shown = a.client.full_name or a.client.email
        a.requested_text = intcomma(a.requested_limit)
        a.recommended_text = "—" if a.recommended_limit is None else intcomma(a.recommended_limit)
        a.waiting = timesince(a.submitted_at) if a.submitted_at else ""
    counts = selectors.queue_counts()
    state_rows = [{"code": code, "label": state_labels[code], "count": counts.get(code, 0), "selected": code in states}
                  for code in AppState.values if code != AppState.DRAFT]
    return render(request, "lending/queue.html", {
        "page": page, "query": query.urlencode(), "state_rows": state_rows,
        "recommendations": list(recommendation_labels.items()), "filters": q,
    })


@staff_required(Perm.APPLICATION_DECIDE)
def review(request, pk):
    from portal.selectors import audit_history

    try:
        application = selectors.application_for_staff(application_id=pk)
    except FacilityApplication.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "approve":
                services.application_approve(actor=request.user, application_id=pk, limit=request.POST.get("limit", ""), conditions=request.POST.get("conditions", ""))
            elif action == "second_approve":
                services.application_second_approve(actor=request.user, application_id=pk, note=request.POST.get("note", ""))
            elif action == "decline":
                services.application_decline(actor=request.user, application_id=pk, reason_codes=request.POST.getlist("reason_codes"), note=request.POST.get("note", ""))
            elif action == "return":
                services.application_return(actor=request.user, application_id=pk, questions=request.POST.get("questions", ""))
            else:
                raise PortalError("unknown_action", _("Unknown action."))
            messages.success(request, _("Decision recorded."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("lending:review", pk=pk)
    steps = selectors.application_steps(application=application)
    from .review import recommendation_reasons, step_reasons

    for step in steps:  # stored with codes: each in the reader's language
        step.reason_lines = step_reasons(step)
    valuation = next((s.result for s in steps if s.code == "valuation"), None)
    evidence = _onboarding_evidence(application.client)
    acknowledgements = _acknowledgements(application.client)
    own = application.client_id == request.user.pk
    return render(request, "lending/review.html", {
        "application": application,
        "steps": steps,
        "valuation": valuation,
        "evidence": evidence,
        "acknowledgements": acknowledgements,
        "history": list(audit_history(obj=application)[:100]),
        "decline_reasons": [(code, label, CLIENT_DECLINE_TEXTS[code][1]) for code, label in DeclineReason.choices],
        "own_record": own,
        "authority": services.officer_authority(actor=request.user, policy=application.policy or selectors.policy_current()),
        "can_second": request.user.has_perm(Perm.APPLICATION_SECOND_APPROVE) and application.decided_by_id != request.user.pk,
        "second_reasons": second_approval_reasons(application.second_approval_reasons),
        "recommendation_reasons": recommendation_reasons(application=application, steps=steps),
        "polling": application.state in (AppState.SUBMITTED, AppState.IN_REVIEW),
    })


def _onboarding_evidence(client):
    try:
        from onboarding.selectors import client_snapshot
    except ImportError:
        return None
    snap = client_snapshot(user=client)
    if not snap:
        return None
    words = _evidence_words(snap)
    rows = []
    for key, label in EVIDENCE_LABELS:
        if key in snap:
            rows.append((label, words[key] if key in words else _evidence_value(snap[key])))
    known = {k for k, _label in EVIDENCE_LABELS}
    rows += [(key.replace("_", " ").capitalize(), _evidence_value(value)) for key, value in sorted(snap.items()) if key not in known]
    return rows


def _evidence_words(snap: dict) -> dict:
    """The snapshot's codes and figures as an officer reads them: labels for codes, HK$ for money, % for a share."""
    from onboarding.models import RISK_PROFILE_LABELS, ClientType, KnowledgeBasis

    words = {}
    bases = dict(KnowledgeBasis.choices)
    if snap.get("client_type"):
        words["client_type"] = dict(ClientType.choices).get(snap["client_type"], snap["client_type"])
    for key in ("va_knowledge_basis", "derivative_knowledge_basis"):
        if snap.get(key):
            words[key] = bases.get(snap[key], snap[key])
    if snap.get("risk_profile"):
        words["risk_profile_label"] = RISK_PROFILE_LABELS.get(snap["risk_profile"], snap.get("risk_profile_label"))
    for key in ("annual_income", "liquid_assets", "net_worth"):
        if snap.get(key) not in (None, ""):
            with contextlib.suppress(ArithmeticError):  # a figure that is not a number is shown as it is
                words[key] = f"HK${Decimal(str(snap[key])):,.2f}"
    if snap.get("va_exposure_limit_pct") not in (None, ""):
        words["va_exposure_limit_pct"] = f"{Decimal(str(snap['va_exposure_limit_pct'])).normalize():f}%"
    return words


# The second approval's reasons as the approval stored them (English, with figures) → a sentence in the reader's language.
_OVERRIDES = r"^overrides the review's recommendation to (.+)$"
SECOND_APPROVAL_REASONS = [
    (r"^limit HK\$([\d,.]+) above the officer's authority of HK\$([\d,.]+)$",
     gettext_lazy("the limit of HK$%(a)s is above the approving officer's authority of HK$%(b)s")),
    (_OVERRIDES, gettext_lazy("it overrides the credit review's recommendation (%(a)s)")),
    (r"^limit above the recommended HK\$([\d,.]+)$", gettext_lazy("the limit is above the recommended HK$%(a)s")),
]


def _recommendation_named(english: str) -> str:
    """A recommendation as the stored reason names it (its English label, lower case) in the reader's language."""
    from django.utils import translation

    with translation.override("en"):
        values = {str(label).lower(): value for value, label in Recommendation.choices}
    value = values.get(english.strip().lower())
    return str(Recommendation(value).label).lower() if value else english


def second_approval_reasons(reasons) -> list[str]:
    import re

    out = []
    for reason in reasons or []:
        for pattern, text in SECOND_APPROVAL_REASONS:
            m = re.match(pattern, str(reason))
            if m:
                groups = m.groups()
                if pattern == _OVERRIDES:
                    groups = (_recommendation_named(groups[0]),)
                out.append(str(text) % {"a": groups[0], "b": groups[1] if len(groups) > 1 else ""})
                break
        else:
            out.append(str(reason))
    return out


# The onboarding snapshot's facts, in the order an officer reads them, named in words.
EVIDENCE_LABELS = [
    ("legal_name", gettext_lazy("Legal name")), ("other_names", gettext_lazy("Other names")),
    ("client_type", gettext_lazy("Client type")), ("date_of_birth", gettext_lazy("Date of birth")),
    ("nationality", gettext_lazy("Nationality")), ("margin_account_number", gettext_lazy("Securities margin account")),
    ("margin_account_confirmed", gettext_lazy("Margin account confirmed by staff")),
    ("annual_income", gettext_lazy("Annual income")), ("liquid_assets", gettext_lazy("Liquid assets")),
    ("net_worth", gettext_lazy("Net worth")), ("risk_profile", gettext_lazy("Risk profile (1–5)")),
    ("risk_profile_label", gettext_lazy("Risk profile")), ("suitability_valid_until", gettext_lazy("Suitability valid until")),
    ("va_knowledge", gettext_lazy("Virtual-asset knowledge")), ("va_knowledge_basis", gettext_lazy("Basis of VA knowledge")),
    ("va_exposure_limit_pct", gettext_lazy("VA exposure limit (share of net worth)")),
    ("derivative_knowledge", gettext_lazy("Derivative knowledge")), ("derivative_knowledge_basis", gettext_lazy("Basis of derivative knowledge")),
    ("professional_investor", gettext_lazy("Professional investor")), ("pi_valid_until", gettext_lazy("PI status valid until")),
]


def _evidence_value(value):
    from django.contrib.humanize.templatetags.humanize import intcomma

    if value is True:
        return _("Yes")
    if value is False:
        return _("No")
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Decimal) or (isinstance(value, str) and value.replace(".", "", 1).isdigit() and len(value) > 4):
        return intcomma(value)
    return value


def _acknowledgements(client):
    """Outstanding risk disclosures for the product (the disclosures app's public selector)."""
    try:
        from disclosures.selectors import outstanding_documents
        from portal.products import Product
    except ImportError:
        return None
    return outstanding_documents(user=client, product=Product.VA_MARGIN)


@staff_required(Perm.FACILITY_OPERATE)
@checked_params
def staff_facilities(request):
    q = request.GET
    qs = selectors.facilities_for_staff(**facility_filters(q))
    page = Paginator(qs, 50).get_page(page_param(q))
    query = q.copy()
    query.pop("page", None)
    return render(request, "lending/staff_facilities.html", {"page": page, "query": query.urlencode(), "states": FacilityState.choices, "bands": Band.choices, "filters": q})


@staff_required(Perm.FACILITY_OPERATE)
@checked_params
def staff_holdings(request, user_id):
    client = selectors.client_by_id(user_id=user_id)
    if client is None:
        raise Http404
    return _holdings_page(request, client=client, staff_view=True)


@staff_required(Perm.FACILITY_OPERATE)
def staff_facility(request, pk):
    from portal.selectors import audit_history

    try:
        facility = selectors.facility_for_staff(facility_id=pk)
    except Facility.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "drawdown":
                services.facility_drawdown(actor=request.user, facility_id=pk, amount=request.POST.get("amount", ""), reference=request.POST.get("reference", ""))
            elif action == "repay":
                services.facility_repay(actor=request.user, facility_id=pk, amount=request.POST.get("amount", ""), reference=request.POST.get("reference", ""))
            elif action == "suspend":
                services.facility_suspend(actor=request.user, facility_id=pk, reason=request.POST.get("reason", ""))
            elif action == "reinstate":
                services.facility_reinstate(actor=request.user, facility_id=pk)
            elif action == "close":
                from lending.servicing.lifecycle import facility_wind_up

                facility_wind_up(actor=request.user, facility_id=pk)  # every pledge released, then closed
            else:
                raise PortalError("unknown_action", _("Unknown action."))
            messages.success(request, _("Recorded."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("lending:staff-facility", pk=pk)
    return render(request, "lending/facility_detail.html", {
        "facility": facility,
        "positions": selectors.facility_valued_now(facility=facility),
        "transactions": selectors.facility_transactions(facility=facility)[:50],
        "history": list(audit_history(obj=facility)[:50]),
        "staff_view": True,
        "can_suspend": request.user.has_perm(Perm.FACILITY_SUSPEND),
    })


@staff_required(Perm.PRICE_MANAGE)
def prices(request):
    """Reference prices and their history; desk quotes and price files go to the risk engine's governance."""
    from lending.risk import services as risk_services
    from lending.risk.models import PriceSource, SourceKind

    if request.method == "POST":
        try:
            if request.FILES.get("file"):
                upload = request.FILES["file"]
                if upload.size > 2_000_000:
                    raise PortalError("invalid_file", _("A price file may be at most 2 MB."))
                rows = risk_services.quotes_parse(content=upload.read().decode("utf-8-sig"))
                loaded = risk_services.quotes_record(actor=request.user, rows=rows, strict=True, label=upload.name[:60])
                messages.success(request, _("%(n)s quotes loaded; the reference price is recomputed.") % {"n": len(loaded)})
            else:
                risk_services.quote_record(actor=request.user, source_code=request.POST.get("source", ""), asset=request.POST.get("asset", ""),
                                           price_hkd=request.POST.get("price_hkd", ""))
                messages.success(request, _("Quote recorded; the reference price is recomputed."))
        except PortalError as exc:
            messages.error(request, exc.message)
        except UnicodeDecodeError:
            messages.error(request, _("The price file must be UTF-8 text (CSV or JSON)."))
        return redirect("lending:prices")
    policy = selectors.policy_current()
    return render(request, "lending/prices.html", {
        "quotes": selectors.prices_current(max_age_minutes=policy.price_max_age_minutes if policy else None),
        "history": selectors.price_history()[:40],
        "assets": Asset.choices,
        "policy": policy,
        "desk_sources": list(PriceSource.objects.filter(active=True).exclude(kind=SourceKind.FEED).order_by("code")),
    })


@staff_required(Perm.POLICY_PROPOSE)
@checked_params
def policies(request):
    from . import policy_forms as pf
    from .models import CollateralPolicy

    posted = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "propose":
                numbers = pf.numbers_from_post(pf.COLLATERAL_FIELDS, request.POST)
                numbers["securities_haircuts"] = pf.haircut_classes_from_post(request.POST)
                numbers["marginable"] = pf.marginable_from_post(request.POST)
                if "warning_levels" in request.POST:  # in % like the rest; empty: the default levels
                    numbers["warning_levels"] = ", ".join(pf.from_form(pf.Field("warning_levels", pf.PCT), v)
                                                          for v in request.POST["warning_levels"].split(",") if v.strip()) or None
                services.policy_propose(actor=request.user, numbers=numbers, reason=request.POST.get("reason", ""),
                                        effective_from=request.POST.get("effective_from", ""))
                messages.success(request, _("Policy change proposed; a credit manager must approve it."))
                return redirect("lending:policies")
            if action in ("approve", "reject"):
                if not request.user.has_perm(Perm.POLICY_APPROVE):
                    raise PermissionDenied
                fn = services.policy_approve if action == "approve" else services.policy_reject
                fn(actor=request.user, policy_id=id_input(request.POST.get("policy_id"), "policy_id"), note=request.POST.get("note", ""))
                messages.success(request, _("Decision recorded."))
            return redirect("lending:policies")
        except PortalError as exc:
            _fail(request, exc)
            if action != "propose":
                return redirect("lending:policies")
            posted = request.POST  # the form again, with what was typed
    from lending.collateral import selectors as collateral_selectors

    current = selectors.policy_current()
    rows = list(selectors.policies()[:30])
    # Shown before a credit manager approves: how the live book would move under the newest proposal, and under an
    # older one awaiting a decision when it is asked for (``?preview=<version>``): one whole-book SELECT each, so the
    # page's cost does not grow with the number of proposals. An older proposal is approved from its preview only.
    newest = next((p for p in rows if p.status == "proposed"), None)
    asked = int_param(request.GET, "preview")
    bands = dict(Band.choices)
    # The collateral-book part (marginable list, concentration limits) of the version in force and of the proposals.
    from lending.collateral.models import MarginableList

    decided_later = [p for p in rows if p.status in ("proposed", "scheduled")]
    lists = collateral_selectors.marginable_lists(policies=[*decided_later, *([current] if current else [])])
    current_list = lists.get(current.pk) if current else None
    for p in rows:
        previewed = p.status == "proposed" and (p is newest or p.version == asked)
        p.preview = collateral_selectors.policy_preview(policy=p) if previewed else None
        # The version in force and the ones previewed: classes of the instrument master they give no haircut.
        p.unmargined = collateral_selectors.classes_without_haircut(policy=p) if previewed or p == current else []
        for move in (p.preview or {}).get("moves", []):
            move["from"], move["to"] = bands.get(move["from"], move["from"]), bands.get(move["to"], move["to"])
        p.numbers = [(label, pf.show(f, getattr(p, f.name))) for f, label in _policy_columns(pf, CollateralPolicy)]
        p.classes = [(c, f"{pf.pct(v)}%") for c, v in sorted((p.securities_haircuts or {}).items())]
        p.warning_pct = ", ".join(f"{pf.pct(v)}%" for v in (getattr(p, "warning_levels", None) or []))
        p.changes = (pf.changes(CollateralPolicy, pf.COLLATERAL_FIELDS, p, current) + pf.haircut_class_changes(p, current)
                     + pf.marginable_changes(lists.get(p.pk), current_list)
                     if p.status in ("proposed", "scheduled") else [])
    return render(request, "lending/policies.html", {
        "current": current,
        "policies": rows,
        "warning_levels": posted.get("warning_levels", "") if posted else ", ".join(pf.pct(v) for v in (current.warning_levels if current else ["0.80", "0.90"])),
        "fields": pf.form_rows(CollateralPolicy, pf.COLLATERAL_FIELDS, current, posted),
        "classes": pf.haircut_class_rows(current, posted),
        "marginable_fields": pf.form_rows(MarginableList, pf.MARGINABLE_FIELDS, current_list, posted),
        "entries": pf.marginable_entry_rows(current_list, posted),
        "marginable_in_force": ([(pf.field_label(MarginableList, f.name), pf.show(f, getattr(current_list, f.name))) for f in pf.MARGINABLE_FIELDS]
                                if current_list else []),
        "entries_in_force": [(code, f"{pf.pct(cut)}%") for code, cut in sorted(pf.entries_of(current_list).items())],
        "posted": posted,
        "can_approve": request.user.has_perm(Perm.POLICY_APPROVE),
    })


def _policy_columns(pf, model):
    """The numbers each version shows in the table (labelled as the form labels them)."""
    wanted = ("btc_haircut", "eth_haircut", "va_max_share", "watch_level", "margin_call_level", "close_out_level", "cure_days")
    fields = {f.name: f for f in pf.COLLATERAL_FIELDS}
    return [(fields[n], pf.field_label(model, n)) for n in wanted]


@staff_required(Perm.WATCHLIST_MANAGE)
@checked_params
def watchlist(request):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "deactivate":
                services.watchlist_deactivate(actor=request.user, entry_id=id_input(request.POST.get("entry_id"), "entry_id"), reason=request.POST.get("reason", ""))
            else:
                services.watchlist_add(actor=request.user, name=request.POST.get("name", ""), aliases=request.POST.get("aliases", ""),
                                       category=request.POST.get("category", "sanctions"), note=request.POST.get("note", ""))
            messages.success(request, _("Watch list updated."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("lending:watchlist")
    page = Paginator(selectors.watchlist(include_inactive=True), 100).get_page(page_param(request.GET))
    return render(request, "lending/watchlist.html", {"page": page, "categories": WatchListCategory.choices})


@staff_required(Perm.SCREENING_REVIEW)
@checked_params
def screening(request):
    """Compliance: possible watch-list matches waiting for a decision, and those decided."""
    from .inputs import choice_param

    if request.method == "POST":
        try:
            outcome = choice_param(request.POST, "outcome", choices=("cleared", "confirmed"))
            if not outcome:
                raise PortalError("validation_error", _("Choose cleared or confirmed."))
            services.application_screening_decide(actor=request.user, application_id=id_input(request.POST.get("application_id"), "application_id"),
                                                  confirmed=outcome == "confirmed", note=request.POST.get("note", ""))
            messages.success(request, _("Screening decision recorded."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("lending:screening")
    status = choice_param(request.GET, "status", choices=("pending", "cleared", "confirmed"), default="pending")
    page = Paginator(selectors.screening_hits(status=status), 50).get_page(page_param(request.GET))
    steps = selectors.screening_steps(applications=page.object_list)
    rows = [(app, [h | {"category": watchlist_category_label(h.get("category", ""))} for h in (steps.get(app.pk).result or {}).get("hits", [])]
             if steps.get(app.pk) else []) for app in page.object_list]
    return render(request, "lending/screening.html", {"page": page, "rows": rows, "status": status})
