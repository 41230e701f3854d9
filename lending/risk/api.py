"""Risk API: staff by named permission; clients see only their own facility risk and calls."""

from __future__ import annotations

from decimal import Decimal

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lending.inputs import call_filters, choice_param, page_param
from portal.api_base import IsClient, Pagination, StaffPermission, idempotent, price_output
from portal.permissions import Perm

from . import selectors, services
from .models import MarginCall, PriceAlarm, PriceOverride, PriceSource, Resolution, SourceKind, StressReport


def _page(view, request, qs, serializer_class):
    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class CallSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)

    class Meta:
        model = MarginCall
        fields = ["id", "reference", "facility", "facility_reference", "state", "opened_at", "cure_deadline", "shortfall",
                  "shortfall_at_open", "utilisation", "utilisation_at_open", "lending_value", "drawn_balance", "band",
                  "breaches", "escalated_at", "escalation_reason", "met_at", "met_by", "resolved_at", "resolution_note"]


class StaffCallSerializer(CallSerializer):
    client_email = serializers.EmailField(source="client.email", read_only=True)

    class Meta(CallSerializer.Meta):
        fields = [*CallSerializer.Meta.fields, "client_email", "proposed_resolution", "proposal_reason", "proposed_by", "proposed_at", "resolved_by"]


class FacilityRiskSerializer(serializers.Serializer):
    facility_id = serializers.IntegerField()
    securities_market_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    securities_lending_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    btc_quantity = serializers.DecimalField(max_digits=30, decimal_places=8)
    eth_quantity = serializers.DecimalField(max_digits=30, decimal_places=8)
    btc_market_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    eth_market_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    market_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    va_lending_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    va_capped = serializers.BooleanField()
    lending_value = serializers.DecimalField(max_digits=18, decimal_places=2)
    drawn_balance = serializers.DecimalField(max_digits=18, decimal_places=2)
    utilisation = serializers.DecimalField(max_digits=12, decimal_places=4)
    band = serializers.CharField()
    watch_level = serializers.DecimalField(max_digits=7, decimal_places=4)
    margin_call_level = serializers.DecimalField(max_digits=7, decimal_places=4)
    close_out_level = serializers.DecimalField(max_digits=7, decimal_places=4)
    fall_to_call = serializers.DictField(child=serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True))
    open_call = CallSerializer(allow_null=True)


class AlarmSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriceAlarm
        fields = ["id", "asset", "kind", "key", "message", "details", "raised_at", "updated_at", "cleared_at"]


class OverrideSerializer(serializers.ModelSerializer):
    in_force = serializers.SerializerMethodField()
    price_hkd = price_output(read_only=True)
    governed_price = price_output(read_only=True, allow_null=True)

    class Meta:
        model = PriceOverride
        fields = ["id", "reference", "asset", "price_hkd", "status", "reason", "justification", "governed_price", "deviation", "preview",
                  "set_by", "set_at", "expires_at", "approved_by", "approved_at", "decision_note", "cancelled_by", "cancelled_at", "in_force"]

    def get_in_force(self, obj) -> bool:
        return obj.in_force()


class PriceSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriceSource
        fields = ["id", "code", "name", "kind", "weight", "active", "created_at"]


class StressReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = StressReport
        fields = ["id", "kind", "period", "btc_shock", "eth_shock", "securities_shock", "btc_price", "eth_price", "policy_version", "result", "created_at"]


def _risk_out(risk: dict) -> dict:
    return FacilityRiskSerializer(risk).data


# --- Client ---------------------------------------------------------------------------------------------


class ClientFacilityRiskApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=FacilityRiskSerializer, summary="My facility's live valuation, utilisation, distance to a margin call and open call")
    def get(self, request, pk: int):
        risk = selectors.facility_risk_for_client(user=request.user, facility_id=pk)
        if risk is None:
            raise Http404
        return Response(_risk_out(risk))


class ClientCallListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [IsClient]

    @extend_schema(responses=CallSerializer(many=True), summary="My margin calls")
    def get(self, request):
        return _page(self, request, selectors.calls_for_client(user=request.user), CallSerializer)


# --- Staff: board, facilities, calls ----------------------------------------------------------------------


class BoardApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    class OutputSerializer(serializers.Serializer):
        facilities = serializers.IntegerField()
        bands = serializers.DictField(child=serializers.IntegerField())
        histogram = serializers.ListField(child=serializers.DictField())
        totals = serializers.DictField(child=serializers.DecimalField(max_digits=24, decimal_places=2))
        va_share_market = serializers.DecimalField(max_digits=9, decimal_places=4)
        va_share_lending = serializers.DecimalField(max_digits=9, decimal_places=4)
        book_utilisation = serializers.DecimalField(max_digits=9, decimal_places=4)
        nearest = serializers.ListField(child=serializers.DictField())
        by_client = serializers.ListField(child=serializers.DictField())
        by_asset = serializers.ListField(child=serializers.DictField())
        call_ages = serializers.ListField(child=serializers.DictField())
        call_states = serializers.DictField(child=serializers.IntegerField())
        alarms = AlarmSerializer(many=True)
        page = serializers.IntegerField()
        pages = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer, summary="Risk board: distribution, nearest thresholds, calls by age, concentration, alarms")
    def get(self, request):
        data = selectors.board(page=page_param(request.query_params))
        if data.get("empty"):
            return Response({"facilities": 0, "bands": {}, "histogram": [], "totals": {}, "va_share_market": 0, "va_share_lending": 0,
                             "book_utilisation": 0, "nearest": [], "by_client": [], "by_asset": [], "call_ages": [], "call_states": {},
                             "alarms": [], "page": 1, "pages": 1})
        out = {k: data[k] for k in self.OutputSerializer().fields}
        return Response(selectors.jsonable(self.OutputSerializer(out).data))


class StaffFacilityRiskApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    @extend_schema(responses=FacilityRiskSerializer, summary="A facility's live valuation and distance to a margin call")
    def get(self, request, pk: int):
        risk = selectors.facility_risk(facility_id=pk)
        if risk is None:
            raise Http404
        return Response(_risk_out(risk))


class CallListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.MARGIN_CALL_MANAGE

    @extend_schema(responses=StaffCallSerializer(many=True), summary="Margin calls (state=open_all|open|escalated|met|closed_out|waived)")
    def get(self, request):
        qs = selectors.margin_calls(**call_filters(request.query_params))
        return _page(self, request, qs, StaffCallSerializer)


class CallDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.MARGIN_CALL_MANAGE

    @extend_schema(responses=StaffCallSerializer, summary="One margin call")
    def get(self, request, pk: int):
        try:
            return Response(StaffCallSerializer(selectors.margin_call(call_id=pk)).data)
        except MarginCall.DoesNotExist:
            raise Http404 from None


class _CallActionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.MARGIN_CALL_MANAGE

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="")

    def act(self, request, pk, data):  # pragma: no cover - overridden
        raise NotImplementedError

    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        call = self.act(request, pk, serializer.validated_data)
        return Response(StaffCallSerializer(selectors.margin_call(call_id=call.pk)).data)


class CallEscalateApi(_CallActionApi):
    @extend_schema(request=_CallActionApi.InputSerializer, responses=StaffCallSerializer, summary="Escalate an open call to the credit managers")
    @idempotent("risk.call.escalate")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        return services.margin_call_escalate(actor=request.user, call_id=pk, reason=data["note"])


class CallMarkMetApi(_CallActionApi):
    @extend_schema(request=_CallActionApi.InputSerializer, responses=StaffCallSerializer, summary="Record a call as met (utilisation must be at or under the level now)")
    @idempotent("risk.call.met")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        return services.margin_call_mark_met(actor=request.user, call_id=pk, note=data["note"])


class CallProposeApi(_CallActionApi):
    class InputSerializer(serializers.Serializer):
        resolution = serializers.ChoiceField(choices=Resolution.choices)
        reason = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=StaffCallSerializer, summary="Propose a close-out or waiver of an escalated call (maker)")
    @idempotent("risk.call.propose")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        return services.margin_call_propose(actor=request.user, call_id=pk, resolution=data["resolution"], reason=data["reason"])


class CallApproveApi(_CallActionApi):
    required_perm = Perm.MARGIN_CALL_RESOLVE

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=StaffCallSerializer, summary="Approve the proposed close-out or waiver (credit manager, not the proposer)")
    @idempotent("risk.call.approve")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        return services.margin_call_decide(actor=request.user, call_id=pk, approve=True, note=data["note"])


class CallRejectApi(_CallActionApi):
    required_perm = Perm.MARGIN_CALL_RESOLVE

    @extend_schema(request=_CallActionApi.InputSerializer, responses=StaffCallSerializer, summary="Send the proposal back (credit manager)")
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, request, pk, data):
        return services.margin_call_decide(actor=request.user, call_id=pk, approve=False, note=data["note"])


class TopUpApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    class InputSerializer(serializers.Serializer):
        instrument = serializers.CharField(required=False, allow_blank=True, default="", max_length=12,
                                           help_text="HKEX stock code, BTC or ETH: pledged from the client's free holding")
        kind = serializers.ChoiceField(choices=[("securities", "securities"), ("virtual_asset", "virtual_asset")], required=False)
        asset = serializers.CharField(required=False, allow_blank=True, default="")
        quantity = serializers.DecimalField(max_digits=24, decimal_places=8)
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
        custody_reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
        reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)

    @extend_schema(request=InputSerializer, responses={201: FacilityRiskSerializer}, summary="Record a collateral top-up; the facility is revalued and a cured call met")
    @idempotent("risk.collateral.top_up")
    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.collateral_top_up(actor=request.user, facility_id=pk, **serializer.validated_data)
        return Response(_risk_out(selectors.facility_risk(facility_id=pk)), status=status.HTTP_201_CREATED)


# --- Prices --------------------------------------------------------------------------------------------


class PricesApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    class OutputSerializer(serializers.Serializer):
        reference = serializers.DictField()
        quotes = serializers.ListField(child=serializers.DictField())
        alarms = AlarmSerializer(many=True)
        overrides = OverrideSerializer(many=True)
        volatility = serializers.DictField()

    @extend_schema(responses=OutputSerializer, summary="Reference prices, the sources' latest quotes, alarms, overrides and volatility")
    def get(self, request):
        o = selectors.price_overview()
        data = {
            "reference": {a: {"price_hkd": str(q.price_hkd), "source": q.source, "as_of": q.as_of.isoformat(), "fresh": q.fresh} for a, q in o["current"].items()},
            "quotes": [{"source": r["quote"].source.code, "asset": r["quote"].asset, "price_hkd": str(r["quote"].price_hkd),
                        "as_of": r["quote"].as_of.isoformat(), "fresh": r["fresh"], "deviation": str(r["deviation"]) if r["deviation"] is not None else None}
                       for r in o["quotes"]],
            "alarms": AlarmSerializer(o["alarms"], many=True).data,
            "overrides": OverrideSerializer(o["overrides"], many=True).data,
            "volatility": {a: {"volatility": str(v.volatility) if v.volatility is not None else None, "observations": v.observations,
                               "computed_at": v.computed_at.isoformat()} for a, v in o["volatility"].items()},
        }
        return Response(data)


class QuoteApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE

    class InputSerializer(serializers.Serializer):
        source = serializers.CharField(max_length=40)
        asset = serializers.CharField(max_length=8)
        price_hkd = serializers.DecimalField(max_digits=20, decimal_places=3)
        as_of = serializers.DateTimeField(required=False, allow_null=True)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        asset = serializers.CharField()
        price_hkd = price_output()
        as_of = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, summary="Record a quote from a price source")
    @idempotent("risk.quote")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        quote = services.quote_record(actor=request.user, source_code=d["source"], asset=d["asset"], price_hkd=d["price_hkd"], as_of=d.get("as_of"))
        return Response(self.OutputSerializer(quote).data, status=status.HTTP_201_CREATED)


class OverrideApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_OVERRIDE

    class InputSerializer(serializers.Serializer):
        asset = serializers.CharField(max_length=8)
        price_hkd = serializers.DecimalField(max_digits=20, decimal_places=3, min_value=Decimal("0.001"))
        expires_at = serializers.DateTimeField()
        reason = serializers.CharField(max_length=5000)
        justification = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={201: OverrideSerializer},
                   summary="Propose a manual price override (credit manager); a second credit manager approves it")
    @idempotent("risk.override")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = services.override_propose(actor=request.user, **serializer.validated_data)
        return Response(OverrideSerializer(override).data, status=status.HTTP_201_CREATED)


class OverrideDecideApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_OVERRIDE
    approve = True

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    @extend_schema(request=InputSerializer, responses=OverrideSerializer, summary="Approve a proposed override (a credit manager who did not propose it)")
    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = services.override_decide(actor=request.user, override_id=pk, approve=self.approve, note=serializer.validated_data["note"])
        return Response(OverrideSerializer(override).data)


