"""Disclosures API: clients read and acknowledge; compliance reads reports."""

from __future__ import annotations

from dataclasses import asdict

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import IsClient, StaffPermission, idempotent
from portal.permissions import Perm
from portal.products import Product

from . import selectors, services
from .models import Channel, DisclosureLanguage, VersionStatus, language_or_default


class DocumentStatusSerializer(serializers.Serializer):
    code = serializers.CharField()
    title = serializers.CharField()
    version_id = serializers.IntegerField()
    version_number = serializers.IntegerField()
    acknowledged = serializers.BooleanField()
    stale = serializers.BooleanField()
    reason = serializers.CharField()
    url = serializers.CharField()


class ProductQuerySerializer(serializers.Serializer):
    product = serializers.ChoiceField(choices=Product.choices)


class RequiredDocumentsApi(APIView):
    """Every document the product requires, with the caller's acknowledgement status."""

    permission_classes = [IsClient]
    OutputSerializer = DocumentStatusSerializer

    @extend_schema(parameters=[ProductQuerySerializer], responses=DocumentStatusSerializer(many=True))
    def get(self, request):
        query = ProductQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        statuses = self.select(user=request.user, product=query.validated_data["product"])
        return Response([asdict(s) for s in statuses])

    @staticmethod
    def select(*, user, product):
        return selectors.required_documents(user=user, product=product)


class OutstandingDocumentsApi(RequiredDocumentsApi):
    """Only the documents the caller still has to acknowledge for the product."""

    @staticmethod
    def select(*, user, product):
        return selectors.outstanding_documents(user=user, product=product)


class VersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    document_code = serializers.CharField(source="document.code")
    title = serializers.CharField()
    number = serializers.IntegerField()
    status = serializers.CharField()
    current = serializers.BooleanField(source="is_current")
    material = serializers.BooleanField()
    effective_date = serializers.DateField()
    change_summary = serializers.CharField()
    change_summary_zh = serializers.CharField()
    language = serializers.CharField()
    body_markdown = serializers.CharField()
    body_html = serializers.CharField()
    content_hash = serializers.CharField(help_text="SHA-256 of the canonical Markdown text in this language.")
    serving_token = serializers.CharField(
        allow_null=True, help_text="Present for the current version: cite it when acknowledging."
    )


def _version_payload(request, version) -> dict:
    language = language_or_default(request.query_params.get("language"))
    token = None
    if version.status == VersionStatus.PUBLISHED:
        token = services.version_serve(user=request.user, version=version, language=language, channel=Channel.API).token
    version.title = version.document.title_in(language)
    version.language = language
    version.body_markdown = version.body_in(language)
    version.body_html = version.html_in(language)
    version.content_hash = version.hash_in(language)
    version.serving_token = token
    return VersionOutputSerializer(version).data


LANGUAGE_PARAM = OpenApiParameter("language", str, enum=DisclosureLanguage.values, required=False)


class CurrentVersionApi(APIView):
    """The current version of a document; fetching it records that its text was served to you."""

    permission_classes = [IsClient]
    OutputSerializer = VersionOutputSerializer

    @extend_schema(parameters=[LANGUAGE_PARAM], responses=VersionOutputSerializer)
    def get(self, request, code: str):
        version = selectors.current_version_by_code(code=code)
        if version is None:
            raise Http404
        return Response(_version_payload(request, version))


class VersionDetailApi(APIView):
    """A version by id (never drafts). Only the current version comes with a serving token."""

    permission_classes = [IsClient]
    OutputSerializer = VersionOutputSerializer

    @extend_schema(parameters=[LANGUAGE_PARAM], responses=VersionOutputSerializer)
    def get(self, request, version_id: int):
        version = selectors.visible_version(version_id=version_id)
        if version is None:
            raise Http404
        return Response(_version_payload(request, version))


class AcknowledgementOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    document_code = serializers.CharField(source="version.document.code")
    version_id = serializers.IntegerField()
    version_number = serializers.IntegerField(source="version.number")
    version_status = serializers.CharField(source="version.status")
    language = serializers.CharField()
    content_hash = serializers.CharField()
    served_at = serializers.DateTimeField(source="serving.served_at")
    acknowledged_at = serializers.DateTimeField()
    channel = serializers.CharField()
    confirmed_read_and_understood = serializers.BooleanField()
    confirmed_invited_to_ask_and_seek_advice = serializers.BooleanField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()


