"""The staff lists that export as CSV/XLSX: for each, who may export it, how its page's query string
maps onto the list's own selector (the same filters the page applies), and its columns.

Each list page links to ``reporting:export`` with its current query string, so an export holds exactly
the rows the page shows, unpaginated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils import translation
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from portal.exports import columns
from portal.permissions import Perm


@dataclass(frozen=True)
class ExportList:
    perm: Perm
    queryset: Callable  # (query dict) -> QuerySet
    columns: Callable  # () -> list[Column]
    basename: str
    sheet: object


def _ref(prefix: str):
    return lambda pk: f"{prefix}{pk}"


def _facility(pk) -> str:
    return f"FAC-{pk:06d}"


def _named(name_of: Callable):
    """A column's stored code as its page names it: ``name_of`` is the page's own naming (a template filter, a
    model field's choices), so the sheet and the page never say it two ways. In the language of the reader who
    asked for the export (the rows are written after the view returns), each code named once per export."""
    language = translation.get_language()
    names: dict = {}

    def name(code):
        shown = names.get(code)
        if shown is None:
            with translation.override(language):
                shown = names[code] = str(name_of(code))
        return shown

    return name


def _band(code):
    from lending.risk.templatetags.risk_tags import band_label

    return band_label(code)


def _display(model: str, field: str) -> Callable:
    """A code as the page's ``get_<field>_display`` names it: by the model field's choices (``model`` is
    "app_label.Model"). An unknown code is shown as it is."""

    def name_of(code):
        from django.apps import apps

        return dict(apps.get_model(model)._meta.get_field(field).flatchoices).get(code, code)

    return name_of


_collateral_type = _display("risk.ValuationSnapshot", "collateral_type")


def _yes_no(value) -> str:
    return gettext("Yes") if value else gettext("No")


def _queue_state(code):
    """As the credit queue names an application's state (staff words, not the client's)."""
    from lending.models import STAFF_QUEUE_LABELS

    return STAFF_QUEUE_LABELS.get(code, code)


def _call_code(code):
    """A margin call's escalation reason or how it was met, as the call's page words it."""
    from lending.risk.templatetags.risk_tags import call_code_label

    return call_code_label(code)


# --- applications (lending:queue) ------------------------------------------------------------------------


def _applications(q):
    from lending import selectors
    from lending.inputs import queue_filters

    return selectors.application_queue(**queue_filters(q))


def _application_columns():
    return columns(
        (_("Application"), "pk", _ref("APP-")), (_("Client email"), "client.email"), (_("Client name"), "client.full_name"),
        (_("State"), "state", _named(_queue_state)), (_("Requested limit (HKD)"), "requested_limit"), (_("Submitted"), "submitted_at"),
        (_("Recommendation"), "recommendation", _named(_display("lending.FacilityApplication", "recommendation"))),
        (_("Recommended limit (HKD)"), "recommended_limit"), (_("Score"), "score"),
        (_("Lending value (HKD)"), "lending_value"), (_("VA share"), "va_share"), (_("Approved limit (HKD)"), "approved_limit"),
        (_("Decided by"), "decided_by.email"), (_("Decided"), "decided_at"),
    )


# --- facilities (lending:staff-facilities) -----------------------------------------------------------------


def _facilities(q):
    from lending import selectors
    from lending.inputs import facility_filters

    return selectors.facilities_for_staff(**facility_filters(q))


def _facility_columns():
    return columns(
        (_("Facility"), "pk", _facility), (_("Client email"), "client.email"), (_("Client name"), "client.full_name"),
        (_("State"), "state", _named(_display("lending.Facility", "state"))), (_("Limit (HKD)"), "limit"), (_("Drawn (HKD)"), "drawn_balance"),
        (_("Market value (HKD)"), "market_value"), (_("VA market value (HKD)"), "va_market_value"),
        (_("Lending value (HKD)"), "lending_value"), (_("Utilisation"), "utilisation"),
        (_("Band"), "band", _named(_display("lending.Facility", "band"))), (_("Valued at"), "valued_at"), (_("Open margin call"), "has_open_margin_call", _named(_yes_no)), (_("Opened"), "opened_at"),
        (_("Closed"), "closed_at"),
    )


# --- margin calls (risk:calls) --------------------------------------------------------------------------------


def _calls(q):
    from lending.inputs import call_filters
    from lending.risk import selectors

    return selectors.margin_calls(**call_filters(q, default_state="open_all"))


def _call_columns():
    return columns(
        (_("Margin call"), "pk", _ref("MC-")), (_("Facility"), "facility_id", _facility),
        (_("Client email"), "client.email"), (_("State"), "state", _named(_display("risk.MarginCall", "state"))),
        (_("Opened"), "opened_at"), (_("Cure deadline"), "cure_deadline"),
        (_("Shortfall at opening (HKD)"), "shortfall_at_open"), (_("Shortfall now (HKD)"), "shortfall"),
        (_("Utilisation at opening"), "utilisation_at_open"), (_("Utilisation"), "utilisation"), (_("Breaches"), "breaches"),
        (_("Escalated"), "escalated_at"), (_("Escalation reason"), "escalation_reason", _named(_call_code)),
        (pgettext_lazy("margin call", "Met"), "met_at"), (_("Met by"), "met_by", _named(_call_code)),
        (_("Resolution proposed"), "proposed_resolution", _named(_display("risk.MarginCall", "proposed_resolution"))),
        (_("Proposed by"), "proposed_by.email"),
        (_("Resolved by"), "resolved_by.email"), (_("Resolved"), "resolved_at"),
    )


# --- audit trail (audit-trail) --------------------------------------------------------------------------------


def _audit(q):
    from portal import selectors
    from portal.forms import AuditFilterForm

    data = q.copy()
    data.pop("page", None)
    form = AuditFilterForm(data or None)
    if form.is_bound and not form.is_valid():
        return selectors.audit_events().none()
    return selectors.audit_events(**form.selector_filters())


def _audit_columns():
    return columns(
        ("#", "pk"), (_("Time (HKT)"), "created_at"), (_("Actor"), "actor_label"), (_("Action"), "action"),
        (_("Record type"), "object_type"), (_("Record id"), "object_id"), (_("Record"), "object_repr"),
        (_("Before"), "before"), (_("After"), "after"), (_("IP"), "ip_address"), (_("User agent"), "user_agent"),
        (_("Hash"), "hash"), (_("Previous hash"), "prev_hash"),
    )


# --- valuation snapshots and band changes (this app's pages) -----------------------------------------------


def _filtered(form_class, selector, q, rename=None):
    """The selector called with a filter form's cleaned values (no rows for an invalid filter, never all rows)."""
    data = q.copy()
    data.pop("page", None)
    form = form_class(data)
    if not form.is_valid():
        return selector().none()
    values = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
    for old, new in (rename or {}).items():
        if old in values:
            values[new] = values.pop(old)
    return selector(**values)


