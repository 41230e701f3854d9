from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .context import meta_from_request, reset_request_meta, set_request_meta
from .mfa import user_has_mfa


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


# Paths a member of staff may use before enrolling MFA: enough to enrol and leave.
_MFA_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/i18n/", "/healthz", "/language/")


class StaffMFAMiddleware:
    """Staff must enrol multi-factor authentication before any other page or API call works.

    Once enrolled, allauth asks for the second factor at every sign-in, so a
    staff session in this portal has always passed MFA.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and user.is_portal_staff
            and not request.path.startswith(_MFA_EXEMPT_PREFIXES)
            and not user_has_mfa(user)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "error": {
                            "code": "mfa_required",
                            "message": str(_("Staff must enrol multi-factor authentication before using the API.")),
                            "fields": {},
                        }
                    },
                    status=403,
                )
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)
