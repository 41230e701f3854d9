"""Servicing pages: statements (client and staff), document PDFs, the rates page."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from lending.collateral import selectors as custody_selectors
from lending.inputs import date_text
from portal.access import client_required, staff_required
from portal.errors import PortalError
from portal.files import private_file_response
from portal.mfa import user_has_mfa
from portal.pdf import PDF_MEDIA_TYPE, render_document
from portal.permissions import Perm

from . import requests as requests_services
from . import selectors, services
from .models import (
    AccrualDay,
    BaseRate,
    InterestPosting,
    ServicingPolicy,
    ServicingRequest,
    Statement,
    WithdrawalAddress,
)

# --- statements ---------------------------------------------------------------------------------------


@client_required
def statements(request):
    page = Paginator(selectors.statements_for_client(user=request.user), 25).get_page(request.GET.get("page"))
    return render(request, "servicing/statements.html", {"page": page, "staff_view": False})


@client_required
def statement_preferences(request):
    """A professional investor's election not to receive activity statements: make it, or revoke it."""
    from onboarding.selectors import client_facts

    if request.method == "POST":
        try:
            if request.POST.get("action") == "resume":
                services.activity_statements_resume(user=request.user)
                messages.success(request, _("Election revoked: activity statements will be sent again."))
            else:
                services.activity_statements_elect(user=request.user, confirm=bool(request.POST.get("confirm")))
                messages.success(request, _("Election recorded: no activity statements; monthly statements continue."))
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("servicing:statement-preferences")
    history = list(selectors.activity_statement_elections(user=request.user)[:20])
    current = next((e for e in history if e.revoked_at is None), None)
    facts = None if current else client_facts(user=request.user)
    return render(request, "servicing/statement_preferences.html", {
        "current": current, "history": history, "can_elect": bool(facts and facts.pi_valid), "election_text": services.ELECTION_TEXT,
    })


def _client_statement(request, pk) -> Statement:
    try:
        return selectors.statement_for_client(user=request.user, statement_id=pk)
    except Statement.DoesNotExist:
        raise Http404 from None


def _staff_statement(pk) -> Statement:
    try:
        return Statement.objects.select_related("facility").get(pk=pk)
    except Statement.DoesNotExist:
        raise Http404 from None


def _html(statement: Statement):
    return private_file_response(statement.html.encode("utf-8"), content_type="text/html; charset=utf-8",
                                 filename=f"{statement.number}.html", inline=True)


def _pdf(statement: Statement):
    return private_file_response(bytes(statement.pdf), content_type=PDF_MEDIA_TYPE, filename=f"{statement.number}.pdf")


@client_required
def statement_html(request, pk):
    return _html(_client_statement(request, pk))


@client_required
def statement_pdf(request, pk):
    return _pdf(_client_statement(request, pk))


@staff_required(Perm.FACILITY_OPERATE)
def staff_statements(request):
    facility_id = request.GET.get("facility")
    qs = selectors.statements_for_staff(facility_id=int(facility_id) if (facility_id or "").isdigit() else None)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "servicing/statements.html", {"page": page, "staff_view": True})


@staff_required(Perm.FACILITY_OPERATE)
def staff_statement_html(request, pk):
    return _html(_staff_statement(pk))


@staff_required(Perm.FACILITY_OPERATE)
def staff_statement_pdf(request, pk):
    return _pdf(_staff_statement(pk))


# --- facility letter and disclosure receipts as PDF -------------------------------------------------------


def _letter_response(facility):
    """The letter as a PDF in the client's language: the accepted text as a document, with its hash."""
    from .letter import letter_language

    application = facility.application
    doc = render_document("servicing/letter_pdf.html", {"application": application, "facility": facility},
                          language=letter_language(application.client))
    return private_file_response(doc.pdf, content_type=PDF_MEDIA_TYPE, filename=f"{application.reference}-facility-letter.pdf")


def _facility_with_letter(pk, client=None):
    from lending.models import Facility

    qs = Facility.objects.select_related("application__client")
    try:
        return qs.get(pk=pk, client=client) if client is not None else qs.get(pk=pk)
    except Facility.DoesNotExist:
        raise Http404 from None


