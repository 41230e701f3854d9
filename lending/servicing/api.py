"""Servicing API: one view per operation. Clients make requests on their own facilities and read their
statements; staff approve, refuse and record. Errors are the portal's one shape."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lending.models import CollateralKind
from portal.api_base import IsClient, Pagination, StaffPermission, idempotent
from portal.permissions import Perm

from . import requests as svc
from . import selectors
from .models import ServicingRequest


class RequestSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)

    class Meta:
        model = ServicingRequest
        fields = ["id", "reference", "facility", "kind", "origin", "state", "amount", "asset", "quantity", "collateral_kind",
                  "value_hkd", "utilisation_after", "needs_officer", "needs_second", "requested_at", "executed_at",
                  "refused_reason", "refused_code", "refused_params", "broadcast_reference"]


class StatementSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    kind = serializers.CharField()
    facility = serializers.IntegerField(source="facility_id")
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    language = serializers.CharField()
    closing_balance = serializers.DecimalField(max_digits=18, decimal_places=2)
    pdf_sha256 = serializers.CharField()
    issued_at = serializers.DateTimeField()


def _created(req: ServicingRequest) -> Response:
    return Response(RequestSerializer(req).data, status=status.HTTP_201_CREATED)


class FacilityRequestsApi(APIView):
    """The client's requests on one of their facilities."""

    permission_classes = [IsClient]
    pagination_class = Pagination

    @extend_schema(responses=RequestSerializer(many=True))
    def get(self, request, pk):
        qs = ServicingRequest.objects.filter(facility_id=pk, client=request.user).order_by("-id")
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RequestSerializer(page, many=True).data)


class DrawdownRequestApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=18, decimal_places=2)

    @extend_schema(request=InputSerializer, responses={201: RequestSerializer})
    @idempotent("servicing.request.drawdown")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _created(svc.drawdown_request(user=request.user, facility_id=pk, amount=data.validated_data["amount"]))


class RepaymentNoticeApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=18, decimal_places=2)
        note = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    class OutputSerializer(RequestSerializer):
        payment_instructions = serializers.SerializerMethodField()

        class Meta(RequestSerializer.Meta):
            fields = [*RequestSerializer.Meta.fields, "payment_instructions"]

        def get_payment_instructions(self, obj) -> str:
            return svc.payment_instructions(obj)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    @idempotent("servicing.request.repayment")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        req = svc.repayment_notice(user=request.user, facility_id=pk, **data.validated_data)
        return Response(self.OutputSerializer(req).data, status=status.HTTP_201_CREATED)


class TopUpRequestApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        instrument = serializers.CharField(max_length=12, required=False, allow_blank=True,
                                           help_text="HKEX stock code of a holding in the margin account, BTC or ETH")
        collateral_kind = serializers.ChoiceField(choices=CollateralKind.choices, required=False)
        asset = serializers.CharField(max_length=8, required=False, allow_blank=True)
        quantity = serializers.DecimalField(max_digits=24, decimal_places=8)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        custody_reference = serializers.CharField(max_length=100, required=False, allow_blank=True)

    @extend_schema(request=InputSerializer, responses={201: RequestSerializer})
    @idempotent("servicing.request.top_up")
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _created(svc.top_up_request(user=request.user, facility_id=pk, **data.validated_data))


class ReleaseRequestApi(APIView):
    """A release of collateral. A VA withdrawal needs a fresh MFA step-up: an API client has no session
    to re-authenticate, so it sends the current code of the client's authenticator as ``otp_code``
    (checked by ``portal.mfa``, each code usable once); without it the API answers 403 stepup_required."""

    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        position_id = serializers.IntegerField()
        quantity = serializers.DecimalField(max_digits=24, decimal_places=8, required=False)
        address_id = serializers.IntegerField(required=False)
        otp_code = serializers.CharField(max_length=12, required=False, allow_blank=True, write_only=True)

    @extend_schema(request=InputSerializer, responses={201: RequestSerializer})
    @idempotent("servicing.request.release")
    def post(self, request, pk):
        from portal.mfa import stepup_verify_code

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        code = values.pop("otp_code", "")
        stepup_at = stepup_verify_code(request.user, code) if code else None
        req = svc.release_request(user=request.user, facility_id=pk, stepup_at=stepup_at, **values)
        if req.state == "refused":
            return Response({"error": {"code": "release_above_initial_level", "message": req.refusal_text,
                                       "fields": {"request": [req.reference]}}}, status=status.HTTP_409_CONFLICT)
        return _created(req)


class StatementListApi(APIView):
    permission_classes = [IsClient]
    pagination_class = Pagination

    @extend_schema(responses=StatementSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.statements_for_client(user=request.user), request, view=self)
        return paginator.get_paginated_response(StatementSerializer(page, many=True).data)


class StaffRequestDecisionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE
    approve = True

    class InputSerializer(serializers.Serializer):
        received_reference = serializers.CharField(max_length=100, required=False, allow_blank=True)
        custody_reference = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                                  help_text="A top-up of BTC/ETH: the custody reference to pledge it under (overrides the request's).")
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    @extend_schema(request=InputSerializer, responses=RequestSerializer)
    def post(self, request, pk):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not ServicingRequest.objects.filter(pk=pk).exists():
            raise Http404
        if self.approve:
            req = svc.request_approve(actor=request.user, request_id=pk, received_reference=data.validated_data.get("received_reference", ""),
                                      custody_reference=data.validated_data.get("custody_reference", ""))
        else:
            req = svc.request_refuse(actor=request.user, request_id=pk, reason=data.validated_data.get("reason", ""))
        return Response(RequestSerializer(req).data)


class StaffRequestListApi(APIView):
    permission_classes = [StaffPermission]
    pagination_class = Pagination
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=RequestSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        qs = ServicingRequest.objects.filter(state__in=("requested", "awaiting_second")).order_by("id")
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RequestSerializer(page, many=True).data)
