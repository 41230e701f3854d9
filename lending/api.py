"""Lending API: clients reach only their own records; staff act by named permission."""

from __future__ import annotations

from decimal import Decimal

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import IsClient, Pagination, StaffPermission, idempotent, price_output
from portal.permissions import Perm

from . import selectors, services
from .inputs import choice_param, facility_filters, queue_filters
from .models import (
    Asset,
    CollateralKind,
    CollateralPolicy,
    DeclineReason,
    Facility,
    FacilityApplication,
    FacilityTransaction,
    Price,
    ReviewStep,
    WatchListCategory,
    WatchListEntry,
    client_decline_reasons,
)

# --- shared serializers -------------------------------------------------------------------


class InstrumentCodeField(serializers.CharField):
    """In: an instrument code; out: the line's instrument by its code."""

    def to_representation(self, value):
        return getattr(value, "code", None) or super().to_representation(value)


class LineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CollateralKind.choices)
    instrument = InstrumentCodeField(required=False, allow_blank=True, max_length=12, help_text="Instrument code of a holding (e.g. 00700, BTC)")
    asset = serializers.ChoiceField(choices=Asset.choices, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    haircut_class = serializers.CharField(required=False, allow_blank=True, max_length=8)
    # Any number here: lending.services bounds each line (the asset's supply, the HKD columns) with a clear, per-line error.
    market_value = serializers.DecimalField(max_digits=None, decimal_places=None, required=False, allow_null=True)
    quantity = serializers.DecimalField(max_digits=None, decimal_places=None, required=False, allow_null=True)
    custody_reference = serializers.CharField(required=False, allow_blank=True, max_length=100)


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReviewStep
        fields = ["code", "position", "status", "outcome", "reasons", "reason_codes", "inputs", "result", "attempts", "started_at", "finished_at", "duration_ms"]


class ClientDeclineReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    text = serializers.CharField()


class ApplicationSerializer(serializers.ModelSerializer):
    """The client's view: no review recommendation, no internal note, decline reasons from the vetted
    client-facing list (never the internal codes), nothing about name screening."""

    reference = serializers.CharField(read_only=True)
    lines = LineSerializer(many=True, read_only=True)
    policy_version = serializers.IntegerField(source="policy.version", read_only=True, default=None)
    decline_reasons = serializers.SerializerMethodField()

    class Meta:
        model = FacilityApplication
        fields = [
            "id", "reference", "state", "requested_limit", "purpose", "lines", "created_at", "submitted_at", "review_run",
            "review_completed_at", "policy_version", "market_value", "lending_value", "va_share",
            "approved_limit", "conditions", "decline_reasons", "questions", "client_response",
            "letter_text", "letter_sha256",
        ]

    @extend_schema_field(ClientDeclineReasonSerializer(many=True))
    def get_decline_reasons(self, obj) -> list[dict]:
        return client_decline_reasons(obj.decline_reasons)


class StaffApplicationSerializer(ApplicationSerializer):
    client_email = serializers.EmailField(source="client.email", read_only=True)
    client_name = serializers.CharField(source="client.full_name", read_only=True)
    decision_policy_version = serializers.IntegerField(source="decision_policy.version", read_only=True, default=None, allow_null=True)
    decline_reasons = serializers.ListField(child=serializers.ChoiceField(choices=DeclineReason.choices), read_only=True)

    class Meta(ApplicationSerializer.Meta):
        fields = [*ApplicationSerializer.Meta.fields, "client_email", "client_name", "score", "recommendation", "recommended_limit",
                  "recommendation_reasons", "decided_by", "decided_at", "second_approver", "second_decided_at", "second_approval_reasons",
                  "decision_policy_version", "decision_note", "screening_status", "screening_decided_by", "screening_decided_at", "screening_note"]


class QueueRowSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    client_email = serializers.EmailField(source="client.email", read_only=True)

    class Meta:
        model = FacilityApplication
        fields = ["id", "reference", "state", "client_email", "requested_limit", "recommended_limit", "recommendation", "submitted_at", "lending_value"]


class PositionSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The position a release request names (position_id)")
    kind = serializers.CharField()
    instrument = serializers.CharField(source="instrument.code", default=None, help_text="BTC, ETH or an HKEX stock code; null for a line booked before the instrument master")
    asset = serializers.CharField()
    description = serializers.CharField()
    haircut_class = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=8, allow_null=True)
    price = price_output(default=None, help_text="The current reference price it is valued at (null: a line valued at its recorded market value)")
    market_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    haircut = serializers.DecimalField(max_digits=7, decimal_places=4)
    lending_value = serializers.DecimalField(max_digits=18, decimal_places=2, default=None,
                                             help_text="Market value less the haircut, before the facility's VA cap")
    custody_reference = serializers.CharField()


class FacilitySerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    available = serializers.DecimalField(max_digits=18, decimal_places=2, read_only=True)
    positions = PositionSerializer(many=True, read_only=True)

    class Meta:
        model = Facility
        fields = ["id", "reference", "state", "limit", "drawn_balance", "available", "market_value", "va_market_value", "lending_value",
                  "utilisation", "band", "valued_at", "valued_policy_version", "has_open_margin_call", "conditions", "opened_at", "accepted_at", "letter_sha256", "positions"]


def _facility_now(facility) -> dict:
    """A facility and its positions valued at the current prices, as its page shows them (``facility_valued_now``),
    not the figures the engine stored when its band last changed."""
    selectors.facility_valued_now(facility=facility)
    return FacilitySerializer(facility).data


class FacilityRowSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    available = serializers.DecimalField(max_digits=18, decimal_places=2, read_only=True)
    client_email = serializers.EmailField(source="client.email", read_only=True)

    class Meta:
        model = Facility
        fields = ["id", "reference", "client_email", "state", "limit", "drawn_balance", "available", "lending_value", "utilisation", "band"]


class TransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = FacilityTransaction
        fields = ["id", "kind", "amount", "balance_after", "reference", "created_at"]


class PriceSerializer(serializers.ModelSerializer):
    asset = serializers.CharField(help_text="BTC, ETH or an HKEX stock code (5 digits)")
    price_hkd = price_output(read_only=True)

    class Meta:
        model = Price
        fields = ["id", "asset", "price_hkd", "source", "as_of"]


class MarginableListSerializer(serializers.Serializer):
    """A version's collateral-book numbers (ratios, HKD, days) and its marginable list: haircut by instrument code."""

    suspended_haircut = serializers.DecimalField(max_digits=7, decimal_places=4)
    instrument_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    issuer_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    sector_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    firm_instrument_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    firm_issuer_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    firm_sector_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
    firm_concentration_min_book = serializers.DecimalField(max_digits=18, decimal_places=2)
    limit_rounding_unit = serializers.DecimalField(max_digits=18, decimal_places=2)
    securities_price_max_age_days = serializers.IntegerField()
    entries = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField(child=serializers.DecimalField(max_digits=7, decimal_places=4)))
    def get_entries(self, listed) -> dict:
        return {e.instrument.code: str(e.haircut) for e in sorted(listed.entries.all(), key=lambda e: e.instrument.code)}


class MarginableInputSerializer(serializers.Serializer):
    """A proposal's collateral-book part: what it leaves out is copied from the version in force; ``entries``, when
    given, is the whole marginable list (haircut by instrument code; 1 = not marginable; BTC/ETH at least 0.60)."""

    suspended_haircut = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    instrument_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    issuer_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    sector_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    firm_instrument_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    firm_issuer_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    firm_sector_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4, required=False)
    firm_concentration_min_book = serializers.DecimalField(max_digits=18, decimal_places=2, required=False)
    limit_rounding_unit = serializers.DecimalField(max_digits=18, decimal_places=2, required=False)
    securities_price_max_age_days = serializers.IntegerField(required=False)
    entries = serializers.DictField(child=serializers.DecimalField(max_digits=7, decimal_places=4), required=False)


class PolicySerializer(serializers.ModelSerializer):
    marginable = MarginableListSerializer(read_only=True, allow_null=True)

    class Meta:
        model = CollateralPolicy
        fields = ["id", "version", "status", *CollateralPolicy.NUMBERS, "marginable", "reason", "proposed_by", "proposed_at", "decided_by",
                  "decided_at", "decision_note"]


