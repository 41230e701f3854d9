"""Collateral API: the back office's machine endpoints (API key) and staff endpoints (session + MFA).

Machine endpoints — ``Authorization: Api-Key vmk_…``, nothing else accepted:
  POST /api/v1/collateral/imports/<kind>/   a batch (CSV body ``text/csv`` or JSON ``{batch_id, as_of, lines}``)
  GET  /api/v1/collateral/imports/<kind>/<batch_id>/   the stored result of a batch
Staff endpoints: instruments (list, load a file, change one), import upload, breaks, machine keys.
"""

from __future__ import annotations

from django.http import Http404, QueryDict
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import Pagination, StaffPermission
from portal.errors import PortalError
from portal.permissions import Perm

from . import selectors, services
from .auth import HasImportKey, MachineKeyAuthentication
from .models import ImportBatch, Instrument, MachineKey, ReconciliationBreak


class PlainTextParser(JSONParser):
    """CSV bodies (``text/csv`` or ``text/plain``) are passed on as the bytes sent: the services read them as
    UTF-8 or refuse them (``services.file_text``), so a byte that is not UTF-8 is never replaced."""

    media_type = "text/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


class InstrumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instrument
        fields = ["id", "code", "kind", "name_en", "name_zh", "board_lot", "currency", "issuer", "sector", "margin_class",
                  "suspended", "suspended_since", "active", "updated_at"]


class InstrumentChangeSerializer(serializers.Serializer):
    """What PATCH …/staff/instruments/<code>/ takes (the schema's; ``services.instrument_update`` checks it): any of
    these fields. The code and kind are not changeable, and the suspension time is the portal's."""

    name_en = serializers.CharField(required=False, max_length=200)
    name_zh = serializers.CharField(required=False, allow_blank=True, max_length=200)
    board_lot = serializers.IntegerField(required=False, min_value=1, max_value=services.BOARD_LOT_MAX)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, help_text="A three-letter code, e.g. HKD")
    issuer = serializers.CharField(required=False, allow_blank=True, max_length=200)
    sector = serializers.CharField(required=False, allow_blank=True, max_length=80)
    margin_class = serializers.CharField(required=False, allow_blank=True, max_length=8,
                                         help_text="Only the instrument's current class: a class (its haircut) changes through the collateral policy")
    suspended = serializers.BooleanField(required=False, help_text="true or false (a form body: true/false, yes/no, y/n or 1/0)")
    active = serializers.BooleanField(required=False, help_text="false delists the instrument: not marginable, its holders revalued")


# The API's one error shape (portal.errors), for the schema.
ERROR = inline_serializer("CollateralError", {"error": inline_serializer("CollateralErrorBody", {
    "code": serializers.CharField(), "message": serializers.CharField(), "fields": serializers.DictField()})})
REJECTED = inline_serializer("BatchRejected", {"error": inline_serializer("BatchRejectedBody", {
    "code": serializers.CharField(), "message": serializers.CharField(), "fields": serializers.DictField()}), "batch": serializers.DictField()})
IMPORT_ERRORS = {
    400: OpenApiResponse(ERROR, description="Not a batch (not UTF-8, not CSV or JSON, missing columns, no lines, a bad batch_id or as_of): refused, not stored"),
    409: OpenApiResponse(ERROR, description="batch_id_reused: the batch id was applied with other content"),
    422: OpenApiResponse(REJECTED, description="batch_rejected: line errors, nothing applied; the batch is kept with its report"),
}


class BatchSerializer(serializers.ModelSerializer):
    # Each problem in the reader's language (the English record stays in the stored report).
    errors = serializers.ListField(source="problems", child=serializers.DictField(), read_only=True)

    class Meta:
        model = ImportBatch
        fields = ["id", "kind", "batch_id", "status", "as_of", "channel", "line_count", "applied_count", "errors", "summary",
                  "received_at", "content_sha256"]


