"""Reporting API: the compliance registers (complaints, deviations, capital, related-client groups, record
requests), the retention report and the stored SMF packs. Staff by named permission, one view per
operation; a client reaches only their own complaints. Every write goes through ``services``.

Files (a pack's PDF/XLSX, a record archive) are not inlined: each row links to the download the pages use,
which is where the download is audited and served with its SHA-256.
"""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lending.inputs import choice_param
from portal.api_base import IsClient, Pagination, StaffPermission, idempotent
from portal.errors import PortalError
from portal.models import User
from portal.permissions import Perm

from . import policy, retention, selectors, services
from .models import (
    CapitalEntry,
    Complaint,
    ComplaintChannel,
    ComplaintOutcome,
    ComplaintState,
    ControlArea,
    Deviation,
    DeviationState,
    GroupBasis,
    GroupMembership,
    RecordRequest,
    RelatedClientGroup,
    SmfPack,
)

MONEY = {"max_digits": 18, "decimal_places": 2}


def _page(view, request, qs, serializer_class):
    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _client_by_email(email: str, field: str = "client_email"):
    user = User.objects.filter(email=(email or "").strip().lower()).first()
    if user is None or not user.is_client:
        raise PortalError("validation_error", _("No client has this email."), {field: [_("No client has this email.")]})
    return user


def _get(fn, model, **kwargs):
    try:
        return fn(**kwargs)
    except model.DoesNotExist:
        raise Http404 from None


class EmailField(serializers.EmailField):
    """A user shown by email (null when unset)."""

    def to_representation(self, value):
        return getattr(value, "email", None)


# --- Complaints -----------------------------------------------------------------------------------------


class ClientComplaintSerializer(serializers.ModelSerializer):
    """What the complainant sees: their complaint, its deadlines, the acknowledgement and the answer."""

    reference = serializers.CharField(read_only=True)

    class Meta:
        model = Complaint
        fields = ["id", "reference", "channel", "received_at", "subject", "details", "state", "acknowledge_due", "answer_due",
                  "acknowledged_at", "acknowledgement_text", "escalated_at", "closed_at", "outcome", "outcome_text"]


class ComplaintSerializer(ClientComplaintSerializer):
    client_email = EmailField(source="client", read_only=True, allow_null=True)
    logged_by = EmailField(read_only=True)
    assigned_to = EmailField(read_only=True, allow_null=True)
    closed_by = EmailField(read_only=True, allow_null=True)
    staff_involved = serializers.SerializerMethodField()
    acknowledge_overdue = serializers.SerializerMethodField()
    answer_overdue = serializers.SerializerMethodField()

    class Meta(ClientComplaintSerializer.Meta):
        fields = [*ClientComplaintSerializer.Meta.fields, "client", "client_email", "complainant_name", "complainant_contact", "logged_by",
                  "logged_at", "staff_involved", "assigned_to", "assigned_at", "escalation_reason", "closed_by",
                  "acknowledge_overdue", "answer_overdue"]

    @extend_schema_field(serializers.ListField(child=serializers.EmailField()))
    def get_staff_involved(self, obj) -> list[str]:
        return sorted(u.email for u in obj.staff_involved.all())

    def get_acknowledge_overdue(self, obj) -> bool:
        return obj.acknowledged_at is None and obj.state != ComplaintState.CLOSED and obj.acknowledge_due < timezone.now()

    def get_answer_overdue(self, obj) -> bool:
        return obj.state != ComplaintState.CLOSED and obj.answer_due < timezone.now()


def _complaint(pk: int) -> Complaint:
    return _get(selectors.complaint, Complaint, complaint_id=pk)


class ComplaintListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.COMPLAINT_HANDLE

    @extend_schema(responses=ComplaintSerializer(many=True),
                   summary="The complaints register (state=active|open|acknowledged|escalated|closed; q=subject, complainant or CMP-n)")
    def get(self, request):
        state = choice_param(request.query_params, "state", choices=("active", *ComplaintState.values)) or ""
        qs = selectors.complaints(state=state, search=request.query_params.get("q", "")).prefetch_related("staff_involved")
        return _page(self, request, qs, ComplaintSerializer)


class ComplaintLogApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.COMPLAINT_LOG

    class InputSerializer(serializers.Serializer):
        client_email = serializers.EmailField(required=False, allow_blank=True, default="")
        complainant_name = serializers.CharField(max_length=200)
        complainant_contact = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        channel = serializers.ChoiceField(choices=[c for c in ComplaintChannel.choices if c[0] != ComplaintChannel.PORTAL])
        received_at = serializers.DateTimeField(help_text="When the complaint reached the firm (deadlines count HK business days from it)")
        subject = serializers.CharField(max_length=200)
        details = serializers.CharField(max_length=20000)
        staff_involved = serializers.ListField(child=serializers.EmailField(), required=False, default=list,
                                               help_text="Staff the complaint is about or who acted in the matter: never its handler")

    @extend_schema(request=InputSerializer, responses={201: ComplaintSerializer}, summary="Log a complaint received by any channel")
    @idempotent("reporting.complaint.log")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        client = _client_by_email(d["client_email"]) if d["client_email"] else None
        wanted = sorted({e.lower() for e in d["staff_involved"]})
        staff = list(User.objects.filter(email__in=wanted))
        missing = sorted(set(wanted) - {u.email for u in staff})
        if missing:
            message = _("Unknown: %(emails)s") % {"emails": ", ".join(missing)}
            raise PortalError("validation_error", message, {"staff_involved": [message]})
        complaint = services.complaint_log(actor=request.user, client=client, complainant_name=d["complainant_name"],
                                           complainant_contact=d["complainant_contact"], channel=d["channel"], received_at=d["received_at"],
                                           subject=d["subject"], details=d["details"], staff_involved=staff)
        return Response(ComplaintSerializer(_complaint(complaint.pk)).data, status=status.HTTP_201_CREATED)


class ComplaintDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.COMPLAINT_HANDLE

    @extend_schema(responses=ComplaintSerializer, summary="One complaint")
    def get(self, request, pk: int):
        return Response(ComplaintSerializer(_complaint(pk)).data)


class _ComplaintActionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.COMPLAINT_HANDLE

    def act(self, request, pk, data):  # pragma: no cover - overridden
        raise NotImplementedError

    def handle(self, request, pk):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.act(request, pk, serializer.validated_data)
        return Response(ComplaintSerializer(_complaint(pk)).data)


class ComplaintAssignApi(_ComplaintActionApi):
    class InputSerializer(serializers.Serializer):
        assignee_email = serializers.EmailField(help_text="A compliance officer not involved in the matter")

    @extend_schema(request=InputSerializer, responses=ComplaintSerializer, summary="Assign the complaint to a handler not involved in it")
    def post(self, request, pk: int):
        return self.handle(request, pk)

    def act(self, request, pk, data):
        assignee = User.objects.filter(email=data["assignee_email"].lower()).first()
        if assignee is None:
            message = _("No member of staff has this email.")
            raise PortalError("validation_error", message, {"assignee_email": [message]})
        services.complaint_assign(actor=request.user, complaint_id=pk, assignee=assignee)


class ComplaintAcknowledgeApi(_ComplaintActionApi):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=20000, help_text="The acknowledgement sent to the complainant")

    @extend_schema(request=InputSerializer, responses=ComplaintSerializer, summary="Record the acknowledgement (the assigned handler)")
    def post(self, request, pk: int):
        return self.handle(request, pk)

    def act(self, request, pk, data):
        services.complaint_acknowledge(actor=request.user, complaint_id=pk, text=data["text"])


class ComplaintEscalateApi(_ComplaintActionApi):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses=ComplaintSerializer, summary="Escalate the complaint")
    def post(self, request, pk: int):
        return self.handle(request, pk)

    def act(self, request, pk, data):
        services.complaint_escalate(actor=request.user, complaint_id=pk, reason=data["reason"])