class WatchListSerializer(serializers.ModelSerializer):
    class Meta:
        model = WatchListEntry
        fields = ["id", "name", "aliases", "category", "note", "active", "created_at"]


def _page(view, request, qs, serializer_class):
    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _get_or_404(fn, **kwargs):
    try:
        return fn(**kwargs)
    except (FacilityApplication.DoesNotExist, Facility.DoesNotExist):
        raise Http404 from None


# --- client: applications --------------------------------------------------------------------


class ApplicationListCreateApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        requested_limit = serializers.DecimalField(max_digits=18, decimal_places=2)
        purpose = serializers.CharField(max_length=2000)
        lines = LineSerializer(many=True)

    @extend_schema(responses=ApplicationSerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.applications_for_client(user=request.user).prefetch_related("lines").select_related("policy"), ApplicationSerializer)

    @extend_schema(request=InputSerializer, responses={201: ApplicationSerializer})
    @idempotent("lending.application.create")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app = services.application_create(user=request.user, **data.validated_data)
        app = selectors.application_for_client(user=request.user, application_id=app.pk)
        return Response(ApplicationSerializer(app).data, status=status.HTTP_201_CREATED)


class ApplicationDetailApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        requested_limit = serializers.DecimalField(max_digits=18, decimal_places=2, required=False)
        purpose = serializers.CharField(max_length=2000, required=False)
        lines = LineSerializer(many=True, required=False)

    @extend_schema(responses=ApplicationSerializer)
    def get(self, request, pk):
        return Response(ApplicationSerializer(_get_or_404(selectors.application_for_client, user=request.user, application_id=pk)).data)

    @extend_schema(request=InputSerializer, responses=ApplicationSerializer)
    def patch(self, request, pk):
        _get_or_404(selectors.application_for_client, user=request.user, application_id=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_update(user=request.user, application_id=pk, **data.validated_data)
        return Response(ApplicationSerializer(selectors.application_for_client(user=request.user, application_id=pk)).data)


class ApplicationSubmitApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        confirm_terms = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses=ApplicationSerializer)
    def post(self, request, pk):
        _get_or_404(selectors.application_for_client, user=request.user, application_id=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_submit(user=request.user, application_id=pk, confirm_terms=data.validated_data["confirm_terms"])
        return Response(ApplicationSerializer(selectors.application_for_client(user=request.user, application_id=pk)).data)


class ApplicationWithdrawApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=None, responses=ApplicationSerializer)
    def post(self, request, pk):
        _get_or_404(selectors.application_for_client, user=request.user, application_id=pk)
        services.application_withdraw(user=request.user, application_id=pk)
        return Response(ApplicationSerializer(selectors.application_for_client(user=request.user, application_id=pk)).data)


class ApplicationRespondApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        response = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses=ApplicationSerializer)
    def post(self, request, pk):
        _get_or_404(selectors.application_for_client, user=request.user, application_id=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_respond(user=request.user, application_id=pk, response=data.validated_data["response"])
        return Response(ApplicationSerializer(selectors.application_for_client(user=request.user, application_id=pk)).data)


class ApplicationAcceptApi(APIView):
    """Accept the facility letter: send back the SHA-256 of the letter text you read."""

    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        letter_sha256 = serializers.CharField(max_length=64)

    @extend_schema(request=InputSerializer, responses={201: FacilitySerializer})
    @idempotent("lending.application.accept")
    def post(self, request, pk):
        _get_or_404(selectors.application_for_client, user=request.user, application_id=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        facility = services.application_accept(user=request.user, application_id=pk, letter_sha256=data.validated_data["letter_sha256"])
        return Response(_facility_now(selectors.facility_for_client(user=request.user, facility_id=facility.pk)), status=201)


class ProgressOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    state_label = serializers.CharField()
    review_finished = serializers.BooleanField()
    steps = serializers.ListField(child=serializers.DictField())


class ApplicationProgressApi(APIView):
    """The review steps' progress, polled by the application page (two queries)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=ProgressOutputSerializer)
    def get(self, request, pk):
        user = request.user
        staff = user.is_portal_staff and user.has_perm(Perm.APPLICATION_DECIDE)
        try:
            if staff:
                return Response(selectors.application_progress(application_id=pk))
            if not user.is_client:
                return Response({"error": {"code": "permission_denied", "message": "Not allowed.", "fields": {}}}, status=403)
            return Response(selectors.application_progress(application_id=pk, user=user))
        except FacilityApplication.DoesNotExist:
            raise Http404 from None


class PreviewApi(APIView):
    """Lending value of collateral lines at current prices and the policy in force. Writes nothing."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        lines = LineSerializer(many=True)

    class OutputSerializer(serializers.Serializer):
        class LineOutputSerializer(serializers.Serializer):
            label = serializers.CharField()
            market_value = serializers.DecimalField(max_digits=20, decimal_places=2)
            haircut = serializers.DecimalField(max_digits=6, decimal_places=4)
            lending_value = serializers.DecimalField(max_digits=20, decimal_places=2)
            price = price_output(allow_null=True)

        market_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        securities_market_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        securities_lending_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        va_market_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        va_lending_value_uncapped = serializers.DecimalField(max_digits=20, decimal_places=2)
        va_lending_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        va_capped = serializers.BooleanField()
        va_share = serializers.DecimalField(max_digits=8, decimal_places=4)
        lending_value = serializers.DecimalField(max_digits=20, decimal_places=2)
        problems = serializers.ListField(child=serializers.CharField())
        lines = LineOutputSerializer(many=True)
        policy_version = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.preview_valuation(user=request.user, lines=data.validated_data["lines"]))


# --- client: facilities, prices, policy ------------------------------------------------------


class FacilityListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [IsClient]

    @extend_schema(responses=FacilitySerializer(many=True))
    def get(self, request):
        # Valued at the current prices, as the facility page is (the stored valuation changes only with the band).
        qs = selectors.facilities_for_client(user=request.user, with_positions=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        for facility in page:
            selectors.facility_valued_now(facility=facility)
        return paginator.get_paginated_response(FacilitySerializer(page, many=True).data)


class FacilityDetailApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=FacilitySerializer)
    def get(self, request, pk):
        return Response(_facility_now(_get_or_404(selectors.facility_for_client, user=request.user, facility_id=pk)))


class CurrentPricesApi(APIView):
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        asset = serializers.CharField()
        price_hkd = price_output()
        source = serializers.CharField()
        as_of = serializers.DateTimeField()
        fresh = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        policy = selectors.policy_current()
        quotes = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes if policy else None)
        return Response(self.OutputSerializer(list(quotes.values()), many=True).data)


class HoldingsApi(APIView):
    """The client's holdings in the margin and custody accounts, as the application form offers them to pledge: held,
    pledged (to any facility), free, the current price and the haircut of the policy in force."""

    permission_classes = [IsClient]

    class OutputSerializer(serializers.Serializer):
        instrument = serializers.CharField(source="code", help_text="HKEX stock code, BTC or ETH: what an application line or top-up names")
        name = serializers.CharField(help_text="In the reader's language")
        kind = serializers.CharField()
        held = serializers.DecimalField(max_digits=24, decimal_places=8)
        pledged = serializers.DecimalField(max_digits=24, decimal_places=8)
        free = serializers.DecimalField(max_digits=24, decimal_places=8)
        price = price_output(allow_null=True)
        fresh = serializers.BooleanField(help_text="False: no price, or older than the policy allows")
        haircut = serializers.DecimalField(max_digits=7, decimal_places=4, help_text="1.0000: not marginable")
        free_lending_value = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.holdings_of(request.user))

    @classmethod
    def holdings_of(cls, client) -> list:
        policy = selectors.policy_current()
        if policy is None:
            return []
        quotes = selectors.prices_current(max_age_minutes=policy.price_max_age_minutes)
        return cls.OutputSerializer(selectors.holdings_to_pledge(user=client, policy=policy, quotes=quotes), many=True).data


class StaffHoldingsApi(APIView):
    """A client's holdings as the client reads them (``HoldingsApi``), for the officer servicing the client's facilities."""

    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=HoldingsApi.OutputSerializer(many=True))
    def get(self, request, user_id):
        client = selectors.client_by_id(user_id=user_id)
        if client is None:
            raise Http404
        return Response(HoldingsApi.holdings_of(client))


class CurrentPolicyApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=PolicySerializer)
    def get(self, request):
        policy = selectors.policy_current()
        if policy is None:
            raise Http404
        return Response(PolicySerializer(policy).data)


# --- staff: queue and decisions ---------------------------------------------------------------


class StaffQueueApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.APPLICATION_DECIDE

    @extend_schema(responses=QueueRowSerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.application_queue(**queue_filters(request.query_params)), QueueRowSerializer)


class StaffApplicationApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.APPLICATION_DECIDE

    class OutputSerializer(StaffApplicationSerializer):
        steps = serializers.SerializerMethodField()

        class Meta(StaffApplicationSerializer.Meta):
            fields = [*StaffApplicationSerializer.Meta.fields, "steps"]

        @extend_schema_field(StepSerializer(many=True))
        def get_steps(self, obj):
            return StepSerializer(selectors.application_steps(application=obj), many=True).data

    @extend_schema(responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(_get_or_404(selectors.application_for_staff, application_id=pk)).data)


def _staff_app(pk):
    return StaffApplicationSerializer(selectors.application_for_staff(application_id=pk)).data


class StaffApproveApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.APPLICATION_DECIDE

    class InputSerializer(serializers.Serializer):
        limit = serializers.DecimalField(max_digits=18, decimal_places=2)
        conditions = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    @extend_schema(request=InputSerializer, responses=StaffApplicationSerializer)
    @idempotent("lending.application.approve")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_approve(actor=request.user, application_id=pk, **data.validated_data)
        return Response(_staff_app(pk))


class SecondApproverPermission(StaffPermission):
    message = services.SECOND_APPROVAL_NEEDS_A_CREDIT_MANAGER


class StaffSecondApproveApi(APIView):
    permission_classes = [SecondApproverPermission]
    required_perm = Perm.APPLICATION_SECOND_APPROVE

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    @extend_schema(request=InputSerializer, responses=StaffApplicationSerializer)
    @idempotent("lending.application.second_approve")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_second_approve(actor=request.user, application_id=pk, **data.validated_data)
        return Response(_staff_app(pk))


class StaffDeclineApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.APPLICATION_DECIDE

    class InputSerializer(serializers.Serializer):
        reason_codes = serializers.ListField(child=serializers.ChoiceField(choices=DeclineReason.choices), min_length=1)
        note = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    @extend_schema(request=InputSerializer, responses=StaffApplicationSerializer)
    @idempotent("lending.application.decline")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_decline(actor=request.user, application_id=pk, **data.validated_data)
        return Response(_staff_app(pk))


class StaffReturnApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.APPLICATION_DECIDE

    class InputSerializer(serializers.Serializer):
        questions = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses=StaffApplicationSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_return(actor=request.user, application_id=pk, **data.validated_data)
        return Response(_staff_app(pk))


# --- staff: facilities -------------------------------------------------------------------------


class StaffFacilityListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=FacilityRowSerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.facilities_for_staff(**facility_filters(request.query_params)), FacilityRowSerializer)


class StaffFacilityApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=FacilitySerializer)
    def get(self, request, pk):
        return Response(_facility_now(_get_or_404(selectors.facility_for_staff, facility_id=pk)))


class _MoneyInput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=18, decimal_places=2)
    reference = serializers.CharField(required=False, allow_blank=True, max_length=100)


class StaffDrawdownApi(APIView):
    """Record a drawdown (send an Idempotency-Key: a retried request never draws twice)."""

    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE
    InputSerializer = _MoneyInput

    @extend_schema(request=_MoneyInput, responses={201: TransactionSerializer})
    @idempotent("lending.facility.drawdown")
    def post(self, request, pk):
        data = _MoneyInput(data=request.data)
        data.is_valid(raise_exception=True)
        txn = services.facility_drawdown(actor=request.user, facility_id=pk, **data.validated_data)
        return Response(TransactionSerializer(txn).data, status=201)


class StaffRepaymentApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE
    InputSerializer = _MoneyInput

    @extend_schema(request=_MoneyInput, responses={201: TransactionSerializer})
    @idempotent("lending.facility.repayment")
    def post(self, request, pk):
        data = _MoneyInput(data=request.data)
        data.is_valid(raise_exception=True)
        txn = services.facility_repay(actor=request.user, facility_id=pk, **data.validated_data)
        return Response(TransactionSerializer(txn).data, status=201)


class StaffSuspendApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_SUSPEND

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=InputSerializer, responses=FacilitySerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.facility_suspend(actor=request.user, facility_id=pk, reason=data.validated_data["reason"])
        return Response(FacilitySerializer(selectors.facility_for_staff(facility_id=pk)).data)


class StaffReinstateApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_SUSPEND

    @extend_schema(request=None, responses=FacilitySerializer)
    def post(self, request, pk):
        services.facility_reinstate(actor=request.user, facility_id=pk)
        return Response(FacilitySerializer(selectors.facility_for_staff(facility_id=pk)).data)


class StaffCloseApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_SUSPEND

    @extend_schema(request=None, responses=FacilitySerializer)
    def post(self, request, pk):
        from lending.servicing.lifecycle import facility_wind_up

        facility_wind_up(actor=request.user, facility_id=pk)  # every pledge released, then closed
        return Response(FacilitySerializer(selectors.facility_for_staff(facility_id=pk)).data)


class ScreeningHitSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    client_email = serializers.EmailField(source="client.email", read_only=True)
    client_name = serializers.CharField(source="client.full_name", read_only=True)
    hits = serializers.SerializerMethodField()

    class Meta:
        model = FacilityApplication
        fields = ["id", "reference", "state", "client_email", "client_name", "review_completed_at", "screening_status",
                  "screening_decided_by", "screening_decided_at", "screening_note", "hits"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_hits(self, obj) -> list[dict]:
        step = self.context.get("steps", {}).get(obj.pk)
        return (step.result or {}).get("hits", []) if step else []


class StaffScreeningListApi(APIView):
    """Applications whose name screening found a possible match (status=pending|cleared|confirmed), for compliance."""

    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.SCREENING_REVIEW

    @extend_schema(responses=ScreeningHitSerializer(many=True))
    def get(self, request):
        status_ = choice_param(request.query_params, "status", choices=("pending", "cleared", "confirmed"), default="pending")
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.screening_hits(status=status_), request, view=self)
        data = ScreeningHitSerializer(page, many=True, context={"steps": selectors.screening_steps(applications=page)}).data
        return paginator.get_paginated_response(data)


class StaffScreeningDecideApi(APIView):
    """Compliance clears a possible match (not the listed person) or confirms it (the application can then only be declined)."""

    permission_classes = [StaffPermission]
    required_perm = Perm.SCREENING_REVIEW

    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=[("cleared", "cleared"), ("confirmed", "confirmed")])
        note = serializers.CharField(max_length=5000)

    @extend_schema(request=InputSerializer, responses=ScreeningHitSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        application = services.application_screening_decide(actor=request.user, application_id=pk, confirmed=data.validated_data["outcome"] == "confirmed",
                                                             note=data.validated_data["note"])
        return Response(ScreeningHitSerializer(application, context={"steps": selectors.screening_steps(applications=[application])}).data)


# --- staff: prices, policy, watch list ------------------------------------------------------------


class QuoteOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField(source="source.code")
    asset = serializers.CharField()
    price_hkd = price_output()
    as_of = serializers.DateTimeField()


class StaffPriceApi(APIView):
    """Reference-price history; a POST records a quote from a named desk or file source, which counts in
    the risk engine's governed median like any other source (it never sets the reference by itself)."""
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)

    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE

    class InputSerializer(serializers.Serializer):
        asset = serializers.CharField(max_length=12, help_text="BTC, ETH or an HKEX stock code (5 digits)")
        price_hkd = serializers.DecimalField(max_digits=20, decimal_places=3, min_value=Decimal("0.001"))
        source = serializers.CharField(max_length=40)
        as_of = serializers.DateTimeField(required=False)

    @extend_schema(responses=PriceSerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.price_history(asset=choice_param(request.query_params, "asset", choices=Asset.values)), PriceSerializer)

    @extend_schema(request=InputSerializer, responses={201: QuoteOutputSerializer})
    @idempotent("lending.price.enter")
    def post(self, request):
        from lending.risk import services as risk_services

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        quote = risk_services.quote_record(actor=request.user, source_code=d["source"], asset=d["asset"], price_hkd=d["price_hkd"], as_of=d.get("as_of"))
        return Response(QuoteOutputSerializer(quote).data, status=201)