def _letter_page(request, facility, *, staff_view: bool):
    import hashlib

    verified = hashlib.sha256(facility.application.letter_text.encode()).hexdigest() == facility.letter_sha256
    return render(request, "servicing/letter.html", {"facility": facility, "application": facility.application,
                                                     "hash_verified": verified, "staff_view": staff_view})


@client_required
def letter(request, pk):
    return _letter_page(request, _facility_with_letter(pk, client=request.user), staff_view=False)


@staff_required(Perm.FACILITY_OPERATE)
def staff_letter(request, pk):
    return _letter_page(request, _facility_with_letter(pk), staff_view=True)


@client_required
def letter_pdf(request, pk):
    return _letter_response(_facility_with_letter(pk, client=request.user))


@staff_required(Perm.FACILITY_OPERATE)
def staff_letter_pdf(request, pk):
    return _letter_response(_facility_with_letter(pk))


@client_required
def receipt_pdf(request, pk):
    """The client's disclosure acknowledgement receipt as a PDF: the text acknowledged, in its language."""
    from disclosures import selectors as disclosure_selectors
    from disclosures import text

    ack = disclosure_selectors.acknowledgement_for(user=request.user, ack_id=pk)
    if ack is None:
        raise Http404
    version = ack.version
    context = {"ack": ack, "version": version, "title": version.document.title_in(ack.language), "html": version.html_in(ack.language),
               "hash_verified": text.content_hash(version.body_in(ack.language)) == ack.content_hash}
    doc = render_document("servicing/receipt_pdf.html", context, language=ack.language)
    return private_file_response(doc.pdf, content_type=PDF_MEDIA_TYPE, filename=f"receipt-{ack.pk}.pdf")


# --- rates and servicing policy (staff) ----------------------------------------------------------------------


def _servicing_fields():
    from lending import policy_forms as pf

    return [
        pf.Field("overdue_margin", pf.PCT, places=6), pf.Field("arrangement_fee", pf.MONEY), pf.Field("liquidation_fee_rate", pf.PCT),
        pf.Field("client_drawdown_auto_max", pf.MONEY), pf.Field("staff_four_eyes_above", pf.MONEY), pf.Field("release_initial_level", pf.PCT),
        pf.Field("whitelist_cooling_off_hours", pf.WHOLE, _("hours")), pf.Field("withdrawal_officer_above", pf.MONEY),
        pf.Field("withdrawal_second_above", pf.MONEY), pf.Field("review_months", pf.WHOLE, _("months")),
        pf.Field("unpaid_interest_grace_days", pf.WHOLE, _("days")),
    ]


def _tier_margin_field():
    from lending import policy_forms as pf

    return pf.Field("tier_margin", pf.PCT, places=6)


def _tiers_from_post(post) -> dict:
    """The tier table (tier_name[] and tier_margin[] in percent a year, blank rows ignored) as the service expects it."""
    from lending import policy_forms as pf

    tiers = {}
    for name, value in zip(post.getlist("tier_name"), post.getlist("tier_margin"), strict=False):
        name = (name or "").strip()
        if name:
            tiers[name] = pf.from_form(_tier_margin_field(), value)
    return tiers


def _tier_rows(current, posted=None, blank: int = 2) -> list[dict]:
    from lending import policy_forms as pf

    if posted is not None:
        rows = [{"name": n, "margin": v} for n, v in zip(posted.getlist("tier_name"), posted.getlist("tier_margin"), strict=False) if n or v]
    else:
        tiers = (current.tier_margins if current is not None else None) or {"standard": "0.030000"}
        rows = [{"name": n, "margin": pf.pct(v)} for n, v in tiers.items()]
    return rows + [{"name": "", "margin": ""} for _i in range(blank)]


