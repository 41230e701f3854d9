"""Reads for the reporting pages: registers, the risk engine's stored records, who is involved with a client.

Other apps are read through their models read-only; nothing here writes.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db.models import Q, QuerySet

from lending.models import PolicyStatus
from lending.risk.models import BandChange, ValuationSnapshot

from .models import (
    CapitalEntry,
    Complaint,
    ComplaintState,
    Deviation,
    DisposalRequest,
    GroupMembership,
    MembershipState,
    RecordRequest,
    RelatedClientGroup,
    SmfPack,
)

# --- Capital ---------------------------------------------------------------------------------------------


def capital_entries() -> QuerySet[CapitalEntry]:
    return CapitalEntry.objects.select_related("proposed_by", "decided_by").order_by("-as_of", "-version")


def capital_at(*, day: date) -> CapitalEntry | None:
    """The approved liquid capital in force on ``day``: the latest approved entry dated on or before it.

    Superseded entries count for the dates before their successor, so a past pack re-derives exactly.
    """
    return (
        CapitalEntry.objects.filter(status__in=[PolicyStatus.APPROVED, PolicyStatus.SUPERSEDED], as_of__lte=day)
        .select_related("proposed_by", "decided_by")
        .order_by("-as_of", "-version")
        .first()
    )


def total_margin_loans() -> Decimal:
    """Today's total drawn balance across open facilities (the live figure; packs use the stored snapshots)."""
    from django.db.models import Sum

    from lending.models import Facility, FacilityState

    return Facility.objects.exclude(state=FacilityState.CLOSED).aggregate(s=Sum("drawn_balance"))["s"] or Decimal("0")


def loans_to_capital(*, total_loans: Decimal, capital: CapitalEntry | None) -> dict:
    """Total margin loans as a multiple of liquid capital, against the entry's ceiling.

    At exactly the ceiling the firm is within it; one cent above, it is not.
    """
    if capital is None:
        return {"capital": None, "multiple": None, "ceiling": None, "within": None, "headroom": None}
    multiple = (total_loans / capital.liquid_capital).quantize(Decimal("0.0001"))
    limit = capital.liquid_capital * capital.ceiling_multiple
    return {
        "capital": capital.liquid_capital,
        "multiple": multiple,
        "ceiling": capital.ceiling_multiple,
        "within": total_loans <= limit,
        "headroom": (limit - total_loans).quantize(Decimal("0.01")),
    }


# --- Registers -------------------------------------------------------------------------------------------


def deviations(*, state: str = "") -> QuerySet[Deviation]:
    qs = Deviation.objects.select_related("proposed_by", "decided_by", "retired_by")
    return qs.filter(state=state) if state else qs


def deviation(*, deviation_id: int) -> Deviation:
    return deviations().get(pk=deviation_id)


def complaints(*, state: str = "", search: str = "", client=None) -> QuerySet[Complaint]:
    qs = Complaint.objects.select_related("client", "assigned_to", "logged_by", "closed_by")
    if client is not None:
        qs = qs.filter(client=client)
    if state == "active":
        qs = qs.exclude(state=ComplaintState.CLOSED)
    elif state:
        qs = qs.filter(state=state)
    if search:
        term = search.strip()
        if term.upper().startswith("CMP-") and term[4:].isdigit():
            qs = qs.filter(pk=int(term[4:]))
        else:
            qs = qs.filter(Q(subject__icontains=term) | Q(complainant_name__icontains=term) | Q(client__email__icontains=term))
    return qs.order_by("-received_at", "-id")


def complaint(*, complaint_id: int) -> Complaint:
    return Complaint.objects.select_related("client", "assigned_to", "logged_by", "closed_by").prefetch_related("staff_involved").get(pk=complaint_id)


def complaint_counts() -> dict[str, int]:
    from django.db.models import Count

    return {r["state"]: r["n"] for r in Complaint.objects.values("state").annotate(n=Count("id"))}


