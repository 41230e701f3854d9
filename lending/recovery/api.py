"""Close-out and recovery API: one view per operation. The dealing desk posts executions against an approved
plan (send an Idempotency-Key: a retried request never sells twice); collections record payments, write-offs
(two people) and recoveries. Clients read the sales and any debt on their own facility."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import IsClient, Pagination, StaffPermission, idempotent
from portal.permissions import Perm

from . import selectors, services
from .models import Debt, DebtState, Execution, ExecutionStatus, LiquidationLine, LiquidationPlan, PlanState


class PlanLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LiquidationLine
        fields = ["id", "sequence", "code", "kind", "lot", "held_at_plan", "planned_quantity", "filled_quantity", "price_at_plan", "haircut",
                  "expected_proceeds", "proceeds", "status"]


class ExecutionSerializer(serializers.ModelSerializer):
    line = serializers.IntegerField(source="line_id")

    class Meta:
        model = Execution
        fields = ["id", "line", "code", "status", "quantity", "price", "gross", "fee", "applied", "surplus", "executed_at", "venue_reference", "note"]


class PlanSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    call = serializers.IntegerField(source="call_id")
    facility = serializers.IntegerField(source="facility_id")

    class Meta:
        model = LiquidationPlan
        fields = ["id", "reference", "version", "call", "facility", "state", "target_utilisation", "drawn_at_plan", "lending_value_at_plan",
                  "utilisation_at_plan", "expected_proceeds", "expected_fees", "expected_drawn_after", "expected_utilisation_after",
                  "reaches_target", "expected_shortfall", "proposed_at", "approved_at"]


class PlanDetailSerializer(PlanSerializer):
    lines = PlanLineSerializer(many=True, read_only=True)
    executions = ExecutionSerializer(many=True, read_only=True)

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "lines", "executions"]


class DebtSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    facility = serializers.IntegerField(source="facility_id")
    owed = serializers.DecimalField(source="facility.drawn_balance", max_digits=18, decimal_places=2, read_only=True)
    days_past_due = serializers.SerializerMethodField()
    bucket = serializers.SerializerMethodField()

    class Meta:
        model = Debt
        fields = ["id", "reference", "facility", "state", "principal_at_open", "owed", "due_on", "days_past_due", "bucket", "dunning_step",
                  "written_off_amount", "written_off_at", "recovered_total"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_days_past_due(self, obj):
        return selectors.days_past_due(obj.due_on) if obj.is_live else None

    @extend_schema_field(serializers.CharField())
    def get_bucket(self, obj):
        return selectors.bucket_of(selectors.days_past_due(obj.due_on)) if obj.is_live else ""


AMENDMENT = inline_serializer("PlanAmendmentResult", {"id": serializers.IntegerField(), "state": serializers.CharField(),
                                                      "new_plan": serializers.IntegerField(required=False, allow_null=True)})


class _Staff(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.MARGIN_CALL_MANAGE


class PlanListApi(_Staff):
    pagination_class = Pagination
    @extend_schema(responses=PlanSerializer(many=True))
    def get(self, request):
        from lending.inputs import choice_param

        state = choice_param(request.query_params, "state", choices=PlanState.values)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.plans(state=state, live_only=not state), request, view=self)
        return paginator.get_paginated_response(PlanSerializer(page, many=True).data)


class PlanDetailApi(_Staff):
    @extend_schema(responses=PlanDetailSerializer)
    def get(self, request, pk):
        try:
            return Response(PlanDetailSerializer(selectors.plan_detail(plan_id=pk)).data)
        except LiquidationPlan.DoesNotExist:
            raise Http404 from None


class ExecutionApi(_Staff):
    """Record a fill, a failed sale or a market halt against a line of an approved plan."""

    required_perm = Perm.FACILITY_OPERATE

    class InputSerializer(serializers.Serializer):
        line = serializers.IntegerField(required=False)
        instrument = serializers.CharField(required=False, allow_blank=True, max_length=12)
        status = serializers.ChoiceField(choices=ExecutionStatus.values, default=ExecutionStatus.FILLED)
        quantity = serializers.CharField(required=False, allow_blank=True, max_length=40)
        price = serializers.CharField(required=False, allow_blank=True, max_length=40)
        executed_at = serializers.CharField(required=False, allow_blank=True, max_length=40)
        venue_reference = serializers.CharField(required=False, allow_blank=True, max_length=100)
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(request=InputSerializer, responses={201: ExecutionSerializer})
    @idempotent("recovery.execution")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        execution = services.execution_record(actor=request.user, plan_id=pk, line_id=v.get("line"), instrument=v.get("instrument", ""),
                                              status=v["status"], quantity=v.get("quantity"), price=v.get("price") or None,
                                              executed_at=v.get("executed_at") or None, venue_reference=v.get("venue_reference", ""), note=v.get("note", ""))
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)


class AmendmentProposeApi(_Staff):
    required_perm = Perm.FACILITY_OPERATE

    class InputSerializer(serializers.Serializer):
        quantities = serializers.DictField(child=serializers.CharField(max_length=40))
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=InputSerializer, responses={201: AMENDMENT})
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        amendment = services.plan_amend_propose(actor=request.user, plan_id=pk, quantities=data.validated_data["quantities"],
                                                reason=data.validated_data["reason"])
        return Response({"id": amendment.pk, "state": amendment.state}, status=status.HTTP_201_CREATED)


class AmendmentDecideApi(_Staff):
    required_perm = Perm.MARGIN_CALL_RESOLVE

    class InputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(request=InputSerializer, responses=AMENDMENT)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        amendment = services.plan_amend_decide(actor=request.user, amendment_id=pk, approve=data.validated_data["approve"],
                                               note=data.validated_data.get("note", ""))
        return Response({"id": amendment.pk, "state": amendment.state, "new_plan": amendment.new_plan_id})


class DebtListApi(_Staff):
    pagination_class = Pagination
    @extend_schema(responses=DebtSerializer(many=True))
    def get(self, request):
        from lending.inputs import choice_param

        state = choice_param(request.query_params, "state", choices=DebtState.values)
        bucket = choice_param(request.query_params, "bucket", choices=["current", "1-30", "31-60", "61-90", "90+"])
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.debts(state=state, bucket=bucket, live_only=not state), request, view=self)
        return paginator.get_paginated_response(DebtSerializer(page, many=True).data)


class DebtMoneyInput(serializers.Serializer):
    amount = serializers.CharField(max_length=40)
    reference = serializers.CharField(max_length=100)


class DebtPaymentApi(_Staff):
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(request=DebtMoneyInput, responses=DebtSerializer)
    @idempotent("recovery.debt.payment")
    def post(self, request, pk):
        data = DebtMoneyInput(data=request.data)
        data.is_valid(raise_exception=True)
        debt = services.debt_payment_record(actor=request.user, debt_id=pk, **data.validated_data)
        return Response(DebtSerializer(Debt.objects.select_related("facility").get(pk=debt.pk)).data)


class WriteOffProposeApi(_Staff):
    required_perm = Perm.MARGIN_CALL_RESOLVE

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=InputSerializer, responses=DebtSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        debt = services.write_off_propose(actor=request.user, debt_id=pk, reason=data.validated_data["reason"])
        return Response(DebtSerializer(Debt.objects.select_related("facility").get(pk=debt.pk)).data)


class WriteOffDecideApi(_Staff):
    required_perm = Perm.MARGIN_CALL_RESOLVE

    class InputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(request=InputSerializer, responses=DebtSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        debt = services.write_off_decide(actor=request.user, debt_id=pk, approve=data.validated_data["approve"], note=data.validated_data.get("note", ""))
        return Response(DebtSerializer(Debt.objects.select_related("facility").get(pk=debt.pk)).data)


class RecoveryApi(_Staff):
    required_perm = Perm.FACILITY_OPERATE

    class InputSerializer(DebtMoneyInput):
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)
        final = serializers.BooleanField(default=False)

    @extend_schema(request=InputSerializer, responses=DebtSerializer)
    @idempotent("recovery.debt.recovery")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recovery = services.recovery_record(actor=request.user, debt_id=pk, **data.validated_data)
        return Response(DebtSerializer(Debt.objects.select_related("facility").get(pk=recovery.debt_id)).data, status=status.HTTP_201_CREATED)


class ClientCloseOutApi(APIView):
    """The client's own facility: what was sold and any amount owing after the sale."""

    permission_classes = [IsClient]

    @extend_schema(responses=inline_serializer("ClientCloseOut", {"sales": ExecutionSerializer(many=True), "debt": DebtSerializer(allow_null=True)}))
    def get(self, request, pk):
        from lending.models import Facility

        if not Facility.objects.filter(pk=pk, client=request.user).exists():
            raise Http404
        sales = [e for p in selectors.plans_for_facility(facility_id=pk) for e in p.executions.all() if e.status == ExecutionStatus.FILLED]
        debt = selectors.debt_for_facility(facility_id=pk)
        return Response({"sales": ExecutionSerializer(sales, many=True).data,
                         "debt": DebtSerializer(Debt.objects.select_related("facility").get(pk=debt.pk)).data if debt else None})
