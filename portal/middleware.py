from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .context import meta_from_request, reset_request_meta, set_request_meta
from .mfa import mfa_state


class RequestContextMiddleware:
    """Makes the caller's IP and user agent available to the audit service."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = set_request_meta(meta_from_request(request))
        try:
            return self.get_response(request)
        finally:
            reset_request_meta(token)


class UserLanguageMiddleware:
    """A signed-in user sees their preferred language unless they chose one this session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings

        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            translation.activate(user.preferred_language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


# Paths a member of staff may use before completing MFA: enough to enrol, give the
# second factor, and leave.
_MFA_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/i18n/", "/healthz", "/language/")


class StaffMFAMiddleware:
    """Staff reach nothing but sign-in and MFA pages until their session has passed the second factor.

    Not enrolled: pages redirect to TOTP enrolment. Enrolled but this session never
    gave the second factor (a password-only sign-in): pages redirect to allauth's
    MFA step. The API answers 403 ``mfa_required`` in both cases.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(_MFA_EXEMPT_PREFIXES):
            state = mfa_state(request)
            if state != "ok":
                if request.path.startswith("/api/"):
                    message = (
                        _("Staff must enrol multi-factor authentication before using the API.")
                        if state == "not_enrolled"
                        else _("Sign in with your second factor before using the API.")
                    )
                    return JsonResponse({"error": {"code": "mfa_required", "message": str(message), "fields": {}}}, status=403)
                if state == "not_enrolled":
                    return redirect(reverse("mfa_activate_totp"))
                return redirect_to_login(request.get_full_path(), login_url=reverse("mfa_reauthenticate"))
        return self.get_response(request)