class StaffPriceLoadApi(APIView):
    """Load quotes from CSV text (source,asset,price_hkd,as_of) or a JSON list in `content`; one bad row loads nothing."""

    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE

    class InputSerializer(serializers.Serializer):
        content = serializers.CharField(max_length=2_000_000)
        format = serializers.ChoiceField(choices=["", "csv", "json"], required=False, default="")

    class OutputSerializer(serializers.Serializer):
        loaded = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    @idempotent("lending.price.load")
    def post(self, request):
        from lending.risk import services as risk_services

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = risk_services.quotes_parse(content=data.validated_data["content"], fmt=data.validated_data["format"])
        return Response({"loaded": len(risk_services.quotes_record(actor=request.user, rows=rows, strict=True, label="api"))}, status=201)


class StaffPolicyListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.POLICY_PROPOSE

    class InputSerializer(serializers.Serializer):
        btc_haircut = serializers.DecimalField(max_digits=7, decimal_places=4)
        eth_haircut = serializers.DecimalField(max_digits=7, decimal_places=4)
        securities_haircuts = serializers.DictField(child=serializers.DecimalField(max_digits=7, decimal_places=4))
        va_max_share = serializers.DecimalField(max_digits=7, decimal_places=4)
        price_max_age_minutes = serializers.IntegerField()
        officer_authority_default = serializers.DecimalField(max_digits=18, decimal_places=2)
        watch_level = serializers.DecimalField(max_digits=7, decimal_places=4)
        warning_levels = serializers.ListField(child=serializers.DecimalField(max_digits=7, decimal_places=4), required=False, max_length=4)
        margin_call_level = serializers.DecimalField(max_digits=7, decimal_places=4)
        close_out_level = serializers.DecimalField(max_digits=7, decimal_places=4)
        cure_days = serializers.IntegerField()
        client_exposure_limit = serializers.DecimalField(max_digits=18, decimal_places=2)
        firm_exposure_limit = serializers.DecimalField(max_digits=18, decimal_places=2)
        client_concentration_max = serializers.DecimalField(max_digits=7, decimal_places=4)
        marginable = MarginableInputSerializer(required=False)
        reason = serializers.CharField(max_length=5000)

    @extend_schema(responses=PolicySerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.policies().select_related("marginable").prefetch_related("marginable__entries__instrument"),
                     PolicySerializer)

    @extend_schema(request=InputSerializer, responses={201: PolicySerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        numbers = dict(data.validated_data)
        reason = numbers.pop("reason")
        return Response(PolicySerializer(services.policy_propose(actor=request.user, numbers=numbers, reason=reason)).data, status=201)


class StaffPolicyDecideApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.POLICY_APPROVE
    approve = True

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    @extend_schema(request=InputSerializer, responses=PolicySerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fn = services.policy_approve if self.approve else services.policy_reject
        try:
            return Response(PolicySerializer(fn(actor=request.user, policy_id=pk, note=data.validated_data.get("note", ""))).data)
        except CollateralPolicy.DoesNotExist:
            raise Http404 from None


class StaffPolicyRejectApi(StaffPolicyDecideApi):
    approve = False


class StaffWatchListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.WATCHLIST_MANAGE

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        aliases = serializers.CharField(required=False, allow_blank=True, max_length=5000)
        category = serializers.ChoiceField(choices=WatchListCategory.choices, required=False, default=WatchListCategory.SANCTIONS)
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(responses=WatchListSerializer(many=True))
    def get(self, request):
        return _page(self, request, selectors.watchlist(include_inactive=True), WatchListSerializer)

    @extend_schema(request=InputSerializer, responses={201: WatchListSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(WatchListSerializer(services.watchlist_add(actor=request.user, **data.validated_data)).data, status=201)


class StaffWatchListDeactivateApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.WATCHLIST_MANAGE

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(request=InputSerializer, responses=WatchListSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            return Response(WatchListSerializer(services.watchlist_deactivate(actor=request.user, entry_id=pk, **data.validated_data)).data)
        except WatchListEntry.DoesNotExist:
            raise Http404 from None
