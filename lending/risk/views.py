"""Risk pages: the board, margin calls, stress tests, price governance, the risk policy, the client's facility risk."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import get_language, gettext_lazy, pgettext_lazy
from django.utils.translation import gettext as _

from lending.inputs import (
    call_filters,
    checked_params,
    choice_param,
    datetime_text,
    decimal_input,
    id_input,
    page_param,
)
from portal.access import client_required, id_url_if_open, may_open, staff_required
from portal.errors import PortalError
from portal.permissions import Perm
from portal.templatetags.portal_format import hkd

from . import selectors, services
from .models import CallState, MarginCall, Resolution, RiskPolicy, SourceKind, StressReport
from .templatetags.risk_tags import band_label, utilisation_text


def _page_number(request) -> int:
    return page_param(request.GET)


@staff_required(Perm.RISK_VIEW)
@checked_params
def board(request):
    data = selectors.board(page=_page_number(request))
    # The rows' cells as text once per page (links reversed once, whether the reader may follow them asked once),
    # not per row in the template; a link the reader may not follow is left out.
    facility_url, call_url = (id_url_if_open(request.user, name) for name in ("lending:staff-facility", "risk:call"))
    for r in data.get("nearest", []):
        r["url"] = facility_url(r["facility_id"]) if facility_url else ""
        r["client_shown"] = r.get("full_name") or r.get("email")
        r["drawn_text"], r["lv_text"] = hkd(r["drawn"]), hkd(r["lv"])
        r["util_text"], r["band_text"] = utilisation_text(r["util"]), band_label(r["band"])
    for c in data.get("oldest_calls", []):
        c.url = call_url(c.pk) if call_url else ""
        c.shortfall_text, c.age, c.state_text = hkd(c.shortfall), timesince(c.opened_at), c.get_state_display()
    calls_url = reverse("risk:calls")
    return render(request, "risk/board.html", {"b": data, "calls_url": calls_url if may_open(request.user, calls_url) else ""})


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def calls(request):
    filters = call_filters(request.GET, default_state="open_all")
    qs = selectors.margin_calls(**filters)
    page = _page_number(request)
    rows = list(qs[(page - 1) * 50: page * 50 + 1])
    return render(request, "risk/calls.html", {
        "calls": rows[:50], "has_next": len(rows) > 50, "page": page, "state": filters["state"], "q": filters["search"],
        "states": [("open_all", _("Open or escalated")), *CallState.choices], "counts": selectors.margin_call_counts(),
    })


CALL_EVENT_LABELS = {
    "risk.margin_call.opened": gettext_lazy("Opened by the revaluation"),
    "risk.margin_call.breached_again": gettext_lazy("Crossed into margin call again"),
    "risk.margin_call.updated": gettext_lazy("Facility moved band"),
    "risk.margin_call.escalated": gettext_lazy("Escalated to the credit managers"),
    "risk.margin_call.met": pgettext_lazy("margin call", "Met"),
    "risk.margin_call.resolution_proposed": gettext_lazy("Close-out or waiver proposed"),
    "risk.margin_call.resolution_rejected": gettext_lazy("Proposal sent back"),
    "risk.margin_call.closed_out": gettext_lazy("Close-out approved"),
    "risk.margin_call.waived": gettext_lazy("Waiver approved"),
    "risk.margin_call.repayment_notice": gettext_lazy("Client gave notice of a repayment"),
    "risk.margin_call.top_up_requested": gettext_lazy("Client asked to add collateral"),
}


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def call_detail(request, pk: int):
    try:
        call = selectors.margin_call(call_id=pk)
    except MarginCall.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action = request.POST.get("action", "")
        note = request.POST.get("note", "")
        try:
            if action == "escalate":
                services.margin_call_escalate(actor=request.user, call_id=pk, reason=note)
                messages.success(request, _("The call is escalated to the credit managers."))
            elif action == "mark_met":
                services.margin_call_mark_met(actor=request.user, call_id=pk, note=note)
                messages.success(request, _("The call is recorded as met."))
            elif action == "propose":
                services.margin_call_propose(actor=request.user, call_id=pk, resolution=request.POST.get("resolution", ""), reason=note)
                messages.success(request, _("Proposal recorded; a credit manager other than you must approve it."))
            elif action in ("approve", "reject"):
                services.margin_call_decide(actor=request.user, call_id=pk, approve=action == "approve", note=note)
                messages.success(request, _("Decision recorded."))
            else:
                messages.error(request, _("Unknown action."))
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("risk:call", pk=pk)
    from lending.recovery.selectors import plan_for_call
    from portal.selectors import audit_history

    history = [(e, CALL_EVENT_LABELS.get(e.action, e.action)) for e in audit_history(obj=call).select_related("actor")[:100]]
    # Who escalated: the officer named (from the audit row), or the engine at the close-out level.
    escalation = next((e for e, _label in history if e.action == "risk.margin_call.escalated"), None)
    escalated_by = (escalation.actor.full_name or escalation.actor.email) if escalation and escalation.actor else None
    return render(request, "risk/call_detail.html", {
        "call": call, "risk": selectors.facility_risk(facility_id=call.facility_id), "plan": plan_for_call(call_id=call.pk),
        "escalated_by": escalated_by,
        "history": history, "resolutions": Resolution.choices,
        "can_resolve": request.user.has_perm(Perm.MARGIN_CALL_RESOLVE),
    })


@staff_required(Perm.STRESS_TEST_RUN)
@checked_params
def stress(request):
    # Shocks as percentages, as the policy form takes them; the form opens on the risk policy's monthly scenario.
    presets = {p["key"]: p for p in selectors.stress_presets()}
    preset = choice_param(request.GET, "preset", choices=list(presets)) or request.POST.get("preset")
    chosen = presets.get(preset) or presets["policy"]
    result, form = None, {k: selectors.shock_as_percent(chosen[k]) for k in ("btc", "eth", "securities")}
    if request.method == "POST" and not request.POST.get("preset"):
        form = {k: request.POST.get(k, "0") for k in ("btc", "eth", "securities")}
    if request.method == "POST" or request.GET.get("preset"):
        try:
            shocks = selectors.stress_shocks_clean(**form, percent=True)
            if request.POST.get("save"):
                report = services.stress_report_store(actor=request.user, btc_shock=shocks["btc"], eth_shock=shocks["eth"], securities_shock=shocks["securities"])
                messages.success(request, _("The stress run is stored."))
                return redirect("risk:stress-report", pk=report.pk)
            result = selectors.stress_test(**shocks)
        except PortalError as exc:
            messages.error(request, exc.message)
    return render(request, "risk/stress.html", {"result": result, "form": form, "presets": list(presets.values())})


@staff_required(Perm.STRESS_TEST_RUN)
@checked_params
def stress_reports(request):
    page = _page_number(request)
    rows = list(selectors.stress_reports(kind=choice_param(request.GET, "kind", choices=StressReport.Kind.values))[(page - 1) * 50: page * 50 + 1])
    return render(request, "risk/stress_reports.html", {"reports": rows[:50], "has_next": len(rows) > 50, "page": page})


@staff_required(Perm.STRESS_TEST_RUN)
@checked_params
def stress_report(request, pk: int):
    report = StressReport.objects.select_related("created_by").filter(pk=pk).first()
    if report is None:
        raise Http404
    return render(request, "risk/stress_report.html", {"report": report, "result": report.result})


def _override_expiry(request):
    """The expiry typed as a date-time (``expires_at``), or else ``hours`` from now (4 by default); a typed expiry
    that is not a date-time is refused, never replaced by the default."""
    typed = (request.POST.get("expires_at") or "").strip()
    if typed:
        expires = datetime_text(typed)
        if expires is None:
            raise PortalError("validation_error", _("%(field)s must be a date and time such as 2026-03-02T16:10.") % {"field": _("Expires at")},
                              {"expires_at": [_("Not a date and time.")]})
        return expires
    hours = decimal_input(request.POST.get("hours") or "4", _("Expires after (hours)"), minimum=Decimal("0.25"), maximum=Decimal("168"))
    return timezone.now() + timedelta(hours=float(hours))


def _prices_post(request) -> None:
    action = request.POST.get("action")
    if action == "quote":
        services.quote_record(actor=request.user, source_code=request.POST.get("source", ""), asset=request.POST.get("asset", ""),
                              price_hkd=request.POST.get("price_hkd"))
        messages.success(request, _("Quote recorded; the reference price is recomputed."))
    elif action == "override":
        services.override_propose(actor=request.user, asset=request.POST.get("asset", ""), price_hkd=request.POST.get("price_hkd"),
                                  expires_at=_override_expiry(request), reason=request.POST.get("reason", ""),
                                  justification=request.POST.get("justification", ""))
        messages.success(request, _("Override proposed; a second credit manager must approve it before it is in force."))
    elif action in ("approve_override", "reject_override"):
        services.override_decide(actor=request.user, override_id=id_input(request.POST.get("override_id"), "override_id"),
                                 approve=action == "approve_override", note=request.POST.get("note", ""))
        messages.success(request, _("Override approved: it is in force until it expires.") if action == "approve_override" else _("Override rejected."))
    elif action == "cancel_override":
        services.override_cancel(actor=request.user, override_id=id_input(request.POST.get("override_id"), "override_id"), reason=request.POST.get("reason", ""))
        messages.success(request, _("Override cancelled."))
    elif action == "source_create":
        services.price_source_create(actor=request.user, code=request.POST.get("code", ""), name=request.POST.get("name", ""),
                                     kind=request.POST.get("kind", ""), weight=request.POST.get("weight") or "1")
        messages.success(request, _("Price source added."))
    elif action == "source_update":
        active = request.POST.get("active")
        services.price_source_update(actor=request.user, source_id=id_input(request.POST.get("source_id"), "source_id"),
                                     weight=request.POST.get("weight") or None, active=None if active is None else active == "1",
                                     reason=request.POST.get("reason", ""))
        messages.success(request, _("Price source updated."))
    else:
        raise PortalError("unknown_action", _("Unknown action."))


@staff_required(Perm.PRICE_MANAGE)
@checked_params
def prices(request):
    if request.method == "POST":
        try:
            _prices_post(request)
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("risk:prices")
    from lending.collateral import selectors as custody_selectors

    history = list(selectors.quote_history()[:40])
    return render(request, "risk/prices.html", {
        "o": selectors.price_overview(), "history": history, "source_kinds": SourceKind.choices,
        # Desk quotes and overrides price BTC, ETH or any listed security (a suspended one included).
        "securities": [{"code": i.code, "name": i.name_for(get_language()), "suspended": i.suspended}
                       for i in custody_selectors.instruments(kind="security")],
        "can_override": request.user.has_perm(Perm.PRICE_OVERRIDE),
        "can_manage_sources": request.user.has_perm(Perm.PRICE_OVERRIDE),
    })


@staff_required(Perm.POLICY_PROPOSE)
@checked_params
def policy(request):
    from types import SimpleNamespace

    from lending import policy_forms as pf

    posted = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "propose":
                services.risk_policy_propose(actor=request.user, numbers=pf.numbers_from_post(pf.RISK_FIELDS, request.POST),
                                             reason=request.POST.get("reason", ""), effective_from=request.POST.get("effective_from", ""))
                messages.success(request, _("Proposal recorded; a credit manager other than you must approve it."))
            elif action in ("approve", "reject"):
                services.risk_policy_decide(actor=request.user, policy_id=id_input(request.POST.get("policy_id"), "policy_id"),
                                            approve=action == "approve", note=request.POST.get("note", ""))
                messages.success(request, _("Decision recorded."))
            return redirect("risk:policy")
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
            if action != "propose":
                return redirect("risk:policy")
            posted = request.POST
    rows = list(selectors.risk_policies()[:20])
    current = selectors.risk_policy_current()
    in_force = current or SimpleNamespace(**selectors.risk_numbers())  # the defaults until a version is approved
    columns = [(f, pf.field_label(RiskPolicy, f.name)) for f in pf.RISK_FIELDS]
    for p in rows:
        p.numbers = [pf.show(f, getattr(p, f.name)) for f, _label in columns]
        p.changes = pf.changes(RiskPolicy, pf.RISK_FIELDS, p, in_force) if p.status in ("proposed", "scheduled") else []
    return render(request, "risk/policy.html", {
        "policies": rows, "columns": [label for _f, label in columns],
        "can_approve": request.user.has_perm(Perm.POLICY_APPROVE), "fields": pf.form_rows(RiskPolicy, pf.RISK_FIELDS, in_force, posted),
        "posted": posted,
    })


@client_required
@checked_params
def client_facility(request, pk: int):
    risk = selectors.facility_risk_for_client(user=request.user, facility_id=pk)
    if risk is None:
        raise Http404
    return render(request, "risk/client_facility.html", {"risk": risk, "calls": selectors.client_calls(user=request.user, facility_id=pk),
                                                         **selectors.call_contact()})


@client_required
def client_call(request, pk: int):
    """The client's margin call: what cures it, by when, whom to call; notice of a repayment or a top-up request."""
    from lending.servicing import requests as servicing_requests

    calls = selectors.client_calls(user=request.user, call_id=pk)
    if not calls:
        raise Http404
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "repayment":
                req = services.margin_call_repayment_notice(user=request.user, call_id=pk, amount=request.POST.get("amount", ""),
                                                            note=request.POST.get("note", ""))
                messages.success(request, _("Notice %(ref)s received. %(instructions)s") % {
                    "ref": req.reference, "instructions": servicing_requests.payment_instructions(req)})
            elif action == "top_up":
                req = services.margin_call_top_up_request(user=request.user, call_id=pk, instrument=request.POST.get("instrument", ""),
                                                          quantity=request.POST.get("quantity") or None,
                                                          custody_reference=request.POST.get("custody_reference", ""))
                messages.success(request, _("Top-up %(ref)s sent to your account officer.") % {"ref": req.reference})
            else:
                raise PortalError("unknown_action", _("Unknown action."))
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("risk:client-call", pk=pk)
    from lending.collateral import selectors as custody_selectors
    from lending.selectors import policy_current

    c = calls[0]
    holdings = []
    if c["call"].is_open:
        # Only what would add lending value answers a call: a suspended or non-marginable security (a haircut of 100%) adds none.
        in_force = policy_current()
        cuts = custody_selectors.haircuts_by_code(policy=in_force) if in_force else {}
        holdings = [h for h in custody_selectors.custody_for_client(user=request.user) if h.free > 0 and cuts.get(h.instrument.code, 1) < 1]
    return render(request, "risk/client_call.html", {
        "holdings": holdings,
        "c": c, "call": c["call"], "risk": selectors.facility_risk_for_client(user=request.user, facility_id=c["call"].facility_id),
        "instructions": servicing_requests.payment_instructions(None), **selectors.call_contact(),
    })