class BreakSerializer(serializers.ModelSerializer):
    instrument_code = serializers.CharField(source="instrument.code", read_only=True, default=None)

    class Meta:
        model = ReconciliationBreak
        fields = ["id", "kind", "key", "client", "instrument", "instrument_code", "portal_quantity", "external_quantity", "batch",
                  "message", "raised_at", "resolved_at", "resolution_note"]


class KeySerializer(serializers.ModelSerializer):
    class Meta:
        model = MachineKey
        fields = ["id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at", "replaces"]


# The five kinds of batch (README: Imports), so clients and the schema name them rather than a free string.
KIND = OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(services.COLUMNS), description="The kind of batch")


def _kind(kind: str) -> str:
    if kind not in services.COLUMNS:
        raise Http404
    return kind


def _batch_response(result) -> Response:
    # Idempotent per batch id: a replay answers as the first delivery did (a rejected one with its report again).
    if result.batch.status == "rejected":
        code = status.HTTP_422_UNPROCESSABLE_ENTITY
    else:
        code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
    body = BatchSerializer(result.batch).data | {"replayed": result.replayed}
    if result.batch.status == "rejected":
        body = {"error": {"code": "batch_rejected", "message": f"Batch {result.batch.batch_id} rejected: {len(result.batch.errors)} line error(s); nothing was applied.",
                          "fields": {"lines": [f"line {e['line']}: {e['message']}" for e in result.batch.problems[:200]]}}, "batch": body}
    return Response(body, status=code)


class MachineImportApi(APIView):
    """The back office posts a batch. Idempotent per batch id; all lines applied or none."""

    authentication_classes = [MachineKeyAuthentication]
    permission_classes = [HasImportKey]
    parser_classes = [JSONParser, PlainTextParser]

    @extend_schema(parameters=[KIND], request={"application/json": dict, "text/csv": str},
                   responses={201: OpenApiResponse(BatchSerializer, description="Applied"),
                              200: OpenApiResponse(BatchSerializer, description="A repeat of a batch already applied: its stored result"),
                              **IMPORT_ERRORS},
                   summary="Import a batch of positions, the custody statement or prices (machine API key)")
    def post(self, request, kind: str):
        result = services.batch_import(kind=_kind(kind), content=request.data, machine_key=request.auth, channel="api")
        return _batch_response(result)


class MachineBatchApi(APIView):
    authentication_classes = [MachineKeyAuthentication]
    permission_classes = [HasImportKey]

    @extend_schema(parameters=[KIND], responses=BatchSerializer, summary="The result of a batch sent earlier (machine API key)")
    def get(self, request, kind: str, batch_id: str):
        batch = selectors.import_batches(kind=_kind(kind)).filter(batch_id=batch_id).order_by("-id").first()
        if batch is None:
            raise Http404
        return Response(BatchSerializer(batch).data)


class StaffImportApi(APIView):
    """Operations upload a batch by hand (the same validation and report)."""

    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE
    parser_classes = [JSONParser, PlainTextParser]

    @extend_schema(parameters=[KIND], request={"application/json": dict, "text/csv": str},
                   responses={201: BatchSerializer, 200: BatchSerializer, **IMPORT_ERRORS}, summary="Upload a batch (staff)")
    def post(self, request, kind: str):
        result = services.batch_import(kind=_kind(kind), content=request.data, actor=request.user, channel="upload")
        return _batch_response(result)


class StaffBatchListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=BatchSerializer(many=True), summary="Import batches, newest first")
    def get(self, request):
        qs = selectors.import_batches(kind=request.query_params.get("kind", ""))
        paginator = Pagination()
        return paginator.get_paginated_response(BatchSerializer(paginator.paginate_queryset(qs, request, view=self), many=True).data)


class BreakListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    @extend_schema(responses=BreakSerializer(many=True), summary="Reconciliation breaks (open by default)")
    def get(self, request):
        qs = selectors.breaks(open_only=request.query_params.get("all") != "1", kind=request.query_params.get("kind", ""))
        paginator = Pagination()
        return paginator.get_paginated_response(BreakSerializer(paginator.paginate_queryset(qs, request, view=self), many=True).data)


class BreakResolveApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.FACILITY_OPERATE

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=2000)

    @extend_schema(request=InputSerializer, responses=BreakSerializer, summary="Resolve a break with a note")
    def post(self, request, pk: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(BreakSerializer(services.break_resolve(actor=request.user, break_id=pk, note=data.validated_data["note"])).data)


class InstrumentListApi(APIView):
    pagination_class = Pagination  # GET answers a page (and the schema documents it as one)
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE
    parser_classes = [JSONParser, PlainTextParser]

    @extend_schema(responses=InstrumentSerializer(many=True), summary="The instrument master")
    def get(self, request):
        qs = selectors.instruments(kind=request.query_params.get("kind", ""), search=request.query_params.get("q", ""),
                                   include_inactive=request.query_params.get("all") == "1")
        paginator = Pagination()
        return paginator.get_paginated_response(InstrumentSerializer(paginator.paginate_queryset(qs, request, view=self), many=True).data)

    @extend_schema(request={"text/csv": str}, responses=dict, summary="Load an instrument file (creates and updates; one bad row refuses it)")
    def post(self, request):
        if not isinstance(request.data, (str, bytes)):
            raise PortalError("invalid_file", _("Send the instrument file as text/csv."))
        return Response(services.instruments_load(actor=request.user, text=request.data, source="api"), status=status.HTTP_200_OK)


def _fields_sent(data) -> dict:
    """The fields of a body, each with the value sent: a form body (a QueryDict) keeps a list per field, which
    ``dict()`` would hand on as the list itself (``['true']``, a name stored as "['X']")."""
    if isinstance(data, QueryDict):
        repeated = sorted(name for name, values in data.lists() if len(values) > 1)
        if repeated:
            raise PortalError("validation_error", _("Send each field once (sent more than once: %(fields)s).") % {"fields": ", ".join(repeated)},
                              {name: [_("Sent more than once.")] for name in repeated})
        return data.dict()
    return dict(data)


class InstrumentDetailApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PRICE_MANAGE

    @extend_schema(request=InstrumentChangeSerializer, responses={200: InstrumentSerializer, 400: ERROR},
                   summary="Change one instrument (e.g. suspend or delist it)")
    def patch(self, request, code: str):
        if not isinstance(request.data, dict):
            raise PortalError("validation_error", "Send a JSON object of the fields to change.")
        return Response(InstrumentSerializer(services.instrument_update(actor=request.user, code=code, changes=_fields_sent(request.data))).data)


class KeyListApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.POLICY_APPROVE

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema(responses=KeySerializer(many=True), summary="Machine API keys")
    def get(self, request):
        return Response(KeySerializer(selectors.machine_keys(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: KeySerializer}, summary="Create a key (the token is shown once)")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, token = services.machine_key_create(actor=request.user, name=data.validated_data["name"])
        return Response(KeySerializer(key).data | {"token": token}, status=status.HTTP_201_CREATED)


class KeyRotateApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.POLICY_APPROVE

    @extend_schema(request=None, responses={201: KeySerializer}, summary="Rotate a key: a new token; the old one stops working")
    def post(self, request, pk: int):
        key, token = services.machine_key_rotate(actor=request.user, key_id=pk)
        return Response(KeySerializer(key).data | {"token": token}, status=status.HTTP_201_CREATED)


class KeyRevokeApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.POLICY_APPROVE

    @extend_schema(request=None, responses=KeySerializer, summary="Revoke a key")
    def post(self, request, pk: int):
        return Response(KeySerializer(services.machine_key_revoke(actor=request.user, key_id=pk, reason=str(request.data.get("reason", "")) if isinstance(request.data, dict) else "")).data)
