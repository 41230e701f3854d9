"""Reporting pages: the SMF pack, capital, deviations, complaints, record requests, retention, the risk
engine's stored records, and the one export view every staff list links to."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lending.inputs import checked_params, id_input
from lending.selectors import firm_exposure
from portal import exports
from portal.access import client_required, id_url_if_open, staff_required
from portal.errors import PortalError
from portal.files import private_file_response
from portal.models import User
from portal.pdf import PDF_MEDIA_TYPE
from portal.permissions import Perm

from . import lists, policy, retention, selectors, services
from . import render as pack_render
from .forms import (
    BandChangeFilterForm,
    CapitalForm,
    ClientComplaintForm,
    ClientGroupForm,
    CloseComplaintForm,
    DeviationForm,
    GroupMemberForm,
    PackForm,
    RecordRequestForm,
    SnapshotFilterForm,
    StaffComplaintForm,
)
from .models import Complaint, ComplaintState, Deviation, DeviationState, DisposalState, RelatedClientGroup, SmfPack


def _fail(request, exc: PortalError, form=None) -> None:
    messages.error(request, exc.message)
    if form is not None:
        for field, errors in exc.fields.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)


def _query(request) -> str:
    q = request.GET.copy()
    q.pop("page", None)
    return q.urlencode()


def _page(request, qs, size=50):
    return Paginator(qs, size).get_page(request.GET.get("page"))


# --- The one export view ---------------------------------------------------------------------------------


@staff_required()
@checked_params
def export(request, list_name: str, fmt: str):
    spec = lists.LISTS.get(list_name)
    if spec is None or fmt not in exports.FORMATS:
        raise Http404
    if not request.user.has_perm(spec.perm):
        raise PermissionDenied(_("You do not have permission to open this page."))
    rows = spec.queryset(request.GET)  # the list's own filters: a bad one is a 400 before anything is recorded
    services.export_record(actor=request.user, list_name=list_name, fmt=fmt, filters=dict(request.GET.lists()))
    return exports.export_response(fmt, rows, spec.columns(), basename=spec.basename, sheet_title=str(spec.sheet))


# --- SMF packs ---------------------------------------------------------------------------------------------


@staff_required(Perm.REPORT_VIEW)
def packs(request):
    form = PackForm(request.POST or None, initial={"as_of": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            pack = services.smf_pack_generate(actor=request.user, as_of=form.cleaned_data["as_of"])
        except PortalError as exc:
            _fail(request, exc, form)
        else:
            messages.success(request, _("SMF pack as at %(date)s stored (version %(version)s).") % {"date": pack.as_of, "version": pack.version})
            return redirect("reporting:pack", pk=pack.pk)
    return render(request, "reporting/packs.html", {"form": form, "page": _page(request, selectors.packs())})


@staff_required(Perm.REPORT_VIEW)
def pack_detail(request, pk: int):
    try:
        pack = selectors.pack(pack_id=pk)
    except SmfPack.DoesNotExist:
        raise Http404 from None
    return render(request, "reporting/pack.html", {"pack": pack, "d": pack.data, "v": pack_render.pack_view(pack.data)})


@staff_required(Perm.REPORT_VIEW)
def pack_download(request, pk: int, fmt: str):
    if fmt not in ("xlsx", "pdf"):
        raise Http404
    try:
        pack = selectors.pack_file(pack_id=pk, fmt=fmt)
    except SmfPack.DoesNotExist:
        raise Http404 from None
    content = getattr(pack, fmt)
    if not content:
        raise Http404
    content_type = exports.XLSX_CONTENT_TYPE if fmt == "xlsx" else PDF_MEDIA_TYPE
    response = private_file_response(bytes(content), content_type=content_type, filename=f"smf-pack-{pack.as_of}-v{pack.version}.{fmt}")
    response["X-Content-SHA256"] = getattr(pack, f"{fmt}_sha256")
    return response


# --- Capital -------------------------------------------------------------------------------------------------


@staff_required(Perm.CAPITAL_VIEW)
def capital(request):
    form = CapitalForm(request.POST or None, initial={"as_of": timezone.localdate(), "ceiling_multiple": policy.LOANS_TO_CAPITAL_BENCHMARK})
    if request.method == "POST":
        action = request.POST.get("action", "propose")
        try:
            if action == "propose":
                if form.is_valid():
                    services.capital_propose(actor=request.user, **form.cleaned_data)
                    messages.success(request, _("Capital entry proposed; a compliance officer must approve it."))
                    return redirect("reporting:capital")
            else:
                entry_id = id_input(request.POST.get("entry"), "entry")
                if action == "approve":
                    services.capital_approve(actor=request.user, entry_id=entry_id, note=request.POST.get("note", ""))
                    messages.success(request, _("Capital entry approved."))
                elif action == "reject":
                    services.capital_reject(actor=request.user, entry_id=entry_id, note=request.POST.get("note", ""))
                    messages.success(request, _("Capital entry rejected."))
                return redirect("reporting:capital")
        except PortalError as exc:
            _fail(request, exc, form)
    today = timezone.localdate()
    in_force = selectors.capital_at(day=today)
    drawn = selectors.total_margin_loans()
    view = selectors.loans_to_capital(total_loans=drawn, capital=in_force)
    return render(request, "reporting/capital.html", {
        "form": form, "page": _page(request, selectors.capital_entries()), "in_force": in_force, "drawn": drawn, "view": view,
        "limits": firm_exposure(), "benchmark": policy.LOANS_TO_CAPITAL_BENCHMARK,
    })


# --- Deviations ------------------------------------------------------------------------------------------------


@staff_required(Perm.REPORT_VIEW)
def deviations(request):
    form = DeviationForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm(Perm.DEVIATION_PROPOSE):
            raise PermissionDenied
        if form.is_valid():
            try:
                deviation = services.deviation_propose(actor=request.user, **form.cleaned_data)
            except PortalError as exc:
                _fail(request, exc, form)
            else:
                messages.success(request, _("Deviation recorded; a second person must approve it."))
                return redirect("reporting:deviation", pk=deviation.pk)
    state = request.GET.get("state", "")
    return render(request, "reporting/deviations.html", {
        "form": form, "page": _page(request, selectors.deviations(state=state)), "state": state, "states": DeviationState.choices,
    })


@staff_required(Perm.REPORT_VIEW)
def deviation_detail(request, pk: int):
    try:
        deviation = selectors.deviation(deviation_id=pk)
    except Deviation.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action, note = request.POST.get("action"), request.POST.get("note", "")
        try:
            if action == "approve":
                services.deviation_approve(actor=request.user, deviation_id=pk, note=note)
            elif action == "reject":
                services.deviation_reject(actor=request.user, deviation_id=pk, note=note)
            elif action == "retire":
                services.deviation_retire(actor=request.user, deviation_id=pk, reason=note)
            messages.success(request, _("Deviation updated."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("reporting:deviation", pk=pk)
    from portal.selectors import audit_history

    return render(request, "reporting/deviation.html", {"deviation": deviation, "history": list(audit_history(obj=deviation)[:50])})


# --- Complaints (staff) -----------------------------------------------------------------------------------------


@staff_required(Perm.COMPLAINT_LOG)
def complaints(request):
    if not request.user.has_perm(Perm.COMPLAINT_HANDLE):
        # Officers log complaints; only compliance reads the register.
        return redirect("reporting:complaint-new")
    state = request.GET.get("state", "active")
    qs = selectors.complaints(state=state, search=request.GET.get("q", ""))
    return render(request, "reporting/complaints.html", {
        "page": _page(request, qs), "state": state, "q": request.GET.get("q", ""), "query": _query(request),
        "states": [("active", _("Not closed")), *ComplaintState.choices, ("", _("All"))], "counts": selectors.complaint_counts(),
        "now": timezone.now(), "policy": policy,
    })


def _users_by_email(emails: str) -> tuple[list, list[str]]:
    wanted = [e.strip().lower() for e in (emails or "").split(",") if e.strip()]
    found = list(User.objects.filter(email__in=wanted))
    missing = sorted(set(wanted) - {u.email for u in found})
    return found, missing


@staff_required(Perm.COMPLAINT_LOG)
def complaint_new(request):
    form = StaffComplaintForm(request.POST or None, initial={"received_at": timezone.localtime().replace(second=0, microsecond=0, tzinfo=None)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        client = None
        if data["client_email"]:
            client = User.objects.filter(email=data["client_email"].lower()).first()
            if client is None or not client.is_client:
                form.add_error("client_email", _("No client has this email."))
        staff, missing = _users_by_email(data["staff_involved"])
        if missing:
            form.add_error("staff_involved", _("Unknown: %(emails)s") % {"emails": ", ".join(missing)})
        if not form.errors:
            try:
                complaint = services.complaint_log(
                    actor=request.user, client=client, complainant_name=data["complainant_name"], complainant_contact=data["complainant_contact"],
                    channel=data["channel"], received_at=data["received_at"], subject=data["subject"], details=data["details"], staff_involved=staff,
                )
            except PortalError as exc:
                _fail(request, exc, form)
            else:
                messages.success(request, _("Complaint %(ref)s logged.") % {"ref": complaint.reference})
                if request.user.has_perm(Perm.COMPLAINT_HANDLE):
                    return redirect("reporting:complaint", pk=complaint.pk)
                return redirect("reporting:complaint-new")
    return render(request, "reporting/complaint_new.html", {"form": form, "policy": policy})


@staff_required(Perm.COMPLAINT_HANDLE)
def complaint_detail(request, pk: int):
    try:
        complaint = selectors.complaint(complaint_id=pk)
    except Complaint.DoesNotExist:
        raise Http404 from None
    close_form = CloseComplaintForm(request.POST if request.POST.get("action") == "close" else None)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "assign":
                assignee = User.objects.filter(pk=id_input(request.POST.get("assignee"), "assignee")).first()
                if assignee is None:
                    raise PortalError("validation_error", _("Choose who handles the complaint."))
                services.complaint_assign(actor=request.user, complaint_id=pk, assignee=assignee)
            elif action == "acknowledge":
                services.complaint_acknowledge(actor=request.user, complaint_id=pk, text=request.POST.get("text", ""))
            elif action == "escalate":
                services.complaint_escalate(actor=request.user, complaint_id=pk, reason=request.POST.get("reason", ""))
            elif action == "close":
                services.complaint_close(actor=request.user, complaint_id=pk, outcome=request.POST.get("outcome", ""), text=request.POST.get("text", ""))
            messages.success(request, _("Complaint updated."))
            return redirect("reporting:complaint", pk=pk)
        except PortalError as exc:
            _fail(request, exc, close_form if action == "close" else None)
    from portal.selectors import audit_history

    involved = services.complaint_involved_ids(complaint)
    handlers = [u for u in selectors.complaint_handlers() if u.pk not in involved]
    return render(request, "reporting/complaint.html", {
        "complaint": complaint, "handlers": handlers, "close_form": close_form, "now": timezone.now(),
        "history": list(audit_history(obj=complaint)[:50]), "involved_me": request.user.pk in involved,
    })


# --- Complaints (client) --------------------------------------------------------------------------------------


@client_required
def my_complaints(request):
    form = ClientComplaintForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            complaint = services.complaint_log(actor=request.user, **form.cleaned_data)
        except PortalError as exc:
            _fail(request, exc, form)
        else:
            messages.success(request, _("Your complaint %(ref)s was received. We will acknowledge it by %(date)s.") % {
                "ref": complaint.reference, "date": timezone.localtime(complaint.acknowledge_due).strftime("%Y-%m-%d")})
            return redirect("reporting:my-complaint", pk=complaint.pk)
    return render(request, "reporting/my_complaints.html", {"form": form, "complaints": list(selectors.complaints(client=request.user)[:50])})


@client_required
def my_complaint(request, pk: int):
    complaint = selectors.complaints(client=request.user).filter(pk=pk).first()
    if complaint is None:
        raise Http404
    return render(request, "reporting/my_complaint.html", {"complaint": complaint})


# --- Record requests -----------------------------------------------------------------------------------------


@staff_required(Perm.RECORD_REQUEST)
def record_requests(request):
    form = RecordRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        client = User.objects.filter(email=form.cleaned_data["client_email"].lower()).first()
        try:
            made = services.record_request_create(actor=request.user, client=client, basis=form.cleaned_data["basis"],
                                                  reference=form.cleaned_data["reference"])
        except PortalError as exc:
            _fail(request, exc, form)
        else:
            messages.success(request, _("Archive ready: %(files)s files, manifest SHA-256 %(sha)s.") % {"files": made.files, "sha": made.manifest_sha256})
            return redirect("reporting:record-requests")
    return render(request, "reporting/record_requests.html", {"form": form, "page": _page(request, selectors.record_requests())})


@staff_required(Perm.RECORD_REQUEST)
def record_request_download(request, pk: int):
    try:
        made = services.record_request_download(actor=request.user, request_id=pk)
    except PortalError:
        raise Http404 from None
    response = private_file_response(bytes(made.archive), content_type="application/zip", filename=f"client-{made.client_id}-records-REQ-{made.pk}.zip")
    response["X-Content-SHA256"] = made.archive_sha256
    return response


# --- Retention --------------------------------------------------------------------------------------------------


@staff_required(Perm.REPORT_VIEW)
def retention_report(request):
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "request":
                services.disposal_request(actor=request.user, record_type=request.POST.get("record_type", ""), reason=request.POST.get("reason", ""))
                messages.success(request, _("Disposal requested; a second person must approve it."))
            elif action in ("approve", "reject"):
                fn = services.disposal_approve if action == "approve" else services.disposal_reject
                fn(actor=request.user, request_id=id_input(request.POST.get("request"), "request"), note=request.POST.get("note", ""))
                messages.success(request, _("Disposal request decided."))
        except PortalError as exc:
            _fail(request, exc)
        return redirect("reporting:retention")
    today = timezone.localdate()
    return render(request, "reporting/retention.html", {
        "rows": retention.due_report(as_of=today), "today": today, "categories": retention.CATEGORY_LABELS,
        "requests": list(selectors.disposal_requests()[:50]), "requested": DisposalState.REQUESTED,
    })


# --- Related-client groups -----------------------------------------------------------------------------------


@staff_required(Perm.RISK_VIEW)
def client_groups(request):
    form = ClientGroupForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm(Perm.CLIENT_GROUP_PROPOSE):
            raise PermissionDenied
        if form.is_valid():
            try:
                group = services.client_group_create(actor=request.user, **form.cleaned_data)
            except PortalError as exc:
                _fail(request, exc, form)
            else:
                messages.success(request, _("Group %(ref)s recorded; add its members.") % {"ref": group.reference})
                return redirect("reporting:group", pk=group.pk)
    q = request.GET.get("q", "")
    return render(request, "reporting/groups.html", {
        "form": form, "page": _page(request, selectors.client_groups(search=q)), "q": q, "query": _query(request),
    })


@staff_required(Perm.RISK_VIEW)
def client_group(request, pk: int):
    try:
        group = selectors.client_group(group_id=pk)
    except RelatedClientGroup.DoesNotExist:
        raise Http404 from None
    form = GroupMemberForm(request.POST if request.POST.get("action") == "propose" else None)
    if request.method == "POST":
        action, note = request.POST.get("action"), request.POST.get("note", "")
        try:
            membership_id = id_input(request.POST.get("membership"), "membership") if action != "propose" else None
            if action == "propose":
                if form.is_valid():
                    data = form.cleaned_data
                    client = User.objects.filter(email=data["client_email"].lower()).first()
                    services.client_group_member_propose(actor=request.user, group_id=pk, client=client, relationship=data["relationship"],
                                                         reason=data["reason"], effective_from=data["effective_from"])
                    messages.success(request, _("Membership proposed; a second person must approve it."))
                    return redirect("reporting:group", pk=pk)
            elif action in ("approve", "reject"):
                services.client_group_member_decide(actor=request.user, membership_id=membership_id, approve=action == "approve", note=note)
                messages.success(request, _("Membership decided."))
                return redirect("reporting:group", pk=pk)
            elif action == "end":
                end_on = checked_date(request.POST.get("end_on", ""))
                services.client_group_member_end_propose(actor=request.user, membership_id=membership_id, end_on=end_on, reason=note)
                messages.success(request, _("End of membership proposed; a second person must approve it."))
                return redirect("reporting:group", pk=pk)
            elif action in ("end_approve", "end_reject"):
                services.client_group_member_end_decide(actor=request.user, membership_id=membership_id, approve=action == "end_approve", note=note)
                messages.success(request, _("End of membership decided."))
                return redirect("reporting:group", pk=pk)
        except PortalError as exc:
            _fail(request, exc, form if action == "propose" else None)
    memberships = list(selectors.group_memberships(group_id=pk))
    history = list(selectors.group_history(group=group, membership_ids=[m.pk for m in memberships])[:100])
    figures = selectors.group_live_figures(client_ids=[m.client_id for m in memberships if m.state == "active"])
    for m in memberships:
        m.live = figures["per_client"].get(m.client_id) if m.state == "active" else None
    return render(request, "reporting/group.html", {
        "group": group, "memberships": memberships, "form": form, "history": history, "figures": figures, "today": timezone.localdate(),
    })


@staff_required(Perm.RISK_VIEW)
def membership_record(request, pk: int):
    """An audit row about a membership links here: the membership's group page."""
    membership = selectors.group_memberships().filter(pk=pk).first()
    if membership is None:
        raise Http404
    return redirect(f"{reverse('reporting:group', args=[membership.group_id])}#membership-{pk}")