def staff_involved_ids(*, client_id: int | None) -> set[int]:
    """Staff who acted in the client's matters: decided their applications or onboarding, recorded their
    money movements, proposed or resolved their margin calls. A complaint is never handled by them."""
    if client_id is None:
        return set()
    from lending.models import FacilityApplication, FacilityTransaction
    from lending.risk.models import MarginCall
    from onboarding.models import PIAttestation, SuitabilityAssessment

    ids: set[int] = set()
    for row in FacilityApplication.objects.filter(client_id=client_id).values_list("decided_by_id", "second_approver_id"):
        ids.update(row)
    for row in MarginCall.objects.filter(client_id=client_id).values_list("proposed_by_id", "resolved_by_id"):
        ids.update(row)
    ids.update(FacilityTransaction.objects.filter(facility__client_id=client_id).values_list("recorded_by_id", flat=True).distinct())
    ids.update(PIAttestation.objects.filter(client_id=client_id).values_list("decided_by_id", flat=True))
    ids.update(SuitabilityAssessment.objects.filter(client_id=client_id).values_list("reviewed_by_id", flat=True))
    ids.discard(None)
    return ids


def complaint_handlers():
    """Staff who may handle complaints (compliance), for the assignment form."""
    from portal.models import User
    from portal.permissions import ROLE_PERMISSIONS, Perm

    roles = [r.value for r, perms in ROLE_PERMISSIONS.items() if Perm.COMPLAINT_HANDLE in perms]
    return User.objects.filter(groups__name__in=roles, is_active=True).distinct().order_by("full_name", "email")


def record_requests() -> QuerySet[RecordRequest]:
    return RecordRequest.objects.select_related("client", "requested_by").defer("archive").order_by("-requested_at", "-id")


def record_request(*, request_id: int) -> RecordRequest:
    return RecordRequest.objects.select_related("client", "requested_by").get(pk=request_id)


def disposal_requests() -> QuerySet[DisposalRequest]:
    return DisposalRequest.objects.select_related("requested_by", "decided_by").order_by("-requested_at", "-id")


# --- Related-client groups ------------------------------------------------------------------------------


def client_groups(*, search: str = "") -> QuerySet[RelatedClientGroup]:
    """Groups with their live member count (in force, and awaiting approval), for the register."""
    from django.db.models import Count

    qs = RelatedClientGroup.objects.select_related("created_by").annotate(
        members=Count("memberships", filter=Q(memberships__state=MembershipState.ACTIVE), distinct=True),
        pending=Count("memberships", filter=Q(memberships__state=MembershipState.PROPOSED) | Q(memberships__end_proposed_at__isnull=False,
                                                                                            memberships__state=MembershipState.ACTIVE), distinct=True),
    )
    if search:
        term = search.strip()
        qs = qs.filter(Q(name__icontains=term) | Q(memberships__client__email__icontains=term) | Q(memberships__client__full_name__icontains=term)).distinct()
    return qs.order_by("name", "id")


def client_group(*, group_id: int) -> RelatedClientGroup:
    return RelatedClientGroup.objects.select_related("created_by").get(pk=group_id)


def group_memberships(*, group_id: int | None = None, client_id: int | None = None) -> QuerySet[GroupMembership]:
    qs = GroupMembership.objects.select_related("group", "client", "proposed_by", "decided_by", "end_proposed_by", "end_decided_by")
    if group_id is not None:
        qs = qs.filter(group_id=group_id)
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    return qs.order_by("group__name", "state", "effective_from", "id")


def group_history(*, group: RelatedClientGroup, membership_ids: list[int]):
    """The audit rows of a group and of its memberships, newest first (one query)."""
    from portal.models import AuditEvent

    return AuditEvent.objects.filter(
        Q(object_type=RelatedClientGroup._meta.label_lower, object_id=str(group.pk))
        | Q(object_type=GroupMembership._meta.label_lower, object_id__in=[str(i) for i in membership_ids])
    ).order_by("-id")