class ComplaintCloseApi(_ComplaintActionApi):
    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=ComplaintOutcome.choices)
        text = serializers.CharField(max_length=20000, help_text="The answer given to the complainant")

    @extend_schema(request=InputSerializer, responses=ComplaintSerializer, summary="Close the complaint with its outcome and answer")
    def post(self, request, pk: int):
        return self.handle(request, pk)

    def act(self, request, pk, data):
        services.complaint_close(actor=request.user, complaint_id=pk, outcome=data["outcome"], text=data["text"])


class MyComplaintListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        subject = serializers.CharField(max_length=200)
        details = serializers.CharField(max_length=20000)

    @extend_schema(responses=ClientComplaintSerializer(many=True), summary="My complaints")
    def get(self, request):
        return _page(self, request, selectors.complaints(client=request.user), ClientComplaintSerializer)

    @extend_schema(request=InputSerializer, responses={201: ClientComplaintSerializer}, summary="Make a complaint from the portal")
    @idempotent("reporting.complaint.client_log")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        complaint = services.complaint_log(actor=request.user, **serializer.validated_data)
        return Response(ClientComplaintSerializer(complaint).data, status=status.HTTP_201_CREATED)


class MyComplaintDetailApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=ClientComplaintSerializer, summary="One of my complaints")
    def get(self, request, pk: int):
        complaint = selectors.complaints(client=request.user).filter(pk=pk).first()
        if complaint is None:
            raise Http404
        return Response(ClientComplaintSerializer(complaint).data)


# --- Deviations -----------------------------------------------------------------------------------------


class DeviationSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    proposed_by = EmailField(read_only=True)
    decided_by = EmailField(read_only=True, allow_null=True)
    retired_by = EmailField(read_only=True, allow_null=True)

    class Meta:
        model = Deviation
        fields = ["id", "reference", "area", "benchmark", "departure", "justification", "compensating_control", "review_date", "state",
                  "proposed_by", "proposed_at", "decided_by", "decided_at", "decision_note", "retired_by", "retired_at", "retire_reason"]


class DeviationListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.REPORT_VIEW

    @extend_schema(responses=DeviationSerializer(many=True), summary="The deviations register (state=proposed|approved|rejected|retired)")
    def get(self, request):
        state = choice_param(request.query_params, "state", choices=DeviationState.values) or ""
        return _page(self, request, selectors.deviations(state=state), DeviationSerializer)


class DeviationProposeApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.DEVIATION_PROPOSE

    class InputSerializer(serializers.Serializer):
        area = serializers.ChoiceField(choices=ControlArea.choices)
        benchmark = serializers.CharField(max_length=300)
        departure = serializers.CharField(max_length=20000)
        justification = serializers.CharField(max_length=20000)
        compensating_control = serializers.CharField(max_length=20000)
        review_date = serializers.DateField()

    @extend_schema(request=InputSerializer, responses={201: DeviationSerializer}, summary="Record a departure from an SMF benchmark (maker)")
    @idempotent("reporting.deviation.propose")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deviation = services.deviation_propose(actor=request.user, **serializer.validated_data)
        return Response(DeviationSerializer(selectors.deviation(deviation_id=deviation.pk)).data, status=status.HTTP_201_CREATED)


class DeviationDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.REPORT_VIEW

    @extend_schema(responses=DeviationSerializer, summary="One deviation")
    def get(self, request, pk: int):
        return Response(DeviationSerializer(_get(selectors.deviation, Deviation, deviation_id=pk)).data)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, help_text="Required: why")


class _DeviationActionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.DEVIATION_APPROVE
    InputSerializer = NoteSerializer
    service = None

    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.act(request, pk, serializer.validated_data["note"])
        return Response(DeviationSerializer(selectors.deviation(deviation_id=pk)).data)


