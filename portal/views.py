from __future__ import annotations

from pprint import pformat

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import navigation, notifications, selectors, services
from .access import client_required, staff_required
from .errors import PortalError
from .exports import hk_times
from .forms import AuditFilterForm
from .permissions import Perm


@login_required
def home(request):
    if request.user.is_portal_staff:
        return redirect("workbench")
    return redirect("dashboard")


def _panels(request, registry):
    rendered = []
    for panel in registry:
        if panel.perm and not request.user.has_perm(panel.perm):
            continue
        result = panel.render(request)
        if result is not None:
            template, context = result
            rendered.append({"key": panel.key, "template": template, "context": context, "folded": bool(context.get("folded"))})
    # A panel with nothing left to do (a completed checklist) folds away below the others.
    return sorted(rendered, key=lambda p: p["folded"])


@client_required
def dashboard(request):
    return render(request, "portal/dashboard.html", {"panels": _panels(request, navigation.CLIENT_PANELS)})


@staff_required()
def workbench(request):
    return render(request, "portal/workbench.html", {"panels": _panels(request, navigation.STAFF_PANELS)})


@staff_required(Perm.AUDIT_VIEW)
def audit_trail(request):
    data = request.GET.copy()
    data.pop("page", None)
    form = AuditFilterForm(data or None)
    if form.is_bound and not form.is_valid():
        # Never show the unfiltered trail for a filter the user mistyped: show the error.
        events = selectors.audit_events().none()
    else:
        events = selectors.audit_events(**form.selector_filters())
    data.pop("before", None)
    data.pop("after", None)
    page = selectors.keyset_page(events, before=_id_param(request.GET, "before"), after=_id_param(request.GET, "after"))
    # Each row's cells as text here, once per page where the template would look up, translate and format per row.
    link, system = selectors.record_linker(reader=request.user), str(_("System"))
    for event in page:
        event.link = link(event.object_type, event.object_id)
        event.actor_shown = system if event.actor_id is None and event.actor_label == "system" else event.actor_label
        # Stored in UTC (the record); shown in Hong Kong time like every other time on the page.
        event.time_hk = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S")
        event.before_text = None if event.before is None else pformat(hk_times(event.before))
        event.after_text = None if event.after is None else pformat(hk_times(event.after))
    return render(request, "portal/audit_trail.html", {"form": form, "page": page, "query": data.urlencode()})


def _id_param(params, name) -> int | None:
    raw = params.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 else None


@login_required
def notification_list(request):
    page = Paginator(selectors.notifications_for(user=request.user).prefetch_related("deliveries__endpoint"), 25).get_page(request.GET.get("page"))
    for n in page:
        # In the reader's language now; the stored text stays the record of what was sent.
        n.shown_title, n.shown_body = notifications.notification_text(n)
    return render(request, "portal/notifications.html", {"page": page})


@login_required
@require_POST
def notifications_read(request):
    ids = request.POST.getlist("id")
    notifications.notifications_mark_read(user=request.user, ids=[int(i) for i in ids if i.isdigit()] or None)
    return redirect("notifications")


def _preferences_page(request, *, status=200, channel_form=None):
    return render(request, "portal/notification_preferences.html", {
        "rows": selectors.notification_preference_rows(user=request.user),
        "channels": list(selectors.notification_channels(user=request.user)),
        "channel_form": channel_form or {},
    }, status=status)


@login_required
def notification_preferences(request):
    """Each category's channels, chosen by the user; margin calls always go everywhere (shown, not editable)."""
    if request.method != "POST":
        return _preferences_page(request)
    from .models import OPTIONAL_CHANNELS

    # Only the categories the form listed: a locked category's boxes are disabled and never posted.
    choices = {c: {ch.value: f"pref:{c}:{ch.value}" in request.POST for ch in OPTIONAL_CHANNELS} for c in request.POST.getlist("category")}
    try:
        notifications.notification_preferences_set(user=request.user, choices=choices)
    except PortalError as exc:
        messages.error(request, exc.message)
        return _preferences_page(request, status=400)
    messages.success(request, _("Your notification choices were saved."))
    return redirect("notification-preferences")