def _servicing_changes(proposal, current) -> list[dict]:
    """What a proposal changes against the version in force, in words and percentages: the base rate, each
    tier's margin, the default tier, then every number (``lending.policy_forms``)."""
    from lending import policy_forms as pf

    out = []
    if current is None or proposal.base_rate != current.base_rate:
        out.append({"label": pf.field_label(ServicingPolicy, "base_rate"),
                    "before": current.get_base_rate_display() if current else "—", "after": proposal.get_base_rate_display()})
    new, old = proposal.tier_margins or {}, (current.tier_margins if current is not None else {}) or {}
    for tier in sorted(set(new) | set(old)):
        before, after = old.get(tier), new.get(tier)
        if before is None or after is None or Decimal(str(before)) != Decimal(str(after)):
            out.append({"label": _("Margin of tier %(t)s") % {"t": tier}, "before": f"{pf.pct(before)}%" if before is not None else "—",
                        "after": f"{pf.pct(after)}%" if after is not None else _("removed")})
    if current is None or proposal.default_tier != current.default_tier:
        out.append({"label": pf.field_label(ServicingPolicy, "default_tier"),
                    "before": current.default_tier if current else "—", "after": proposal.default_tier})
    return out + pf.changes(ServicingPolicy, _servicing_fields(), proposal, current)


@staff_required(Perm.POLICY_PROPOSE)
def staff_rates(request):
    from lending import policy_forms as pf

    posted = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "propose":
                numbers = pf.numbers_from_post(_servicing_fields(), request.POST)
                numbers |= {"base_rate": request.POST.get("base_rate"), "tier_margins": _tiers_from_post(request.POST),
                            "default_tier": request.POST.get("default_tier", "").strip()}
                services.servicing_policy_propose(actor=request.user, numbers=numbers, reason=request.POST.get("reason", ""),
                                                  effective_from=request.POST.get("effective_from", ""))
            elif action in ("approve", "reject"):
                services.servicing_policy_decide(actor=request.user, policy_id=int(request.POST.get("policy_id", 0)),
                                                 approve=action == "approve", note=request.POST.get("note", ""))
            elif action == "fixing":
                effective = date_text(request.POST.get("effective_date"))
                rate = pf.from_form(pf.Field("rate", pf.PCT, places=6), request.POST.get("rate", ""))
                services.fixing_enter(actor=request.user, base_rate=request.POST.get("base_rate", ""), rate=rate,
                                      effective_date=effective, source=request.POST.get("source", ""))
            elif action in ("confirm", "reject_fixing"):
                services.fixing_decide(actor=request.user, fixing_id=int(request.POST.get("fixing_id", 0)), confirm=action == "confirm")
            else:
                raise PortalError("unknown_action", _("Unknown action."))
            messages.success(request, _("Recorded."))
            return redirect("servicing:staff-rates")
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
            if action != "propose":
                return redirect("servicing:staff-rates")
            posted = request.POST  # the form keeps what was typed
    current = selectors.servicing_policy_current()
    in_effect = selectors.fixings_in_effect()
    fields = _servicing_fields()
    columns = [(f, pf.field_label(ServicingPolicy, f.name)) for f in fields]
    policies = list(selectors.servicing_policies()[:20])
    for p in policies:
        p.tiers_shown = [(tier, f"{pf.pct(margin)}%", tier == p.default_tier) for tier, margin in (p.tier_margins or {}).items()]
        p.numbers = [pf.show(f, getattr(p, f.name)) for f, _label in columns]
        p.changes = _servicing_changes(p, current) if p.status in ("proposed", "scheduled") else []
    return render(request, "servicing/rates.html", {
        "current": current,
        "policies": policies,
        "columns": [label for _f, label in columns],
        "fixings": list(selectors.fixings(limit=30)),
        "in_effect_rows": [(label, in_effect.get(code)) for code, label in BaseRate.choices],
        "accrual_days": list(AccrualDay.objects.all()[:10]),
        "postings": list(InterestPosting.objects.all()[:6]),
        "base_rates": BaseRate.choices,
        "can_approve": request.user.has_perm(Perm.POLICY_APPROVE),
        "fields": pf.form_rows(ServicingPolicy, fields, current, posted),
        "tier_rows": _tier_rows(current, posted),
        "posted": posted,
        "base_rate_value": posted.get("base_rate") if posted is not None else (current.base_rate if current else ""),
        "default_tier_value": posted.get("default_tier") if posted is not None else (current.default_tier if current else "standard"),
    })


# --- client requests, withdrawal addresses ----------------------------------------------------------------