class OverrideRejectApi(OverrideDecideApi):
    approve = False

    @extend_schema(request=OverrideDecideApi.InputSerializer, responses=OverrideSerializer, summary="Reject a proposed override")
    def post(self, request, pk: int):
        return super().post(request, pk)


class OverrideCancelApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_OVERRIDE

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    @extend_schema(request=InputSerializer, responses=OverrideSerializer, summary="Withdraw a proposed override or cancel one in force")
    def post(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(OverrideSerializer(services.override_cancel(actor=request.user, override_id=pk, **serializer.validated_data)).data)


class PriceSourceListApi(APIView):
    """The price sources; credit managers add them (audited)."""
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)

    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE

    class InputSerializer(serializers.Serializer):
        code = serializers.SlugField(max_length=40)
        name = serializers.CharField(max_length=100)
        kind = serializers.ChoiceField(choices=SourceKind.choices, default=SourceKind.FEED)
        weight = serializers.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("100"), default=Decimal("1"))

    @extend_schema(responses=PriceSourceSerializer(many=True), summary="Price sources")
    def get(self, request):
        return _page(self, request, PriceSource.objects.order_by("code"), PriceSourceSerializer)

    @extend_schema(request=InputSerializer, responses={201: PriceSourceSerializer}, summary="Add a price source (credit manager)")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = services.price_source_create(actor=request.user, **serializer.validated_data)
        return Response(PriceSourceSerializer(source).data, status=status.HTTP_201_CREATED)


class PriceSourceApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_OVERRIDE

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        weight = serializers.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("100"), required=False)
        active = serializers.BooleanField(required=False)
        reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=PriceSourceSerializer, summary="Rename, reweight, deactivate or reactivate a price source (credit manager)")
    def patch(self, request, pk: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        source = services.price_source_update(actor=request.user, source_id=pk, name=d.get("name"), weight=d.get("weight"),
                                              active=d.get("active"), reason=d["reason"])
        return Response(PriceSourceSerializer(source).data)


class AlarmListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.RISK_VIEW

    @extend_schema(responses=AlarmSerializer(many=True), summary="Price alarms (open; all=1 for cleared too)")
    def get(self, request):
        return _page(self, request, selectors.price_alarms(include_cleared=choice_param(request.query_params, "all", choices=("0", "1")) == "1"), AlarmSerializer)


# --- Stress tests --------------------------------------------------------------------------------------


class StressRunApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.STRESS_TEST_RUN

    class InputSerializer(serializers.Serializer):
        btc = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=-1, max_value=1)
        eth = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=-1, max_value=1)
        securities = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=-1, max_value=1)
        save = serializers.BooleanField(required=False, default=False)

    class OutputSerializer(serializers.Serializer):
        shocks = serializers.DictField()
        prices = serializers.DictField()
        stressed_prices = serializers.DictField()
        policy_version = serializers.IntegerField()
        summary = serializers.DictField()
        facilities = serializers.ListField(child=serializers.DictField())
        by_client = serializers.ListField(child=serializers.DictField())
        by_asset = serializers.ListField(child=serializers.DictField())
        report_id = serializers.IntegerField(allow_null=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Stress the whole book (shocks as fractions: -0.50 = −50%)")
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        if d["save"]:
            report = services.stress_report_store(actor=request.user, btc_shock=d["btc"], eth_shock=d["eth"], securities_shock=d["securities"])
            return Response(report.result | {"report_id": report.pk})
        result = selectors.stress_test(btc=d["btc"], eth=d["eth"], securities=d["securities"])
        return Response(selectors.jsonable(result) | {"report_id": None})


class StressPresetsApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.STRESS_TEST_RUN

    @extend_schema(responses=serializers.ListSerializer(child=serializers.DictField()), summary="Stress presets")
    def get(self, request):
        return Response(selectors.stress_presets())


class StressReportListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.STRESS_TEST_RUN

    @extend_schema(responses=StressReportSerializer(many=True), summary="Stored stress reports (kind=monthly|ad_hoc)")
    def get(self, request):
        return _page(self, request, selectors.stress_reports(kind=choice_param(request.query_params, "kind", choices=StressReport.Kind.values)), StressReportSerializer)


class StressReportApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.STRESS_TEST_RUN

    @extend_schema(responses=StressReportSerializer, summary="One stored stress report")
    def get(self, request, pk: int):
        report = StressReport.objects.filter(pk=pk).first()
        if report is None:
            raise Http404
        return Response(StressReportSerializer(report).data)