class AcknowledgementListCreateApi(ListAPIView):
    """GET: your acknowledgements, newest first. POST: acknowledge the version you were served."""

    permission_classes = [IsClient]
    serializer_class = AcknowledgementOutputSerializer
    OutputSerializer = AcknowledgementOutputSerializer

    class InputSerializer(serializers.Serializer):
        version_id = serializers.IntegerField()
        language = serializers.ChoiceField(choices=DisclosureLanguage.choices)
        content_hash = serializers.CharField(max_length=64)
        serving_token = serializers.CharField(max_length=64)
        confirmed_read_and_understood = serializers.BooleanField()
        confirmed_invited_to_ask_and_seek_advice = serializers.BooleanField()

    def get_queryset(self):
        return selectors.acknowledgements_for(user=self.request.user)

    @extend_schema(
        request=InputSerializer,
        responses={201: AcknowledgementOutputSerializer, 200: AcknowledgementOutputSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    @idempotent("disclosures.acknowledge")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ack, created = services.acknowledgement_record(user=request.user, channel=Channel.API, **data.validated_data)
        ack = selectors.acknowledgement_for(user=request.user, ack_id=ack.pk)
        return Response(
            AcknowledgementOutputSerializer(ack).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AcknowledgementDetailApi(APIView):
    permission_classes = [IsClient]
    OutputSerializer = AcknowledgementOutputSerializer

    @extend_schema(responses=AcknowledgementOutputSerializer)
    def get(self, request, ack_id: int):
        ack = selectors.acknowledgement_for(user=request.user, ack_id=ack_id)
        if ack is None:
            raise Http404
        return Response(AcknowledgementOutputSerializer(ack).data)


# --- Compliance ---------------------------------------------------------------------


class VersionReportListApi(ListAPIView):
    """Every version ever published, with its acknowledgement count."""

    permission_classes = [StaffPermission]
    required_perm = Perm.DISCLOSURE_REPORT

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        document_code = serializers.CharField(source="document.code")
        number = serializers.IntegerField()
        status = serializers.CharField()
        material = serializers.BooleanField()
        effective_date = serializers.DateField()
        published_at = serializers.DateTimeField()
        hash_en = serializers.CharField()
        hash_zh = serializers.CharField()
        acknowledgements = serializers.IntegerField(source="ack_count")

    serializer_class = OutputSerializer

    def get_queryset(self):
        return selectors.versions_report()


class StaffAcknowledgementSerializer(AcknowledgementOutputSerializer):
    client_id = serializers.IntegerField()
    client_email = serializers.EmailField(source="client.email")


class VersionAcknowledgementsApi(ListAPIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.DISCLOSURE_REPORT
    serializer_class = StaffAcknowledgementSerializer
    OutputSerializer = StaffAcknowledgementSerializer

    def get_queryset(self):
        return selectors.version_acknowledgements(version_id=self.kwargs["version_id"])


class VersionOutstandingApi(ListAPIView):
    """Clients without a valid acknowledgement of this (current) version's document."""

    permission_classes = [StaffPermission]
    required_perm = Perm.DISCLOSURE_REPORT

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        last_acknowledged_version = serializers.IntegerField(source="last_acked_number", allow_null=True)

    serializer_class = OutputSerializer

    def get_queryset(self):
        version = selectors.version_for_report(version_id=self.kwargs["version_id"])
        if version is None or not version.is_current:
            raise Http404
        return selectors.version_outstanding_clients(version=version, stale_only=self.request.query_params.get("stale") == "1")


class ClientAcknowledgementsApi(ListAPIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.DISCLOSURE_REPORT
    serializer_class = StaffAcknowledgementSerializer
    OutputSerializer = StaffAcknowledgementSerializer

    def get_queryset(self):
        if selectors.client_for_report(user_id=self.kwargs["user_id"]) is None:
            raise Http404
        return selectors.client_acknowledgements(user_id=self.kwargs["user_id"]).select_related("client")
