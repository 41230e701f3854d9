from __future__ import annotations

import threading

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from . import notifications, selectors
from .adapters import email_confirmed
from .api_base import StaffPermission
from .errors import ForbiddenError, PortalError
from .mfa import stepup_verify_code, user_has_mfa
from .models import NotificationCategory
from .permissions import Perm


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        preferred_language = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        mfa_enrolled = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        user = request.user
        data = {
            "id": user.id,
            "email": user.email,
            "full_name": user.full_name,
            "preferred_language": user.preferred_language,
            "roles": sorted(user.role_names),
            "mfa_enrolled": user_has_mfa(user),
        }
        return Response(self.OutputSerializer(data).data)


class TokenObtainApi(APIView):
    """Exchange a client's email and password (and the current code of its authenticator app, once it has
    one) for an API token.

    Staff are refused: their API calls ride on an MFA-verified browser session.
    Throttled, and failures count towards the sign-in lock-out.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(trim_whitespace=False)
        otp_code = serializers.CharField(max_length=12, required=False, allow_blank=True, write_only=True,
                                         help_text="The current code of the client's authenticator app, when it has one.")

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer("TokenOutput", {"token": serializers.CharField()}),
        auth=[],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, login=data.validated_data["email"], email=data.validated_data["email"], password=data.validated_data["password"])
        if user is None:
            raise PortalError("invalid_credentials", _("Email or password is wrong, or the account is locked."))
        if user.is_portal_staff:
            raise ForbiddenError("staff_use_session", _("Staff use the web sign-in with multi-factor authentication."))
        if not user.is_client:
            raise ForbiddenError("not_a_client", _("Only clients can obtain API tokens."))
        if not email_confirmed(user):
            raise ForbiddenError(
                "email_unconfirmed", _("Confirm your email address first: open the link we sent you, then try again.")
            )
        if user_has_mfa(user):
            # The web sign-in asks for the second factor after the password; so does the token, which can
            # draw down and release collateral. A wrong code counts towards the sign-in lock-out.
            code = data.validated_data.get("otp_code", "")
            if not code.strip():
                raise PortalError("otp_code_required", _("This account signs in with an authenticator app: send its current code as otp_code."),
                                  {"otp_code": [_("Required.")]})
            try:
                stepup_verify_code(user, code)
            except ForbiddenError:
                user_login_failed.send(sender=__name__, credentials={"email": data.validated_data["email"]}, request=request)
                raise
        token = Token.objects.get_or_create(user=user)[0]
        return Response({"token": token.key})


class NotificationListApi(ListAPIView):
    """The caller's notifications, newest first: ``title``/``body`` in the caller's current language,
    ``sent_title``/``sent_body`` as they were sent; ``resolved_at`` once the task they ask for is done."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField()
        category = serializers.CharField()
        title = serializers.CharField(source="shown_title")
        body = serializers.CharField(source="shown_body")
        sent_title = serializers.CharField(source="title")
        sent_body = serializers.CharField(source="body")
        link = serializers.CharField()
        task_key = serializers.CharField()
        created_at = serializers.DateTimeField()
        read_at = serializers.DateTimeField(allow_null=True)
        resolved_at = serializers.DateTimeField(allow_null=True)

    serializer_class = OutputSerializer

    def get_queryset(self):
        return selectors.notifications_for(user=self.request.user)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        for n in page if page is not None else ():
            n.shown_title, n.shown_body = notifications.notification_text(n)
        return page


class NotificationsMarkReadApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_empty=False)

    @extend_schema(request=InputSerializer, responses=inline_serializer("MarkReadOutput", {"marked": serializers.IntegerField()}))
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        marked = notifications.notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
        return Response({"marked": marked})


_PREFERENCES = inline_serializer("NotificationPreferences", {
    c: inline_serializer(f"NotificationPreferences_{c}", {"email": serializers.BooleanField(), "webhook": serializers.BooleanField()})
    for c in NotificationCategory.values
})


class NotificationPreferencesApi(APIView):
    """The caller's channels per category (``{"warning": {"email": false}}``; missing entries unchanged).
    Margin calls always go to every channel: switching them off is refused (``margin_calls_always_sent``)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=_PREFERENCES)
    def get(self, request):
        return Response(selectors.notification_preferences(user=request.user))

    @extend_schema(request=_PREFERENCES, responses=_PREFERENCES)
    def put(self, request):
        if not isinstance(request.data, dict):
            raise PortalError("validation_error", _("Send an object of categories."))
        return Response(notifications.notification_preferences_set(user=request.user, choices=dict(request.data)))

    patch = put


class _ChannelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    label = serializers.CharField()
    address = serializers.CharField()
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class NotificationChannelsApi(APIView):
    """The caller's addresses on the broker's SMS/push gateway (the signed webhook)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        label = serializers.CharField(max_length=80)
        address = serializers.CharField(max_length=200)

    @extend_schema(responses=_ChannelSerializer(many=True))
    def get(self, request):
        return Response(_ChannelSerializer(selectors.notification_channels(user=request.user), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: _ChannelSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = notifications.notification_channel_add(user=request.user, **data.validated_data)
        return Response(_ChannelSerializer(channel).data, status=201)


class NotificationChannelDeactivateApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=_ChannelSerializer)
    def post(self, request, channel_id: int):
        return Response(_ChannelSerializer(notifications.notification_channel_deactivate(user=request.user, channel_id=channel_id)).data)


class AuditEventListApi(ListAPIView):
    """The audit trail, newest first; filter by actor, action (substring), record type and id, Hong Kong dates.
    System housekeeping (price loads, revaluation runs) is left out unless ``include_system=true``."""

    permission_classes = [StaffPermission]
    required_perm = Perm.AUDIT_VIEW

    class FilterSerializer(serializers.Serializer):
        actor = serializers.CharField(required=False)
        action = serializers.CharField(required=False)
        object_type = serializers.CharField(required=False)
        object_id = serializers.CharField(required=False)
        since = serializers.DateField(required=False)
        until = serializers.DateField(required=False)
        include_system = serializers.BooleanField(required=False, default=False)

        def validate(self, attrs):
            from .forms import REVERSED_RANGE, date_range_reversed

            if date_range_reversed(attrs.get("since"), attrs.get("until")):
                raise serializers.ValidationError({"until": [REVERSED_RANGE]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        created_at = serializers.DateTimeField()
        actor = serializers.CharField(source="actor_label")
        action = serializers.CharField()
        object_type = serializers.CharField()
        object_id = serializers.CharField()
        object_repr = serializers.CharField()
        before = serializers.JSONField()
        after = serializers.JSONField()
        ip_address = serializers.CharField(allow_null=True)
        user_agent = serializers.CharField()
        hash = serializers.CharField()
        prev_hash = serializers.CharField()

    serializer_class = OutputSerializer

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.audit_events(**filters.validated_data)


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, generated by one thread at a time in a process.

    drf-spectacular's generator is not thread-safe: its extension registry resolves its target classes
    on first use, and its warning counters are shared (tfranzel/drf-spectacular#1122, #1368). Two schema
    requests at once in a threaded server (the development server; gunicorn with ``WEB_THREADS`` > 1)
    failed with a 500 (found by fuzzing). The schema is asked for rarely; a lock costs nothing."""

    _lock = threading.Lock()

    def _get_schema_response(self, request):
        with self._lock:
            return super()._get_schema_response(request)