def group_live_figures(*, client_ids: list[int]) -> dict:
    """Today's drawn balance, limits and lending value of the members in force, per client and in total,
    from the open facilities (the live figures; packs use the stored snapshots)."""
    from django.db.models import Count, Sum

    from lending.models import Facility, FacilityState

    zero = Decimal("0")
    if not client_ids:
        return {"per_client": {}, "drawn": zero, "limits": zero, "lending_value": zero, "facilities": 0}
    rows = (Facility.objects.exclude(state=FacilityState.CLOSED).filter(client_id__in=client_ids).values("client_id")
            .annotate(drawn=Sum("drawn_balance"), limits=Sum("limit"), lending_value=Sum("lending_value"), facilities=Count("id")))
    per_client = {r["client_id"]: r for r in rows}
    return {
        "per_client": per_client,
        "drawn": sum((r["drawn"] for r in per_client.values()), zero),
        "limits": sum((r["limits"] for r in per_client.values()), zero),
        "lending_value": sum((r["lending_value"] for r in per_client.values()), zero),
        "facilities": sum(r["facilities"] for r in per_client.values()),
    }


def client_groups_for(*, client_id: int) -> list[GroupMembership]:
    """The client's memberships (in force, awaiting approval, or ended), for the client's staff record."""
    return list(group_memberships(client_id=client_id).exclude(state=MembershipState.REJECTED))


def memberships_at(*, day: date) -> list[GroupMembership]:
    """Memberships in force on ``day`` as the register stood at the end of it (HKT): approved by then, in
    effect on or before it, and not ended by an approval made by then with a leaving date on or before it.
    A past pack therefore re-derives exactly, whatever was recorded later."""
    from datetime import datetime, time

    from lending.risk.revaluation import HK

    end = datetime.combine(day, time.max, tzinfo=HK)
    ended = Q(state=MembershipState.ENDED, end_decided_at__lte=end, end_on__lte=day)
    return list(
        GroupMembership.objects.filter(state__in=[MembershipState.ACTIVE, MembershipState.ENDED], decided_at__lte=end, effective_from__lte=day)
        .exclude(ended).select_related("group", "client").order_by("group_id", "client_id")
    )


# --- SMF packs ------------------------------------------------------------------------------------------


def packs() -> QuerySet[SmfPack]:
    return SmfPack.objects.select_related("generated_by").defer("xlsx", "pdf", "data").order_by("-as_of", "-version")


def pack(*, pack_id: int) -> SmfPack:
    return SmfPack.objects.select_related("generated_by").defer("xlsx", "pdf").get(pk=pack_id)


def pack_file(*, pack_id: int, fmt: str):
    field = {"xlsx": "xlsx", "pdf": "pdf"}[fmt]
    return SmfPack.objects.only("id", "as_of", "version", field, f"{field}_sha256").get(pk=pack_id)


# --- The risk engine's stored records ----------------------------------------------------------------


def valuation_snapshots(
    *, day_from: date | None = None, day_to: date | None = None, collateral_type: str = "", band: str = "",
    search: str = "", facility_id: int | None = None,
) -> QuerySet[ValuationSnapshot]:
    qs = ValuationSnapshot.objects.select_related("client")
    if day_from:
        qs = qs.filter(day__gte=day_from)
    if day_to:
        qs = qs.filter(day__lte=day_to)
    if collateral_type:
        qs = qs.filter(collateral_type=collateral_type)
    if band:
        qs = qs.filter(band=band)
    if facility_id:
        qs = qs.filter(facility_id=facility_id)
    if search:
        qs = qs.filter(Q(client__email__icontains=search) | Q(client__full_name__icontains=search))
    return qs.order_by("-day", "facility_id", "collateral_type")


def band_changes(
    *, since: date | None = None, until: date | None = None, to_band: str = "", search: str = "", facility_id: int | None = None,
) -> QuerySet[BandChange]:
    qs = BandChange.objects.select_related("client")
    if since:
        qs = qs.filter(at__date__gte=since)
    if until:
        qs = qs.filter(at__date__lte=until)
    if to_band:
        qs = qs.filter(to_band=to_band)
    if facility_id:
        qs = qs.filter(facility_id=facility_id)
    if search:
        qs = qs.filter(Q(client__email__icontains=search) | Q(client__full_name__icontains=search))
    return qs.order_by("-at", "-id")