def _recent_mfa(request):
    """When the client last passed an MFA step (this session, allauth's records), if within the step-up window."""
    import time as _time
    from datetime import UTC, datetime

    from allauth.account.internal.flows.login import get_authentication_records

    records = [r for r in get_authentication_records(request, request.user) if r.get("method") == "mfa"]
    if not records:
        return None
    at = max(r["at"] for r in records)
    if _time.time() - at > requests_services.STEPUP_MAX_AGE.total_seconds():
        return None
    return datetime.fromtimestamp(at, tz=UTC)


@client_required
def facility_requests(request, pk):
    from django.urls import reverse

    from lending import selectors as lending_selectors
    from lending.models import Facility

    try:
        facility = lending_selectors.facility_for_client(user=request.user, facility_id=pk)  # with its positions
    except Facility.DoesNotExist:
        raise Http404 from None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "drawdown":
                req = requests_services.drawdown_request(user=request.user, facility_id=pk, amount=request.POST.get("amount", ""))
                messages.success(request, _("Drawdown %(ref)s executed.") % {"ref": req.reference} if req.state == "executed"
                                 else _("Drawdown %(ref)s sent to your account officer.") % {"ref": req.reference})
            elif action == "repayment":
                req = requests_services.repayment_notice(user=request.user, facility_id=pk, amount=request.POST.get("amount", ""), note=request.POST.get("note", ""))
                messages.success(request, requests_services.payment_instructions(req))
            elif action == "top_up":
                req = requests_services.top_up_request(user=request.user, facility_id=pk, instrument=request.POST.get("instrument", ""),
                                                       quantity=request.POST.get("quantity") or None,
                                                       description=request.POST.get("description", ""), custody_reference=request.POST.get("custody_reference", ""))
                messages.success(request, _("Top-up %(ref)s sent to your account officer.") % {"ref": req.reference})
            elif action == "release":
                position_id = int(request.POST.get("position_id") or 0)
                position = next((p for p in facility.positions.all() if p.pk == position_id), None)
                stepup = _recent_mfa(request)
                if position is not None and position.kind == "virtual_asset" and stepup is None and user_has_mfa(request.user):
                    messages.info(request, _("Confirm it is you with your authenticator, then send the withdrawal again."))
                    return redirect(f"{reverse('mfa_reauthenticate')}?next={reverse('servicing:facility-requests', args=[pk])}")
                req = requests_services.release_request(user=request.user, facility_id=pk, position_id=position.pk if position else 0,
                                                        quantity=request.POST.get("quantity") or None,
                                                        address_id=int(request.POST.get("address_id") or 0) or None, stepup_at=stepup)
                if req.state == "refused":
                    messages.error(request, req.refusal_text)
                else:
                    messages.success(request, _("Release %(ref)s: %(state)s.") % {"ref": req.reference, "state": req.get_state_display()})
            elif action == "cancel":
                requests_services.request_cancel(user=request.user, request_id=int(request.POST.get("request_id") or 0))
                messages.success(request, _("Cancelled."))
            else:
                raise PortalError("unknown_action", _("Unknown action."))
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        return redirect("servicing:facility-requests", pk=pk)
    positions = lending_selectors.facility_valued_now(facility=facility)  # available and utilisation at current prices, as the facility page
    return render(request, "servicing/facility_requests.html", {
        "facility": facility,
        "positions": positions,
        "holdings": [h for h in custody_selectors.custody_for_client(user=request.user) if h.free > 0],
        "addresses": list(WithdrawalAddress.objects.filter(client=request.user, state="active")),
        "requests": selectors.with_instruments(list(ServicingRequest.objects.filter(facility=facility).select_related("address").order_by("-id")[:30])),
        "blockers": requests_services.drawdown_blockers(facility=facility),
        "instructions": requests_services.payment_instructions(),
        "policy": selectors.servicing_policy_current(),
        "mfa_enrolled": user_has_mfa(request.user),
    })


@client_required
def addresses(request):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "revoke":
                requests_services.address_revoke(user=request.user, address_id=int(request.POST.get("address_id") or 0))
                messages.success(request, _("Address revoked."))
            else:
                requests_services.address_add(user=request.user, asset=request.POST.get("asset", ""), address=request.POST.get("address", ""),
                                              label=request.POST.get("label", ""))
                messages.success(request, _("Address added: open the link we emailed you to confirm it."))
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        return redirect("servicing:addresses")
    requests_services.addresses_activate_due()
    return render(request, "servicing/addresses.html", {
        "addresses": list(WithdrawalAddress.objects.filter(client=request.user).order_by("-id")[:50]),
        "policy": selectors.servicing_policy_current(),
    })


