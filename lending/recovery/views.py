"""Close-out and recovery pages: the close-out list and plan page (the dealing desk records executions), the
collections queue and debt page, the compliance write-off register (CSV), the recovery policy, and the
client's own view of the sales and any amount owing."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from lending.inputs import checked_params, choice_param, id_input, page_param
from portal.access import client_required, staff_required
from portal.errors import PortalError
from portal.permissions import Perm

from . import selectors, services
from .models import Debt, DebtState, ExecutionStatus, LiquidationPlan, PlanState, RecoveryPolicy

PAGE = 50


def _page(qs, request):
    page = page_param(request.GET)
    rows = list(qs[(page - 1) * PAGE: page * PAGE + 1])
    return rows[:PAGE], len(rows) > PAGE, page


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def plans(request):
    state = choice_param(request.GET, "state", choices=PlanState.values)
    rows, has_next, page = _page(selectors.plans(state=state, live_only=not state), request)
    return render(request, "recovery/plans.html", {"plans": rows, "has_next": has_next, "page": page, "state": state, "states": PlanState.choices})


def _post_plan(request, pk: int) -> None:
    action = request.POST.get("action", "")
    if action == "execution":
        services.execution_record(actor=request.user, plan_id=pk, line_id=id_input(request.POST.get("line"), "line"),
                                  instrument=request.POST.get("instrument", ""), status=request.POST.get("status", ExecutionStatus.FILLED),
                                  quantity=request.POST.get("quantity"), price=request.POST.get("price") or None,
                                  executed_at=request.POST.get("executed_at") or None, venue_reference=request.POST.get("venue_reference", ""),
                                  note=request.POST.get("note", ""))
        messages.success(request, _("Execution recorded."))
    elif action == "amend":
        quantities = {key[len("qty_"):]: value for key, value in request.POST.items() if key.startswith("qty_") and value.strip() != ""}
        services.plan_amend_propose(actor=request.user, plan_id=pk, quantities=quantities, reason=request.POST.get("reason", ""))
        messages.success(request, _("Amendment proposed; a credit manager other than you must approve it."))
    elif action in ("amend_approve", "amend_reject"):
        services.plan_amend_decide(actor=request.user, amendment_id=id_input(request.POST.get("amendment"), "amendment"),
                                   approve=action == "amend_approve", note=request.POST.get("note", ""))
        messages.success(request, _("Decision recorded."))
    else:
        messages.error(request, _("Unknown action."))


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def plan_detail(request, pk: int):
    if request.method == "POST":
        try:
            _post_plan(request, pk)
        except PortalError as exc:
            messages.error(request, exc.message)
        target = LiquidationPlan.objects.filter(amended_from__plan_id=pk).values_list("pk", flat=True).first() if request.POST.get("action") == "amend_approve" else None
        return redirect("recovery:plan", pk=target or pk)
    try:
        plan = selectors.plan_detail(plan_id=pk)
    except LiquidationPlan.DoesNotExist:
        raise Http404 from None
    lines = list(plan.lines.all())
    return render(request, "recovery/plan_detail.html", {
        "plan": plan, "lines": lines, "open_lines": [x for x in lines if x.is_open], "executions": list(plan.executions.all()),
        "amendments": list(plan.amendments.all()), "statuses": ExecutionStatus.choices,
        "can_execute": request.user.has_perm(Perm.FACILITY_OPERATE), "can_decide": request.user.has_perm(Perm.MARGIN_CALL_RESOLVE),
    })


BUCKET_LABELS = {"current": gettext_lazy("Not yet due"), "1-30": "1–30", "31-60": "31–60", "61-90": "61–90", "90+": "90+"}


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def collections(request):
    state = choice_param(request.GET, "state", choices=DebtState.values)
    bucket = choice_param(request.GET, "bucket", choices=list(BUCKET_LABELS))
    rows, has_next, page = _page(selectors.debts(state=state, bucket=bucket, live_only=not state), request)
    totals = selectors.bucket_totals()
    for t in totals:
        t["label"] = BUCKET_LABELS[t["code"]]
    return render(request, "recovery/collections.html", {
        "debts": selectors.with_delinquency(rows), "has_next": has_next, "page": page, "state": state, "bucket": bucket,
        "states": DebtState.choices, "buckets": list(BUCKET_LABELS.items()), "totals": totals,
    })


def _post_debt(request, pk: int) -> None:
    action = request.POST.get("action", "")
    note = request.POST.get("note", "")
    if action == "payment":
        services.debt_payment_record(actor=request.user, debt_id=pk, amount=request.POST.get("amount"), reference=request.POST.get("reference", ""))
        messages.success(request, _("Payment recorded."))
    elif action == "collections":
        services.debt_to_collections(actor=request.user, debt_id=pk, note=note)
        messages.success(request, _("The debt is in collections."))
    elif action == "write_off_propose":
        services.write_off_propose(actor=request.user, debt_id=pk, reason=note)
        messages.success(request, _("Write-off proposed; a second person must approve it."))
    elif action in ("write_off_approve", "write_off_reject"):
        services.write_off_decide(actor=request.user, debt_id=pk, approve=action == "write_off_approve", note=note)
        messages.success(request, _("Decision recorded."))
    elif action == "recovery":
        services.recovery_record(actor=request.user, debt_id=pk, amount=request.POST.get("amount"), reference=request.POST.get("reference", ""),
                                 note=note, final=request.POST.get("final") == "1")
        messages.success(request, _("Recovery recorded."))
    else:
        messages.error(request, _("Unknown action."))


@staff_required(Perm.MARGIN_CALL_MANAGE)
@checked_params
def debt_detail(request, pk: int):
    if request.method == "POST":
        try:
            _post_debt(request, pk)
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("recovery:debt", pk=pk)
    try:
        debt = selectors.debt_detail(debt_id=pk)
    except Debt.DoesNotExist:
        raise Http404 from None
    selectors.with_delinquency([debt])
    return render(request, "recovery/debt_detail.html", {
        "debt": debt, "notices": list(debt.notices.all()), "recoveries": list(debt.recoveries.all()),
        "can_operate": request.user.has_perm(Perm.FACILITY_OPERATE), "can_resolve": request.user.has_perm(Perm.MARGIN_CALL_RESOLVE),
        "bucket_label": BUCKET_LABELS.get(debt.bucket, ""),
    })


def register_columns():
    from portal.exports import columns

    return columns(
        (gettext_lazy("Debt"), lambda d: d.reference), (gettext_lazy("Facility"), lambda d: d.facility.reference),
        (gettext_lazy("Client"), lambda d: d.client.full_name or d.client.email), (gettext_lazy("State"), lambda d: d.get_state_display()),
        (gettext_lazy("Owed after sale (HKD)"), lambda d: d.principal_at_open), (gettext_lazy("Written off (HKD)"), lambda d: d.written_off_amount),
        (gettext_lazy("Written off at"), lambda d: d.written_off_at), (gettext_lazy("Proposed by"), lambda d: str(d.write_off_proposed_by or "")),
        (gettext_lazy("Approved by"), lambda d: str(d.written_off_by or "")), (gettext_lazy("Reasons"), lambda d: d.write_off_reason),
        (gettext_lazy("Approver's note"), lambda d: d.write_off_note), (gettext_lazy("Recovered (HKD)"), lambda d: d.recovered_total),
        (gettext_lazy("Recovered at"), lambda d: d.recovered_at),
    )


@staff_required(Perm.REPORT_VIEW)
@checked_params
def register(request):
    fmt = choice_param(request.GET, "format", choices=["csv"])
    if fmt:
        from lending.reporting.services import export_record
        from portal.exports import export_response

        export_record(actor=request.user, list_name="write-off-register", fmt=fmt, filters={})
        return export_response(fmt, selectors.register(), register_columns(), basename="write-off-register", sheet_title="Write-offs")
    rows, has_next, page = _page(selectors.register(), request)
    return render(request, "recovery/register.html", {"debts": rows, "has_next": has_next, "page": page})


@staff_required(Perm.POLICY_PROPOSE)
@checked_params
def policy(request):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "propose":
                numbers = {k: request.POST.get(k, "") for k in RecoveryPolicy.NUMBERS}
                services.recovery_policy_propose(actor=request.user, numbers=numbers, reason=request.POST.get("reason", ""))
                messages.success(request, _("Proposal recorded; a credit manager other than you must approve it."))
            elif request.POST.get("action") in ("approve", "reject"):
                services.recovery_policy_decide(actor=request.user, policy_id=id_input(request.POST.get("policy_id"), "policy_id"),
                                                approve=request.POST.get("action") == "approve", note=request.POST.get("note", ""))
                messages.success(request, _("Decision recorded."))
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("recovery:policy")
    return render(request, "recovery/policy.html", {
        "policies": list(selectors.recovery_policies()[:20]), "current": selectors.recovery_policy_current(),
        "can_approve": request.user.has_perm(Perm.POLICY_APPROVE),
    })


@client_required
@checked_params
def client_facility(request, pk: int):
    from lending.models import Facility
    from lending.selectors import facility_for_client

    try:
        facility = facility_for_client(user=request.user, facility_id=pk)
    except Facility.DoesNotExist:  # another client's facility or none: the same 404
        raise Http404 from None
    plans = selectors.plans_for_facility(facility_id=facility.pk)
    debt = selectors.debt_for_facility(facility_id=facility.pk)
    if debt is not None:
        selectors.with_delinquency([debt])
    return render(request, "recovery/client_facility.html", {"facility": facility, "plans": plans, "debt": debt})
