"""Client pages (read, acknowledge, receipts) and compliance reports."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal import exports
from portal.access import client_required, staff_required
from portal.errors import PortalError
from portal.permissions import Perm
from portal.products import Product

from . import selectors, services, text
from .forms import AcknowledgeForm, ClientSearchForm
from .models import Channel, language_or_default


def _product_sections(statuses: dict) -> list[dict]:
    return [
        {
            "product": Product(key),
            "documents": docs,
            "outstanding": sum(1 for d in docs if not d.acknowledged),
        }
        for key, docs in statuses.items()
    ]


@client_required
def index(request):
    """Per product, the documents it requires and which are outstanding."""
    sections = _product_sections(selectors.statuses_by_product(user=request.user))
    return render(request, "disclosures/index.html", {"sections": sections})


def _safe_next(request, value: str | None) -> str:
    """``value`` if it is a page of this site to return to, else ""."""
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return value
    return ""


def _with_next(url: str, next_url: str) -> str:
    if not next_url:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'next': next_url})}"


def _read_url(code: str, language: str, next_url: str = "") -> str:
    return _with_next(f"{reverse('disclosures:read', args=[code])}?lang={language}", next_url)


@client_required
def read(request, code: str):
    """The full current text in the chosen language. Opening it records a serving for acknowledgement."""
    version = selectors.current_version_by_code(code=code)
    if version is None:
        raise Http404
    language = language_or_default(request.GET.get("lang"))
    next_url = _safe_next(request, request.GET.get("next"))
    serving = services.version_serve(user=request.user, version=version, language=language, channel=Channel.WEB)
    acknowledgement = selectors.acknowledgement_of(user=request.user, version_id=version.pk)
    form = AcknowledgeForm(
        initial={
            "version_id": version.pk,
            "language": language,
            "content_hash": serving.content_hash,
            "serving_token": serving.token,
        }
    )
    other = [
        {"code": code_, "label": label, "url": _read_url(code, code_, next_url)}
        for code_, label in (("en", "English"), ("zh-hant", "繁體中文"))
        if code_ != language
    ]
    return render(
        request,
        "disclosures/read.html",
        {
            "version": version,
            "document": version.document,
            "title": version.document.title_in(language),
            "language": language,
            "html": version.html_in(language),
            "content_hash": serving.content_hash,
            "acknowledgement": acknowledgement,
            "form": form,
            "other_languages": other,
            "next_url": next_url,
        },
    )


@client_required
@require_POST
def acknowledge(request, code: str):
    form = AcknowledgeForm(request.POST)
    language = language_or_default(request.POST.get("language"))
    next_url = _safe_next(request, request.POST.get("next"))
    if not form.is_valid():
        messages.error(request, _("The acknowledgement form was incomplete. Please read the document again."))
        return redirect(_read_url(code, language, next_url))
    data = form.cleaned_data
    try:
        ack, created = services.acknowledgement_record(
            user=request.user,
            version_id=data["version_id"],
            language=data["language"],
            content_hash=data["content_hash"],
            serving_token=data["serving_token"],
            confirmed_read_and_understood=data["confirmed_read_and_understood"],
            confirmed_invited_to_ask_and_seek_advice=data["confirmed_invited_to_ask_and_seek_advice"],
            channel=Channel.WEB,
        )
    except PortalError as exc:
        # The service's message already says what to do; its field details are for API clients.
        messages.error(request, exc.message)
        return redirect(_read_url(code, language, next_url))
    if created:
        messages.success(request, _("Thank you. Your acknowledgement has been recorded."))
    else:
        messages.info(request, _("You had already acknowledged this version."))
    return redirect(_with_next(reverse("disclosures:receipt", args=[ack.pk]), next_url))


@client_required
def receipts(request):
    page = Paginator(selectors.acknowledgements_for(user=request.user), 25).get_page(request.GET.get("page"))
    return render(request, "disclosures/receipts.html", {"page": page})


@client_required
def receipt(request, ack_id: int):
    """Print-friendly: exactly the text acknowledged, in the language it was read, and when."""
    ack = selectors.acknowledgement_for(user=request.user, ack_id=ack_id)
    if ack is None:
        raise Http404
    continue_url = _safe_next(request, request.GET.get("next")) or reverse("disclosures:index")
    return render(request, "disclosures/receipt.html", {**_receipt_context(ack), "continue_url": continue_url})


def _receipt_context(ack) -> dict:
    version = ack.version
    return {
        "ack": ack,
        "version": version,
        "title": version.document.title_in(ack.language),
        "html": version.html_in(ack.language),
        "hash_verified": text.content_hash(version.body_in(ack.language)) == ack.content_hash,
    }


# --- Compliance -------------------------------------------------------------------------


@staff_required(Perm.DISCLOSURE_REPORT)
def compliance_index(request):
    form = ClientSearchForm(request.GET or None)
    clients = None
    if form.is_valid() and form.cleaned_data["q"]:
        clients = Paginator(selectors.clients_search(query=form.cleaned_data["q"]), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "disclosures/compliance_index.html",
        {"versions": selectors.versions_report(), "form": form, "clients": clients},
    )


@staff_required(Perm.DISCLOSURE_REPORT)
def compliance_version(request, version_id: int):
    version = selectors.version_for_report(version_id=version_id)
    if version is None:
        raise Http404
    stale_only = request.GET.get("stale") == "1"
    outstanding = None
    if version.is_current:
        outstanding = Paginator(
            selectors.version_outstanding_clients(version=version, stale_only=stale_only), 25
        ).get_page(request.GET.get("opage"))
    acks = Paginator(selectors.version_acknowledgements(version_id=version.pk), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "disclosures/compliance_version.html",
        {
            "version": version,
            "outstanding": outstanding,
            "stale_only": stale_only,
            "acks": acks,
            "fanout": selectors.fanout_of(version_id=version.pk),
        },
    )


ACK_COLUMNS_SPEC = [
    ("acknowledgement_id", "pk"),
    ("client_id", "client_id"),
    ("client_email", "client.email"),
    ("client_name", "client.full_name"),
    ("document_code", "version.document.code"),
    ("version", "version.number"),
    ("version_status", "version.status"),
    ("language", "language"),
    ("content_hash", "content_hash"),
    ("hash_matches_published_text", lambda ack: "yes" if ack.version.hash_in(ack.language) == ack.content_hash else "NO"),
    ("served_at", "serving.served_at"),
    ("acknowledged_at", "acknowledged_at"),
    ("channel", "channel"),
    ("confirmed_read_and_understood", "confirmed_read_and_understood"),
    ("confirmed_invited_to_ask_and_seek_advice", "confirmed_invited_to_ask_and_seek_advice"),
    ("ip_address", "ip_address"),
    ("user_agent", "user_agent"),
]
CSV_HEADER = [header for header, _getter in ACK_COLUMNS_SPEC]


@staff_required(Perm.DISCLOSURE_REPORT)
def compliance_version_export(request, version_id: int, fmt: str):
    """Every acknowledgement of one version, as CSV or XLSX (portal.exports: BOM, formula-safe, streamed)."""
    if fmt not in exports.FORMATS:
        raise Http404
    version = selectors.version_for_report(version_id=version_id)
    if version is None:
        raise Http404
    acks = selectors.version_acknowledgements(version_id=version.pk)
    exports.export_record(actor=request.user, list_name="disclosure-acknowledgements", fmt=fmt,
                          filters={"document": version.document.code, "version": version.number})
    return exports.export_response(
        fmt, acks, exports.columns(*ACK_COLUMNS_SPEC),
        basename=f"acknowledgements-{version.document.code}-v{version.number}", sheet_title=version.document.code,
    )


@staff_required(Perm.DISCLOSURE_REPORT)
def compliance_client(request, user_id: int):
    client = selectors.client_for_report(user_id=user_id)
    if client is None:
        raise Http404
    return render(
        request,
        "disclosures/compliance_client.html",
        {
            "client": client,
            "sections": _product_sections(selectors.statuses_by_product(user=client)),
            "acks": selectors.client_acknowledgements(user_id=client.pk),
            "servings": selectors.client_servings(user_id=client.pk)[:100],
        },
    )


@staff_required(Perm.DISCLOSURE_REPORT)
def compliance_receipt(request, ack_id: int):
    """The client's receipt as compliance sees it: the same text, with the evidence around it."""
    ack = selectors.acknowledgement_by_id(ack_id=ack_id)
    if ack is None:
        raise Http404
    return render(request, "disclosures/receipt.html", {**_receipt_context(ack), "staff_view": True})