def facility_live(request, pk: int):
    """The small JSON the facility, call and dashboard pages poll: the facility valued now from the engine's
    stored coefficients (never the book), its utilisation as every page shows it, and its open call.
    The owner, or staff who may see the facility; anyone else gets 404 (nothing says it exists)."""
    from django.http import JsonResponse

    from .templatetags.risk_tags import utilisation_text

    user = request.user
    if not user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    risk = selectors.facility_risk(facility_id=pk, client_id=user.pk) if user.is_client else None
    if risk is None and user.is_portal_staff and any(user.has_perm(p) for p in STAFF_FACILITY_VIEW):
        risk = selectors.facility_risk(facility_id=pk)
    if risk is None:
        return JsonResponse({"code": "not_found", "message": _("No such facility.")}, status=404)
    call, cure = risk["open_call"], risk["cure"]

    def money(value):
        return f"{value:,.2f}" if value is not None else None

    body = {
        "facility_id": risk["facility_id"],
        "utilisation": str(risk["utilisation"]), "utilisation_text": utilisation_text(risk["utilisation"]),
        "band": risk["band"], "band_label": str(risk["band_label"]),
        "lending_value": money(risk["lending_value"]), "drawn_balance": money(risk["drawn_balance"]),
        "market_value": money(risk["market_value"]),
        "prices": {k: money(v) for k, v in risk["prices"].items()},
        "needle": {"x": risk["gauge"]["needle_x"], "y": risk["gauge"]["needle_y"]},
        "call": None if call is None else {
            "reference": call.reference, "state": call.state, "state_label": str(call.get_state_display()),
            "deadline": call.cure_deadline.isoformat(),
            "repay": money(cure.repay), "securities_lending_value": money(cure.securities_lending_value),
            "btc": f"{cure.btc_quantity:f}" if cure.btc_quantity is not None else None,
            "eth": f"{cure.eth_quantity:f}" if cure.eth_quantity is not None else None,
        },
        "now": timezone.now().isoformat(),
    }
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


# Staff who may see any facility's figures (the workbench pages that show them).
STAFF_FACILITY_VIEW = (Perm.RISK_VIEW, Perm.MARGIN_CALL_MANAGE, Perm.FACILITY_OPERATE)