@client_required
def address_confirm(request, token):
    if request.method == "POST":
        try:
            entry = requests_services.address_confirm(user=request.user, token=token)
            messages.success(request, _("Confirmed. The address can be used from %(when)s.") % {"when": entry.active_from.astimezone().strftime("%Y-%m-%d %H:%M")})
        except PortalError as exc:
            messages.error(request, exc.message)
        return redirect("servicing:addresses")
    return render(request, "servicing/address_confirm.html", {"token": token})


@staff_required(Perm.FACILITY_OPERATE)
def staff_requests(request):
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            rid = int(request.POST.get("request_id") or 0)
            if action == "approve":
                requests_services.request_approve(actor=request.user, request_id=rid, received_reference=request.POST.get("received_reference", ""),
                                                  custody_reference=request.POST.get("custody_reference", ""))
            elif action == "refuse":
                requests_services.request_refuse(actor=request.user, request_id=rid, reason=request.POST.get("reason", ""))
            elif action == "broadcast":
                requests_services.withdrawal_broadcast(actor=request.user, request_id=rid, transfer_reference=request.POST.get("transfer_reference", ""))
            elif action == "instruction":
                requests_services.staff_instruction(actor=request.user, facility_id=int(request.POST.get("facility_id") or 0), kind=request.POST.get("kind", ""),
                                                    amount=request.POST.get("amount", ""), reference=request.POST.get("reference", ""))
            else:
                raise PortalError("unknown_action", _("Unknown action."))
            messages.success(request, _("Recorded."))
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        return redirect("servicing:staff-requests")
    open_states = ("requested", "awaiting_second")
    return render(request, "servicing/staff_requests.html", {
        "open": selectors.with_instruments(list(ServicingRequest.objects.filter(state__in=open_states)
                                                .select_related("client", "facility", "first_by", "address").order_by("id")[:100])),
        "recent": list(ServicingRequest.objects.exclude(state__in=open_states).select_related("client", "facility", "first_by", "second_by").order_by("-id")[:50]),
    })


@staff_required(Perm.FACILITY_OPERATE)
def staff_reviews(request):
    from . import lifecycle
    from .models import LimitChange

    if request.method == "POST":
        action = request.POST.get("action")
        try:
            fid = int(request.POST.get("facility_id") or 0)
            if action == "renew":
                lifecycle.facility_renew(actor=request.user, facility_id=fid, note=request.POST.get("note", ""))
            elif action == "limit":
                change = lifecycle.facility_limit_change(actor=request.user, facility_id=fid, new_limit=request.POST.get("new_limit", ""),
                                                         reason=request.POST.get("reason", ""))
                if change.state == "proposed":
                    messages.info(request, _("Above your authority: a credit manager approves the new limit."))
            elif action in ("approve_limit", "reject_limit"):
                lifecycle.limit_change_decide(actor=request.user, change_id=int(request.POST.get("change_id") or 0), approve=action == "approve_limit")
            elif action == "notice":
                lifecycle.facility_notice_to_close(actor=request.user, facility_id=fid, close_by=date_text(request.POST.get("close_by")),
                                                   reason=request.POST.get("reason", ""))
            elif action == "close":
                lifecycle.facility_wind_up(actor=request.user, facility_id=fid)
            else:
                raise PortalError("unknown_action", _("Unknown action."))
            messages.success(request, _("Recorded."))
        except (PortalError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        return redirect("servicing:staff-reviews")
    return render(request, "servicing/staff_reviews.html", {
        "due": list(lifecycle.facilities_due(within_days=60)[:100]),
        "pending": list(LimitChange.objects.filter(state="proposed").select_related("facility", "proposed_by")[:50]),
        "can_second": request.user.has_perm(Perm.APPLICATION_SECOND_APPROVE),
        "can_close": request.user.has_perm(Perm.FACILITY_SUSPEND),
    })