@login_required
@require_POST
def notification_channel_add(request):
    form = {"label": request.POST.get("label", ""), "address": request.POST.get("address", "")}
    try:
        notifications.notification_channel_add(user=request.user, label=form["label"], address=form["address"])
    except PortalError as exc:
        messages.error(request, exc.message)
        return _preferences_page(request, status=400, channel_form=form)
    messages.success(request, _("The SMS or push address was added; new notifications go there too."))
    return redirect("notification-preferences")


@login_required
@require_POST
def notification_channel_deactivate(request, channel_id: int):
    from .errors import NotFoundError

    try:
        notifications.notification_channel_deactivate(user=request.user, channel_id=channel_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    messages.success(request, _("Nothing more will be sent to that address."))
    return redirect("notification-preferences")


@csrf_exempt
@require_POST
def demo_gateway(request):
    """The demo's stand-in for the broker's SMS/push gateway (served only in demo mode). Like a real
    gateway it refuses anything not signed with the webhook secret (401)."""
    import json

    from django.http.request import RawPostDataException

    from .notification_demo import gateway_answer, signed

    if not settings.DEMO:
        raise Http404
    try:
        body = request.body
    except RawPostDataException:  # a form post someone else's middleware already read: not a delivery
        body = b""
    signature = request.headers.get("X-Portal-Signature", "")
    if not signed(body=body, signature=signature):
        return JsonResponse({"error": "bad signature"}, status=401)
    try:
        address = str(json.loads(body)["address"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad payload"}, status=400)
    status = gateway_answer(body=body, signature=signature, address=address)
    return JsonResponse({"accepted": status == 200}, status=status)


@require_POST
def language_switch(request):
    """Switch the interface language; a signed-in user's choice is remembered on their profile."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if language in dict(settings.LANGUAGES) and check_for_language(language):
        if request.user.is_authenticated:
            services.user_set_language(user=request.user, language=language)
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    return response


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure is the answer we report
        return f"database unavailable: {exc.__class__.__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from .celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=settings.HEALTHZ_BROKER_TIMEOUT)
    except Exception as exc:
        return f"broker unavailable: {exc.__class__.__name__}: {exc}"
    return None


def admin_login(request):
    """The Django admin signs in through allauth, second factor included; its own password form is never served."""
    from django.contrib import admin
    from django.contrib.auth.views import redirect_to_login
    from django.core.exceptions import PermissionDenied
    from django.urls import reverse

    next_url = request.GET.get("next") or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("admin:index")
    if request.user.is_authenticated:
        if admin.site.has_permission(request):
            return redirect(next_url)
        raise PermissionDenied(_("Your role does not include the site administration."))
    return redirect_to_login(next_url, login_url=reverse("account_login"))


def page_not_found(request, exception):
    """404 in the API's one error shape under /api/, the normal page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": str(_("Not found.")), "fields": {}}}, status=404)
    return defaults.page_not_found(request, exception)


def _check_jobs() -> tuple[list[str], list[str]]:
    """Overdue periodic jobs (each a problem) and the ones an admin paused (reported, not a failure)."""
    from .scheduling import jobs_health

    try:
        jobs = jobs_health()
    except Exception as exc:
        return [f"periodic jobs unknown: {exc.__class__.__name__}: {exc}"], []
    problems = [job.problem for job in jobs if job.problem]
    paused = [job.name for job in jobs if not job.enabled]
    return problems, paused


@never_cache
def healthz(request):
    problems = [p for p in (_check_database(), _check_broker()) if p]
    if not problems:
        job_problems, paused = _check_jobs()
        problems += job_problems
    else:
        paused = []  # without a database the jobs cannot be judged
    if problems:
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    body = {"status": "ok", "database": "ok", "broker": "ok", "jobs": "ok"}
    if paused:
        body["paused_jobs"] = paused
    return JsonResponse(body)


