"""Onboarding pages for clients and staff. Views only call services and selectors."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin

from portal.access import client_required, staff_required
from portal.errors import PortalError
from portal.files import private_file_response
from portal.permissions import Perm
from portal.products import Product
from portal.selectors import audit_history

from . import scoring, selectors, services, training
from .forms import AttestationForm, DecisionForm, EvidenceForm, ProfileForm, QuizForm, ReasonForm, ReviewForm, StepForm
from .models import (
    RISK_PROFILE_LABELS,
    ClientProfile,
    PerpetualsAccessRequest,
    PIAttestation,
    PIState,
    SuitabilityAssessment,
    SuitabilityState,
)
from .policy import current_policy


def _form_errors(form, exc: PortalError) -> None:
    fields = exc.fields or {}
    placed = False
    for name, errors in fields.items():
        for error in errors if isinstance(errors, list) else [errors]:
            if name in form.fields:
                form.add_error(name, str(error))
                placed = True
    if not placed:
        form.add_error(None, exc.message)


# --- client pages ---------------------------------------------------------------------


def _checklist(request) -> selectors.Checklist:
    """The client's one checklist; each onboarding page shows its next step, so every save ends
    with where to go next."""
    facts = selectors.client_facts(user=request.user)
    return selectors.onboarding_checklist(
        va_margin=selectors.product_eligibility(user=request.user, product=Product.VA_MARGIN, facts=facts),
        perpetuals=selectors.product_eligibility(user=request.user, product=Product.PERPETUALS, facts=facts),
    )


@client_required
def overview(request):
    return render(request, "onboarding/overview.html", {"checklist": _checklist(request), "policy": current_policy()})


@client_required
def profile(request):
    instance = services.profile_get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=ClientProfile.objects.get(pk=instance.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.profile_update(user=request.user, data={name: form.cleaned_data[name] for name in form.Meta.fields})
        except PortalError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Your profile was saved."))
            return redirect("onboarding:profile")
    if form.errors:  # a long form: say at the top that something below needs correcting
        messages.error(request, _("Your profile was not saved. Please correct the highlighted fields."))
    return render(request, "onboarding/profile.html", {"form": form, "profile": instance, "checklist": _checklist(request)})


def _pi_context(request, attestation, form=None, evidence_form=None):
    policy = current_policy()
    problems = services.attestation_problems(attestation=attestation, policy=policy) if attestation and attestation.editable else []
    from disclosures.selectors import outstanding_documents

    return {
        "outstanding": outstanding_documents(user=request.user, product=Product.PROFESSIONAL_INVESTOR),
        "attestation": attestation,
        "form": form or AttestationForm(instance=attestation),
        "evidence_form": evidence_form or EvidenceForm(),
        "problems": problems,
        "policy": policy,
        "history": selectors.attestations_for(user=request.user).prefetch_related("evidence")[:10],
        "verified": next((a for a in selectors.attestations_for(user=request.user).filter(state=PIState.VERIFIED)[:1]), None),
        "checklist": _checklist(request),
        "verification_due": selectors.pi_verification_due(attestation=attestation, policy=policy) if attestation and attestation.state == PIState.SUBMITTED else None,
    }


@client_required
def professional_investor(request):
    attestation = selectors.open_attestation(user=request.user)
    if request.method != "POST":
        return render(request, "onboarding/pi.html", _pi_context(request, attestation))
    action = request.POST.get("action")
    try:
        if action == "save":
            form = AttestationForm(request.POST, instance=attestation)
            if not form.is_valid():
                return render(request, "onboarding/pi.html", _pi_context(request, attestation, form=form))
            data = {name: form.cleaned_data[name] for name in form.Meta.fields}
            if attestation is None:
                services.attestation_create(client=request.user, data=data)
            else:
                services.attestation_update(attestation_id=attestation.pk, actor=request.user, data=data)
            messages.success(request, _("Your attestation was saved. Upload your evidence, then submit it."))
        elif action == "upload" and attestation is not None:
            evidence_form = EvidenceForm(request.POST, request.FILES)
            if not evidence_form.is_valid():
                return render(request, "onboarding/pi.html", _pi_context(request, attestation, evidence_form=evidence_form))
            try:
                services.evidence_add(attestation_id=attestation.pk, actor=request.user, upload=evidence_form.cleaned_data["file"],
                                      kind=evidence_form.cleaned_data["kind"], issued_on=evidence_form.cleaned_data["issued_on"])
            except PortalError as exc:
                _form_errors(evidence_form, exc)
                return render(request, "onboarding/pi.html", _pi_context(request, attestation, evidence_form=evidence_form))
            messages.success(request, _("The document was uploaded."))
        elif action == "submit" and attestation is not None:
            services.attestation_submit(attestation_id=attestation.pk, actor=request.user)
            messages.success(request, _("Your attestation was submitted. Our staff will verify your evidence."))
        elif action == "withdraw":
            verified = selectors.attestations_for(user=request.user).filter(state=PIState.VERIFIED).first()
            if verified is None:
                raise Http404
            services.attestation_withdraw(attestation_id=verified.pk, actor=request.user)
            messages.success(request, _("You are no longer treated as a professional investor."))
        else:
            raise Http404
    except PortalError as exc:
        for message in (exc.fields or {}).get("problems", []) or [exc.message]:
            messages.error(request, message)
    return redirect("onboarding:pi")


@never_cache
@xframe_options_sameorigin
def evidence_file(request, evidence_id: int):
    """The evidence file, to its owner and to staff who review onboarding; 404 to anyone else."""
    if not request.user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login

        return redirect_to_login(request.get_full_path())
    evidence = selectors.evidence_viewable(user=request.user, evidence_id=evidence_id)
    if evidence is None:
        raise Http404
    return private_file_response(
        evidence.file.open("rb"),
        content_type=evidence.content_type,
        filename=f"evidence-{evidence.pk}.{evidence.file.name.rsplit('.', 1)[-1]}",
        inline=True,
    )


@client_required
def suitability(request):
    assessments = list(selectors.assessments_for(user=request.user)[:10])
    in_progress = next((a for a in assessments if a.state == SuitabilityState.IN_PROGRESS), None)
    latest = next((a for a in assessments if a.state in (SuitabilityState.COMPLETED, SuitabilityState.EXPIRED)), None)
    if request.method == "POST":
        try:
            assessment = services.assessment_start(client=request.user)
        except PortalError as exc:
            messages.error(request, exc.message)
            return redirect("onboarding:suitability")
        return redirect("onboarding:suitability-step", step=min(assessment.current_step, len(assessment.questionnaire.steps) - 1) + 1)
    reasons, warnings = (scoring.explain(latest.questionnaire.definition, latest.answers) if latest else ([], []))
    return render(request, "onboarding/suitability.html", {"in_progress": in_progress, "latest": latest, "history": assessments, "policy": current_policy(),
                                                           "reasons": reasons, "warnings": warnings,
                                                           "min_profile_label": RISK_PROFILE_LABELS[current_policy().va_margin_min_risk_profile],
                                                           "checklist": _checklist(request)})


@client_required
def suitability_step(request, step: int):
    assessment = selectors.assessments_for(user=request.user).filter(state=SuitabilityState.IN_PROGRESS).first()
    if assessment is None:
        return redirect("onboarding:suitability")
    steps = assessment.questionnaire.steps
    index = step - 1
    if not 0 <= index < len(steps):
        raise Http404
    if index > assessment.current_step:
        return redirect("onboarding:suitability-step", step=assessment.current_step + 1)
    language = translation.get_language()
    definition = steps[index]
    if request.method == "POST":
        form = StepForm(request.POST, step=definition, language=language)
        form.is_valid()
        try:
            services.assessment_save_step(assessment_id=assessment.pk, actor=request.user, step=index, data=form.raw_answers())
        except PortalError as exc:
            form._errors = form._errors or {}
            _form_errors(form, exc)
        else:
            if index + 1 < len(steps):
                return redirect("onboarding:suitability-step", step=step + 1)
            try:
                services.assessment_complete(assessment_id=assessment.pk, actor=request.user)
            except PortalError as exc:
                messages.error(request, exc.message)
                return redirect("onboarding:suitability-step", step=step)
            messages.success(request, _("Thank you. Your assessment is complete."))
            return redirect("onboarding:suitability")
    else:
        form = StepForm(initial=StepForm.initial_from(definition, assessment.answers), step=definition, language=language)
    from .scoring import text_in

    return render(request, "onboarding/suitability_step.html", {
        "assessment": assessment, "form": form, "step": step, "total": len(steps),
        "title": text_in(definition["title"], language), "intro": text_in(definition.get("intro", ""), language) if definition.get("intro") else "",
        "steps": [text_in(s["title"], language) for s in steps],
    })


@client_required
def training_module(request, module: str):
    definition = training.MODULES.get(module)
    if definition is None:
        raise Http404
    form = QuizForm(request.POST or None, module=definition)
    attempt = None
    if request.method == "POST" and form.is_valid():
        try:
            attempt = services.training_submit(client=request.user, module=module, answers=form.cleaned_data)
        except PortalError as exc:
            _form_errors(form, exc)
        else:
            if attempt.passed:
                messages.success(request, _("You passed with %(score)s%%. This is recorded as the basis of your knowledge.") % {"score": attempt.score_pct})
                return redirect("onboarding:overview")
            messages.error(request, _("You scored %(score)s%%; the pass mark is %(mark)s%%. Read the text again and retry.") % {"score": attempt.score_pct, "mark": attempt.pass_mark_pct})
    return render(request, "onboarding/training.html", {"module": definition, "form": form, "policy": current_policy(), "checklist": _checklist(request)})


@client_required
def perpetuals(request):
    if request.method == "POST":
        try:
            services.perpetuals_request(client=request.user)
        except PortalError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Your request was sent to an account officer."))
        return redirect("onboarding:perpetuals")
    eligibility = selectors.product_eligibility(user=request.user, product=Product.PERPETUALS)
    return render(request, "onboarding/perpetuals.html", {"eligibility": eligibility, "latest": selectors.latest_perpetuals_request(user=request.user)})


# --- staff pages -----------------------------------------------------------------------


@staff_required(Perm.WORKBENCH_ACCESS)
def staff_queue(request):
    raw = request.GET.get("page", "1")
    page = min(int(raw), 100_000) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0 else 1
    rows = selectors.onboarding_queue(user=request.user, limit=QUEUE_PAGE + 1, offset=(page - 1) * QUEUE_PAGE)
    return render(request, "onboarding/staff/queue.html", {
        "items": rows[:QUEUE_PAGE], "page": page, "has_next": len(rows) > QUEUE_PAGE,
        "total": selectors.onboarding_queue_total(user=request.user),
    })


QUEUE_PAGE = 50


@staff_required(Perm.ONBOARDING_REVIEW)
def staff_attestation(request, pk: int):
    attestation = get_object_or_404(PIAttestation.objects.select_related("client", "policy", "decided_by"), pk=pk)
    form = DecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        decision = form.cleaned_data["decision"]
        try:
            if decision == "verify":
                services.attestation_verify(attestation_id=pk, actor=request.user, checklist=form.checklist(), reason=form.cleaned_data["reason"])
            elif decision == "reject":
                services.attestation_reject(attestation_id=pk, actor=request.user, checklist=form.checklist(), reason=form.cleaned_data["reason"])
            else:
                services.attestation_return(attestation_id=pk, actor=request.user, checklist=form.checklist(), questions=form.cleaned_data["questions"])
        except PortalError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Decision recorded."))
            return redirect("onboarding:staff-queue")
    profile = ClientProfile.objects.filter(user=attestation.client).first()
    return render(request, "onboarding/staff/attestation.html", {
        "attestation": attestation, "evidence": list(attestation.evidence.all()), "form": form, "profile": profile,
        "problems": services.attestation_problems(attestation=attestation, policy=current_policy()),
        "history": audit_history(obj=attestation)[:50], "own_record": attestation.client_id == request.user.pk,
        "checklist": [(label, (attestation.checklist or {}).get(code, False)) for code, label in services.VERIFY_CHECKLIST],
    })


@staff_required(Perm.ONBOARDING_REVIEW)
def staff_client(request, user_id: int):
    profile = get_object_or_404(ClientProfile.objects.select_related("user", "margin_account_confirmed_by"), user_id=user_id)
    if request.method == "POST":
        try:
            services.profile_confirm_margin_account(profile_id=profile.pk, actor=request.user)
        except PortalError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Margin account confirmed."))
        return redirect("onboarding:staff-client", user_id=user_id)
    facts = selectors.client_facts(user=profile.user)
    return render(request, "onboarding/staff/client.html", {
        "profile": profile, "facts": facts,
        "attestations": selectors.attestations_for(user=profile.user)[:10],
        "assessments": selectors.assessments_for(user=profile.user)[:10],
        "history": audit_history(obj=profile)[:30],
    })


@staff_required(Perm.SUITABILITY_REVIEW)
def staff_assessment(request, pk: int):
    assessment = get_object_or_404(SuitabilityAssessment.objects.select_related("client", "questionnaire", "reviewed_by"), pk=pk)
    form = ReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.assessment_review(assessment_id=pk, actor=request.user, outcome=form.cleaned_data["outcome"], note=form.cleaned_data["note"])
        except PortalError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Review recorded."))
            return redirect("onboarding:staff-queue")
    questions = scoring.question_map(assessment.questionnaire.definition)

    def readable(answers: dict) -> list[tuple[str, str]]:
        """(question, answer) as the client saw them, in the questionnaire's order."""
        return [(scoring.text_in(q["label"]), scoring.answer_text(q, answers[code])) for code, q in questions.items()
                if answers.get(code) not in (None, "")]

    def money(figures: dict) -> list[tuple[str, str]]:
        return [(str(ClientProfile._meta.get_field(name).verbose_name), f"HK${Decimal(value):,.2f}" if value not in (None, "None") else "—")
                for name, value in figures.items()]

    reasons, _warnings = scoring.explain(assessment.questionnaire.definition, assessment.answers)
    return render(request, "onboarding/staff/assessment.html", {
        "assessment": assessment, "form": form, "answers": readable(assessment.answers), "reasons": reasons,
        "va_detail": readable(assessment.va_knowledge_detail), "derivative_detail": readable(assessment.derivative_knowledge_detail),
        "figures": money(assessment.financial_snapshot),
        "profile": ClientProfile.objects.filter(user=assessment.client).first(),
    })


@staff_required(Perm.PERPETUALS_GRANT)
def staff_perpetuals(request, pk: int):
    access = get_object_or_404(PerpetualsAccessRequest.objects.select_related("client"), pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            if request.POST.get("decision") == "grant":
                services.perpetuals_grant(request_id=pk, actor=request.user, reason=form.cleaned_data["reason"])
            else:
                services.perpetuals_refuse(request_id=pk, actor=request.user, reason=form.cleaned_data["reason"])
        except PortalError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Decision recorded."))
            return redirect("onboarding:staff-queue")
    eligibility = selectors.product_eligibility(user=access.client, product=Product.PERPETUALS)
    return render(request, "onboarding/staff/perpetuals.html", {"access": access, "form": form, "eligibility": eligibility})