def _snapshots(q):
    from . import selectors
    from .forms import SnapshotFilterForm

    return _filtered(SnapshotFilterForm, selectors.valuation_snapshots, q, {"facility": "facility_id"})


def _snapshot_columns():
    return columns(
        (_("Day"), "day"), (_("Facility"), "facility_id", _facility), (_("Client email"), "client.email"),
        (_("Collateral"), "collateral_type", _named(_collateral_type)), (_("Quantity"), "quantity"), (_("Price (HKD)"), "price_hkd"),
        (_("Market value (HKD)"), "market_value"), (_("Lending value (HKD)"), "lending_value"),
        (_("Drawn (HKD)"), "drawn_balance"), (_("Utilisation"), "utilisation"), (_("Band"), "band", _named(_band)), (_("Recorded"), "created_at"),
    )


def _band_changes(q):
    from . import selectors
    from .forms import BandChangeFilterForm

    return _filtered(BandChangeFilterForm, selectors.band_changes, q, {"facility": "facility_id"})


def _band_change_columns():
    return columns(
        (_("Time (HKT)"), "at"), (_("Facility"), "facility_id", _facility), (_("Client email"), "client.email"),
        (_("From band"), "from_band", _named(_band)), (_("To band"), "to_band", _named(_band)), (_("Drawn (HKD)"), "drawn_balance"),
        (_("Market value (HKD)"), "market_value"), (_("VA market value (HKD)"), "va_market_value"),
        (_("Lending value (HKD)"), "lending_value"), (_("Utilisation"), "utilisation"), (_("Revaluation run"), "run_id"),
    )


