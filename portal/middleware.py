from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .context import close_request_memo, meta_from_request, open_request_memo, reset_request_meta, set_request_meta
from .hygiene import CONTROL as _CONTROL
from .mfa import mfa_state


def bad_request(request, message, *, fields: dict | None = None):
    """400 in the API's error shape under /api/, the portal's 400 page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "invalid_input", "message": str(message), "fields": fields or {}}}, status=400)
    return render(request, "400.html", {"message": message}, status=400)


class InputHygieneMiddleware:
    """Refuse, before any view runs, a path or a query/form parameter carrying a NUL byte or another
    control character: no field of the portal accepts one, and a database cannot store NUL in text."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _CONTROL.search(request.path):
            return bad_request(request, _("The address contains a control character."))
        for source in (request.GET, request.POST if request.method == "POST" else None):
            if not source:
                continue
            for key, values in source.lists():
                if _CONTROL.search(key) or any(_CONTROL.search(v) for v in values):
                    name = _CONTROL.sub("?", key)[:50]
                    return bad_request(
                        request,
                        _("The parameter “%(name)s” contains a control character (such as a NUL byte).") % {"name": name},
                        fields={name: [str(_("Control characters are not allowed."))]},
                    )
        return self.get_response(request)


class RequestContextMiddleware:
    """Makes the caller's IP and user agent available to the audit service, and opens the read-once memo
    of a read-only request (``portal.context.read_once``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = set_request_meta(meta_from_request(request))
        memo = open_request_memo(request)
        try:
            return self.get_response(request)
        finally:
            close_request_memo(memo)
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
