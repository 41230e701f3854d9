"""What every API view shares: the error shape, pagination, permissions, idempotency.

Errors always look like::

    {"error": {"code": "validation_error", "message": "...", "fields": {"amount": ["..."]}}}
"""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ConflictError, PortalError
from .mfa import mfa_state
from .permissions import Perm


def price_output(**kwargs) -> serializers.DecimalField:
    """A price as stored (``lending.models.PriceField``): to the cent, or to three places for a security quoted below
    it ("760000.00", "44.85", "0.305")."""
    kwargs.setdefault("help_text", "HKD: to the cent, or to HK$0.001 for a security quoted below the cent")
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class Pagination(PageNumberPagination):
    """Numbered pages; a page number or size that is not a whole number is a 400, not an empty page."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        page = request.query_params.get(self.page_query_param)
        if page is not None and page not in self.last_page_strings and not _positive_int(page):
            errors[self.page_query_param] = [str(_("A page number is a whole number, 1 or more."))]
        size = request.query_params.get(self.page_size_query_param)
        if size is not None and not (_positive_int(size) and int(size) <= self.max_page_size):
            errors[self.page_size_query_param] = [
                str(_("A page size is a whole number from 1 to %(max)s.") % {"max": self.max_page_size})
            ]
        if errors:
            raise exceptions.ValidationError(errors)
        return super().paginate_queryset(queryset, request, view)


def _positive_int(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) >= 1 and len(value) <= 9


def _error(code: str, message: str, fields: dict | None = None, http_status: int = 400) -> Response:
    return Response({"error": {"code": code, "message": message, "fields": fields or {}}}, status=http_status)


def _flatten_fields(detail) -> dict:
    if isinstance(detail, dict):
        return {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    return {"non_field_errors": [str(x) for x in (detail if isinstance(detail, list) else [detail])]}


def exception_handler(exc, context):
    if isinstance(exc, PortalError):
        return _error(exc.code, exc.message, exc.fields, exc.http_status)
    if isinstance(exc, TransitionNotAllowed):
        return _error("invalid_state", str(_("That action is not allowed in the record's current state.")), http_status=409)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _error("validation_error", " ".join(exc.messages), fields)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        first = next(iter(fields.values()), ["Invalid input."])[0]
        response.data = {"error": {"code": "validation_error", "message": first, "fields": fields}}
    else:
        detail = getattr(exc, "detail", str(exc))
        code = detail.code if hasattr(detail, "code") else getattr(exc, "default_code", "error")
        response.data = {"error": {"code": str(code), "message": str(detail), "fields": {}}}
    return response


class IsClient(BasePermission):
    """A signed-in client. Views then scope every query to ``request.user``."""

    message = _("Only clients can use this endpoint.")

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_client)


class StaffPermission(BasePermission):
    """Staff holding ``view.required_perm`` who signed in with MFA (session only).

    Tokens are issued to clients only, so a staff API call always rides on an
    MFA-verified browser session.
    """

    message = _("You do not have permission to do this.")

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_portal_staff):
            return False
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            return False
        if mfa_state(request) != "ok":  # StaffMFAMiddleware answers first; this guards views mounted elsewhere
            raise exceptions.PermissionDenied(_("Sign in with your second factor before using the API."), code="mfa_required")
        required = getattr(view, "required_perm", Perm.WORKBENCH_ACCESS)
        return user.has_perm(required)


def idempotent(scope: str):
    """Decorator for a POST handler: replay the stored response for a repeated Idempotency-Key.

    The key is optional; without it the request is handled normally. The same key
    with a different body is refused, since that is a client bug, not a retry.
    """

    def decorator(handler):
        def wrapped(view, request, *args, **kwargs):
            from .models import IdempotencyKey

            key = request.headers.get("Idempotency-Key")
            if not key:
                return handler(view, request, *args, **kwargs)
            if len(key) > 100:
                raise PortalError("invalid_idempotency_key", _("Idempotency-Key must be at most 100 characters."))
            body = json.dumps(request.data, sort_keys=True, default=str) + json.dumps(kwargs, sort_keys=True, default=str)
            request_hash = hashlib.sha256(body.encode()).hexdigest()
            existing = IdempotencyKey.objects.filter(user=request.user, scope=scope, key=key).first()
            if existing:
                if existing.request_hash != request_hash:
                    raise ConflictError("idempotency_key_reused", _("This Idempotency-Key was used with a different request."))
                return Response(existing.response_body, status=existing.response_status, headers={"Idempotent-Replayed": "true"})
            try:
                with transaction.atomic():
                    response = handler(view, request, *args, **kwargs)
                    if 200 <= response.status_code < 300:
                        IdempotencyKey.objects.create(
                            user=request.user,
                            scope=scope,
                            key=key,
                            request_hash=request_hash,
                            response_status=response.status_code,
                            response_body=json.loads(json.dumps(response.data, default=str)),
                        )
            except IntegrityError:
                # A concurrent request with the same key won; replay its answer.
                existing = IdempotencyKey.objects.get(user=request.user, scope=scope, key=key)
                return Response(existing.response_body, status=existing.response_status, headers={"Idempotent-Replayed": "true"})
            return response

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorator


__all__ = ["IsClient", "StaffPermission", "Pagination", "exception_handler", "idempotent", "status"]