@staff_required(Perm.CAPITAL_VIEW)
def capital_entry_record(request, pk: int):
    """An audit row about a capital entry links here: the capital page, at the entry."""
    if not selectors.capital_entries().filter(pk=pk).exists():
        raise Http404
    return redirect(f"{reverse('reporting:capital')}#entry-{pk}")


@staff_required(Perm.RECORD_REQUEST)
def record_request_record(request, pk: int):
    """An audit row about a record request links here: the register, at the request (no download)."""
    if not selectors.record_requests().filter(pk=pk).exists():
        raise Http404
    return redirect(f"{reverse('reporting:record-requests')}#request-{pk}")


@staff_required(Perm.REPORT_VIEW)
def disposal_record(request, pk: int):
    """An audit row about a disposal request links here: the retention page, at the request."""
    if not selectors.disposal_requests().filter(pk=pk).exists():
        raise Http404
    return redirect(f"{reverse('reporting:retention')}#disposal-{pk}")


def checked_date(value: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PortalError("validation_error", _("Enter a date."), {"end_on": [_("Enter a date.")]}) from None


# --- The risk engine's stored records ----------------------------------------------------------------------------


def _linked_facilities(request, page):
    """Each row's ``facility_url``: its facility's page where the reader may open it (``portal.access``, asked once
    for the page, not per row), else ""."""
    facility_url = id_url_if_open(request.user, "lending:staff-facility")
    for row in page:
        row.facility_url = facility_url(row.facility_id) if facility_url else ""
    return page


@staff_required(Perm.RISK_VIEW)
def snapshots(request):
    form = SnapshotFilterForm(request.GET or None)
    page = _linked_facilities(request, _page(request, lists.LISTS["snapshots"].queryset(request.GET)))
    return render(request, "reporting/snapshots.html", {"form": form, "page": page, "query": _query(request)})


@staff_required(Perm.RISK_VIEW)
def band_changes(request):
    form = BandChangeFilterForm(request.GET or None)
    page = _linked_facilities(request, _page(request, lists.LISTS["band-changes"].queryset(request.GET)))
    return render(request, "reporting/band_changes.html", {"form": form, "page": page, "query": _query(request)})