# --- complaints (this app) ------------------------------------------------------------------------------------


def _complaints(q):
    from . import selectors

    return selectors.complaints(state=q.get("state", ""), search=q.get("q", ""))


def _complaint_columns():
    return columns(
        (_("Complaint"), "pk", _ref("CMP-")), (_("Received"), "received_at"), (_("Channel"), "channel", _named(_display("reporting.Complaint", "channel"))),
        (_("Complainant"), "complainant_name"), (_("Client email"), "client.email"),
        (_("Subject"), "subject"), (_("State"), "state", _named(_display("reporting.Complaint", "state"))), (_("Assigned to"), "assigned_to.email"),
        (_("Acknowledge by"), "acknowledge_due"), (_("Acknowledged"), "acknowledged_at"), (_("Answer by"), "answer_due"),
        (_("Escalated"), "escalated_at"), (_("Closed"), "closed_at"), (_("Outcome"), "outcome", _named(_display("reporting.Complaint", "outcome"))),
    )


# --- related-client groups (this app) ----------------------------------------------------------------------


def _group_members(q):
    from django.db.models import Q

    from . import selectors

    qs = selectors.group_memberships()
    term = (q.get("q") or "").strip()
    if term:
        qs = qs.filter(Q(group__name__icontains=term) | Q(client__email__icontains=term) | Q(client__full_name__icontains=term))
    return qs


def _group_member_columns():
    return columns(
        (_("Group"), "group_id", _ref("GRP-")), (_("Group name"), "group.name"), (_("Basis"), "group.basis", _named(_display("reporting.RelatedClientGroup", "basis"))),
        (_("Client email"), "client.email"), (_("Client name"), "client.full_name"), (_("Relationship"), "relationship"),
        (_("Reason"), "reason"), (_("In the group from"), "effective_from"),
        (_("State"), "state", _named(_display("reporting.GroupMembership", "state"))), (_("Left on"), "end_on"),
        (_("Proposed by"), "proposed_by.email"), (_("Proposed"), "proposed_at"), (_("Approved by"), "decided_by.email"),
        (_("Decided"), "decided_at"), (_("End proposed by"), "end_proposed_by.email"), (_("End approved by"), "end_decided_by.email"),
        (_("End approved"), "end_decided_at"),
    )


LISTS: dict[str, ExportList] = {
    "applications": ExportList(Perm.APPLICATION_DECIDE, _applications, _application_columns, "applications", _("Applications")),
    "facilities": ExportList(Perm.FACILITY_OPERATE, _facilities, _facility_columns, "facilities", _("Facilities")),
    "margin-calls": ExportList(Perm.MARGIN_CALL_MANAGE, _calls, _call_columns, "margin-calls", _("Margin calls")),
    "audit": ExportList(Perm.AUDIT_VIEW, _audit, _audit_columns, "audit-trail", _("Audit trail")),
    "snapshots": ExportList(Perm.RISK_VIEW, _snapshots, _snapshot_columns, "valuation-snapshots", _("Valuation snapshots")),
    "band-changes": ExportList(Perm.RISK_VIEW, _band_changes, _band_change_columns, "band-changes", _("Band changes")),
    "complaints": ExportList(Perm.COMPLAINT_HANDLE, _complaints, _complaint_columns, "complaints", _("Complaints")),
    "group-members": ExportList(Perm.RISK_VIEW, _group_members, _group_member_columns, "related-client-groups", _("Related-client groups")),
}