class DeviationApproveApi(_DeviationActionApi):
    @extend_schema(request=NoteSerializer, responses=DeviationSerializer, summary="Approve a deviation (a second person)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, note):
        services.deviation_approve(actor=request.user, deviation_id=pk, note=note)


class DeviationRejectApi(_DeviationActionApi):
    InputSerializer = ReasonSerializer

    @extend_schema(request=ReasonSerializer, responses=DeviationSerializer, summary="Reject a deviation (a second person)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, note):
        services.deviation_reject(actor=request.user, deviation_id=pk, note=note)


class DeviationRetireApi(_DeviationActionApi):
    InputSerializer = ReasonSerializer

    @extend_schema(request=ReasonSerializer, responses=DeviationSerializer, summary="Retire an approved deviation (the departure ended)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, note):
        services.deviation_retire(actor=request.user, deviation_id=pk, reason=note)


# --- Capital ---------------------------------------------------------------------------------------------


class CapitalEntrySerializer(serializers.ModelSerializer):
    proposed_by = EmailField(read_only=True)
    decided_by = EmailField(read_only=True, allow_null=True)

    class Meta:
        model = CapitalEntry
        fields = ["id", "version", "status", "as_of", "liquid_capital", "ceiling_multiple", "source_reference", "reason",
                  "proposed_by", "proposed_at", "decided_by", "decided_at", "decision_note"]


class CapitalViewSerializer(serializers.Serializer):
    """Today's total margin loans against the liquid capital in force."""

    in_force = CapitalEntrySerializer(allow_null=True)
    total_margin_loans = serializers.DecimalField(**MONEY)
    multiple = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    ceiling = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True)
    benchmark = serializers.DecimalField(max_digits=6, decimal_places=2)
    within_ceiling = serializers.BooleanField(allow_null=True)
    headroom = serializers.DecimalField(**MONEY, allow_null=True)


class CapitalListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.CAPITAL_VIEW

    @extend_schema(responses=CapitalEntrySerializer(many=True), summary="Liquid-capital entries, newest first")
    def get(self, request):
        return _page(self, request, selectors.capital_entries(), CapitalEntrySerializer)


class CapitalProposeApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CAPITAL_PROPOSE

    class InputSerializer(serializers.Serializer):
        as_of = serializers.DateField()
        liquid_capital = serializers.DecimalField(**MONEY, min_value=0)
        ceiling_multiple = serializers.DecimalField(max_digits=6, decimal_places=2, required=False, default=policy.LOANS_TO_CAPITAL_BENCHMARK)
        source_reference = serializers.CharField(max_length=200)
        reason = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses={201: CapitalEntrySerializer}, summary="Enter finance's liquid capital (maker; a compliance officer approves)")
    @idempotent("reporting.capital.propose")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = services.capital_propose(actor=request.user, **serializer.validated_data)
        return Response(CapitalEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class CapitalViewApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CAPITAL_VIEW

    @extend_schema(responses=CapitalViewSerializer, summary="Today's total margin loans as a multiple of the liquid capital in force")
    def get(self, request):
        in_force = selectors.capital_at(day=timezone.localdate())
        drawn = selectors.total_margin_loans()
        view = selectors.loans_to_capital(total_loans=drawn, capital=in_force)
        return Response(CapitalViewSerializer({
            "in_force": in_force, "total_margin_loans": drawn, "multiple": view["multiple"], "ceiling": view["ceiling"],
            "benchmark": policy.LOANS_TO_CAPITAL_BENCHMARK, "within_ceiling": view["within"], "headroom": view["headroom"],
        }).data)


class _CapitalDecideApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CAPITAL_APPROVE
    InputSerializer = NoteSerializer

    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = self.act(request, pk, serializer.validated_data["note"])
        return Response(CapitalEntrySerializer(entry).data)


class CapitalApproveApi(_CapitalDecideApi):
    @extend_schema(request=NoteSerializer, responses=CapitalEntrySerializer, summary="Approve a capital entry (checker, not the maker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, note):
        return services.capital_approve(actor=request.user, entry_id=pk, note=note)


class CapitalRejectApi(_CapitalDecideApi):
    InputSerializer = ReasonSerializer

    @extend_schema(request=ReasonSerializer, responses=CapitalEntrySerializer, summary="Reject a capital entry (checker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, note):
        return services.capital_reject(actor=request.user, entry_id=pk, note=note)


# --- Related-client groups --------------------------------------------------------------------------------


class MembershipSerializer(serializers.ModelSerializer):
    group_reference = serializers.CharField(source="group.reference", read_only=True)
    client_email = serializers.EmailField(source="client.email", read_only=True)
    client_name = serializers.CharField(source="client.full_name", read_only=True)
    proposed_by = EmailField(read_only=True)
    decided_by = EmailField(read_only=True, allow_null=True)
    end_proposed_by = EmailField(read_only=True, allow_null=True)
    end_decided_by = EmailField(read_only=True, allow_null=True)
    end_pending = serializers.BooleanField(read_only=True)

    class Meta:
        model = GroupMembership
        fields = ["id", "group", "group_reference", "client", "client_email", "client_name", "relationship", "reason", "effective_from",
                  "state", "proposed_by", "proposed_at", "decided_by", "decided_at", "decision_note", "end_on", "end_reason",
                  "end_pending", "end_proposed_by", "end_proposed_at", "end_decided_by", "end_decided_at"]


class GroupRowSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    created_by = EmailField(read_only=True)
    members = serializers.IntegerField(read_only=True, help_text="Members in force")
    pending = serializers.IntegerField(read_only=True, help_text="Changes awaiting approval")

    class Meta:
        model = RelatedClientGroup
        fields = ["id", "reference", "name", "basis", "description", "created_by", "created_at", "members", "pending"]


class GroupFiguresSerializer(serializers.Serializer):
    facilities = serializers.IntegerField()
    drawn = serializers.DecimalField(**MONEY)
    limits = serializers.DecimalField(**MONEY)
    lending_value = serializers.DecimalField(**MONEY)


class GroupSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    created_by = EmailField(read_only=True)
    memberships = MembershipSerializer(source="memberships_list", many=True, read_only=True)
    today = GroupFiguresSerializer(source="today_figures", read_only=True, help_text="Members in force, their open facilities now")

    class Meta:
        model = RelatedClientGroup
        fields = ["id", "reference", "name", "basis", "description", "created_by", "created_at", "memberships", "today"]


def _group_out(pk: int) -> dict:
    group = _get(selectors.client_group, RelatedClientGroup, group_id=pk)
    group.memberships_list = list(selectors.group_memberships(group_id=pk))
    group.today_figures = selectors.group_live_figures(client_ids=[m.client_id for m in group.memberships_list if m.state == "active"])
    return GroupSerializer(group).data


class GroupListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    @extend_schema(responses=GroupRowSerializer(many=True), summary="Related-client groups (q=group name or a member's email or name)")
    def get(self, request):
        return _page(self, request, selectors.client_groups(search=request.query_params.get("q", "")), GroupRowSerializer)


class GroupCreateApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CLIENT_GROUP_PROPOSE

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        basis = serializers.ChoiceField(choices=GroupBasis.choices)
        description = serializers.CharField(max_length=5000, help_text="Why these clients are one risk")

    @extend_schema(request=InputSerializer, responses={201: GroupSerializer}, summary="Record a related-client group (credit manager or compliance)")
    @idempotent("reporting.client_group.create")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group = services.client_group_create(actor=request.user, **serializer.validated_data)
        return Response(_group_out(group.pk), status=status.HTTP_201_CREATED)


class GroupDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    @extend_schema(responses=GroupSerializer, summary="One group: its memberships in every state and today's figures")
    def get(self, request, pk: int):
        return Response(_group_out(pk))


class GroupMemberProposeApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CLIENT_GROUP_PROPOSE

    class InputSerializer(serializers.Serializer):
        client_email = serializers.EmailField()
        relationship = serializers.CharField(max_length=200)
        reason = serializers.CharField(max_length=5000, help_text="Evidence and reason")
        effective_from = serializers.DateField()

    @extend_schema(request=InputSerializer, responses={201: MembershipSerializer}, summary="Propose a client as a member from a date (maker)")
    @idempotent("reporting.client_group.member_propose")
    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        membership = services.client_group_member_propose(actor=request.user, group_id=pk, client=_client_by_email(d["client_email"]),
                                                          relationship=d["relationship"], reason=d["reason"], effective_from=d["effective_from"])
        return Response(MembershipSerializer(selectors.group_memberships().get(pk=membership.pk)).data, status=status.HTTP_201_CREATED)


class _MembershipActionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.CLIENT_GROUP_APPROVE
    InputSerializer = NoteSerializer

    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.act(request, pk, serializer.validated_data)
        return Response(MembershipSerializer(selectors.group_memberships().get(pk=pk)).data)


class MembershipApproveApi(_MembershipActionApi):
    @extend_schema(request=NoteSerializer, responses=MembershipSerializer, summary="Approve a proposed membership (checker, not the proposer)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        services.client_group_member_decide(actor=request.user, membership_id=pk, approve=True, note=data["note"])


class MembershipRejectApi(_MembershipActionApi):
    InputSerializer = ReasonSerializer

    @extend_schema(request=ReasonSerializer, responses=MembershipSerializer, summary="Reject a proposed membership (checker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        services.client_group_member_decide(actor=request.user, membership_id=pk, approve=False, note=data["note"])


class MembershipEndProposeApi(_MembershipActionApi):
    required_perm = Perm.CLIENT_GROUP_PROPOSE

    class InputSerializer(serializers.Serializer):
        end_on = serializers.DateField(help_text="The day the client left the group")
        reason = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses=MembershipSerializer, summary="Propose that a member left the group (maker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        services.client_group_member_end_propose(actor=request.user, membership_id=pk, end_on=data["end_on"], reason=data["reason"])


class MembershipEndApproveApi(_MembershipActionApi):
    @extend_schema(request=NoteSerializer, responses=MembershipSerializer, summary="Approve the proposed end of a membership (checker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        services.client_group_member_end_decide(actor=request.user, membership_id=pk, approve=True, note=data["note"])


class MembershipEndRejectApi(_MembershipActionApi):
    InputSerializer = ReasonSerializer

    @extend_schema(request=ReasonSerializer, responses=MembershipSerializer, summary="Reject the proposed end of a membership (checker)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        services.client_group_member_end_decide(actor=request.user, membership_id=pk, approve=False, note=data["note"])


# --- Retention -------------------------------------------------------------------------------------------


class RetentionRowSerializer(serializers.Serializer):
    record_type = serializers.CharField(help_text="app_label.model")
    name = serializers.CharField()
    category = serializers.CharField(help_text="client, collateral, margin or due_diligence")
    years = serializers.IntegerField()
    counted_from = serializers.ChoiceField(choices=["record_date", "relationship_end"])
    due = serializers.IntegerField(help_text="Records past their retention period today")
    oldest = serializers.DateTimeField(allow_null=True, help_text="The oldest record's date (rules counted from the record's date)")


class DisposalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    record_type = serializers.CharField()
    records = serializers.IntegerField()
    reason = serializers.CharField()
    state = serializers.CharField()
    requested_by = EmailField()
    requested_at = serializers.DateTimeField()
    decided_by = EmailField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField()


class RetentionReportSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    rules = RetentionRowSerializer(many=True)
    disposal_requests = DisposalSerializer(many=True, help_text="The latest 50; approval records the decision, nothing is deleted by the portal")


class RetentionReportApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.REPORT_VIEW

    @extend_schema(responses=RetentionReportSerializer, summary="Each regulated record type's retention rule and what falls due today")
    def get(self, request):
        today = timezone.localdate()
        rows = [{"record_type": r["rule"].label, "name": str(r["rule"].name), "category": r["rule"].category, "years": r["rule"].years,
                 "counted_from": "relationship_end" if r["rule"].after_relationship else "record_date", "due": r["due"],
                 "oldest": r.get("oldest")} for r in retention.due_report(as_of=today)]
        disposals = [{"id": d.pk, "record_type": d.record_type, "records": len(d.record_ids), "reason": d.reason, "state": d.state,
                      "requested_by": d.requested_by, "requested_at": d.requested_at, "decided_by": d.decided_by, "decided_at": d.decided_at,
                      "decision_note": d.decision_note} for d in selectors.disposal_requests()[:50]]
        return Response(RetentionReportSerializer({"as_of": today, "rules": rows, "disposal_requests": disposals}).data)


# --- SMF packs -------------------------------------------------------------------------------------------


class PackFilesSerializer(serializers.Serializer):
    page = serializers.CharField()
    xlsx = serializers.CharField()
    pdf = serializers.CharField(allow_null=True)


class PackRowSerializer(serializers.ModelSerializer):
    generated_by = EmailField(read_only=True, allow_null=True)
    files = serializers.SerializerMethodField()

    class Meta:
        model = SmfPack
        fields = ["id", "kind", "period_start", "as_of", "version", "generated_at", "generated_by", "data_sha256", "xlsx_sha256",
                  "pdf_sha256", "files"]

    @extend_schema_field(PackFilesSerializer)
    def get_files(self, obj) -> dict:
        return {"page": reverse("reporting:pack", args=[obj.pk]), "xlsx": reverse("reporting:pack-file", args=[obj.pk, "xlsx"]),
                "pdf": reverse("reporting:pack-file", args=[obj.pk, "pdf"]) if obj.pdf_sha256 else None}


class PackSerializer(PackRowSerializer):
    data = serializers.DictField(read_only=True, help_text="The stored figures of the seven control areas (money as decimal strings)")

    class Meta(PackRowSerializer.Meta):
        fields = [*PackRowSerializer.Meta.fields, "data"]


class PackListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.REPORT_VIEW

    class InputSerializer(serializers.Serializer):
        as_of = serializers.DateField(help_text="Any past date, or today")

    @extend_schema(responses=PackRowSerializer(many=True), summary="Stored SMF control packs, newest first, with their download links")
    def get(self, request):
        return _page(self, request, selectors.packs(), PackRowSerializer)

    @extend_schema(request=InputSerializer, responses={201: PackSerializer}, summary="Generate and store the SMF pack as at a date")
    @idempotent("reporting.pack.generate")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pack = services.smf_pack_generate(actor=request.user, as_of=serializer.validated_data["as_of"])
        return Response(PackSerializer(selectors.pack(pack_id=pack.pk)).data, status=status.HTTP_201_CREATED)


class PackDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.REPORT_VIEW

    @extend_schema(responses=PackSerializer, summary="One stored SMF pack with its figures")
    def get(self, request, pk: int):
        return Response(PackSerializer(_get(selectors.pack, SmfPack, pack_id=pk)).data)


# --- Record requests -------------------------------------------------------------------------------------


class RecordRequestSerializer(serializers.ModelSerializer):
    client_email = serializers.EmailField(source="client.email", read_only=True)
    requested_by = EmailField(read_only=True)
    download = serializers.SerializerMethodField(help_text="The archive (ZIP with a SHA-256 manifest); each download is audited")

    class Meta:
        model = RecordRequest
        fields = ["id", "client", "client_email", "basis", "reference", "requested_by", "requested_at", "files", "archive_sha256",
                  "manifest_sha256", "downloads", "download"]

    def get_download(self, obj) -> str:
        return reverse("reporting:record-request-download", args=[obj.pk])


class RecordRequestListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.RECORD_REQUEST

    class InputSerializer(serializers.Serializer):
        client_email = serializers.EmailField()
        basis = serializers.ChoiceField(choices=RecordRequest.Basis.choices)
        reference = serializers.CharField(max_length=100, help_text="The request's letter, email or ticket")

    @extend_schema(responses=RecordRequestSerializer(many=True), summary="Data-access requests answered, newest first")
    def get(self, request):
        return _page(self, request, selectors.record_requests(), RecordRequestSerializer)

    @extend_schema(request=InputSerializer, responses={201: RecordRequestSerializer},
                   summary="Build a client's record archive for a data-access request (compliance)")
    @idempotent("reporting.record_request.create")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        made = services.record_request_create(actor=request.user, client=_client_by_email(d["client_email"]), basis=d["basis"],
                                              reference=d["reference"])
        return Response(RecordRequestSerializer(selectors.record_requests().get(pk=made.pk)).data, status=status.HTTP_201_CREATED)


class RecordRequestDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.RECORD_REQUEST

    @extend_schema(responses=RecordRequestSerializer, summary="One data-access request")
    def get(self, request, pk: int):
        made = selectors.record_requests().filter(pk=pk).first()
        if made is None:
            raise Http404
        return Response(RecordRequestSerializer(made).data)
