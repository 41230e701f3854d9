"""Reads about onboarding, including the contracts other apps rely on:
``product_eligibility`` and ``client_snapshot``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.navigation import id_url
from portal.permissions import Perm
from portal.products import Product

from .models import (
    RISK_PROFILE_LABELS,
    ClientProfile,
    KnowledgeBasis,
    PerpetualsAccessRequest,
    PerpetualsState,
    PIAttestation,
    PIEvidence,
    PIState,
    ReviewStatus,
    SuitabilityAssessment,
    SuitabilityState,
)
from .policy import current_policy


@dataclass(frozen=True)
class Requirement:
    """One requirement of a product. An unmet one either has a ``fix_url`` (the step the client
    takes) or is ``waiting`` for our staff (nothing for the client to do, so no link)."""

    code: str
    label: str
    met: bool
    reason: str
    fix_url: str
    waiting: bool = False


def _waiting(code: str, label: str, reason: str) -> Requirement:
    return Requirement(code, label, False, reason, "", waiting=True)


@dataclass(frozen=True)
class Eligibility:
    product: str
    requirements: list[Requirement] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        return all(r.met for r in self.requirements)

    @property
    def unmet(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.met]

    def as_record(self) -> dict:
        return {
            "product": str(self.product),
            "eligible": self.eligible,
            "requirements": [{"code": r.code, "met": r.met, "reason": str(r.reason)} for r in self.requirements],
        }


@dataclass
class ClientFacts:
    """Everything eligibility needs about one client, loaded with a fixed number of queries."""

    profile: ClientProfile | None
    assessment: SuitabilityAssessment | None  # the latest completed/expired one, or None
    attestation: PIAttestation | None  # the latest decided or pending one
    verified: PIAttestation | None
    today: date

    @property
    def _assessment_in_date(self) -> bool:
        a = self.assessment
        return a is not None and a.state == SuitabilityState.COMPLETED and a.valid_until is not None and a.valid_until > self.today

    @property
    def assessment_valid(self) -> bool:
        return self._assessment_in_date and self.assessment.review_status != ReviewStatus.FLAGGED

    @property
    def assessment_under_review(self) -> bool:
        """A completed, unexpired assessment flagged for staff review: the next step is theirs."""
        return self._assessment_in_date and self.assessment.review_status == ReviewStatus.FLAGGED

    @property
    def pi_valid(self) -> bool:
        v = self.verified
        return v is not None and v.expires_on is not None and v.expires_on > self.today


def client_facts(*, user) -> ClientFacts:
    profile = ClientProfile.objects.filter(user=user).first()
    assessment = (
        SuitabilityAssessment.objects.filter(client=user)
        .exclude(state__in=[SuitabilityState.IN_PROGRESS, SuitabilityState.SUPERSEDED])
        .order_by("-completed_at", "-id")
        .first()
    )
    attestations = list(PIAttestation.objects.filter(client=user).order_by("-created_at", "-id")[:5])
    verified = next((a for a in attestations if a.state == PIState.VERIFIED), None)
    return ClientFacts(profile, assessment, attestations[0] if attestations else None, verified, timezone.localdate())


def _url(name: str, *args) -> str:
    return reverse(name, args=args)


def _margin_account(f: ClientFacts) -> Requirement:
    label = _("Securities margin client")
    p = f.profile
    if p is not None and p.margin_account_confirmed:
        return Requirement("margin_account", label, True, _("Margin account %(n)s is confirmed.") % {"n": p.margin_account_number}, "")
    if p is None or not p.margin_account_number:
        reason = _("VA financing is only for the firm's securities margin clients: tell us your securities margin account number.")
    else:
        return _waiting("margin_account", label, _("Waiting for your account officer to confirm your securities margin account %(n)s.") % {"n": p.margin_account_number})
    return Requirement("margin_account", label, False, reason, _url("onboarding:profile"))


def _profile_complete(f: ClientFacts) -> Requirement:
    label = _("Complete profile")
    if f.profile is not None and f.profile.is_complete:
        return Requirement("profile_complete", label, True, _("Your profile is complete."), "")
    if f.profile is None:
        reason = _("Fill in your client profile.")
    else:
        names = ", ".join(str(ClientProfile._meta.get_field(n).verbose_name) for n in f.profile.missing_fields)
        reason = _("Your profile is missing: %(fields)s.") % {"fields": names}
    return Requirement("profile_complete", label, False, reason, _url("onboarding:profile"))


def _suitability(f: ClientFacts) -> Requirement:
    label = _("Valid suitability assessment")
    a = f.assessment
    if f.assessment_valid:
        return Requirement("suitability", label, True, _("Valid until %(d)s.") % {"d": a.valid_until.isoformat()}, "")
    if a is None:
        reason = _("Answer the suitability questionnaire.")
    elif f.assessment_under_review:
        return _waiting("suitability", label, _("Our staff are reviewing your suitability assessment; we will contact you if anything is needed."))
    else:
        reason = _("Your suitability assessment is no longer valid; answer the questionnaire again.")
    return Requirement("suitability", label, False, reason, _url("onboarding:suitability"))


def _risk_profile(f: ClientFacts, minimum: int) -> Requirement:
    label = _("Risk profile allows VA margin financing")
    wanted = {"n": minimum, "label": RISK_PROFILE_LABELS[minimum]}
    a = f.assessment
    if f.assessment_under_review:
        return _waiting("risk_profile", label, _("Waiting for the review of your suitability assessment, which sets your risk profile."))
    if not f.assessment_valid or a.risk_profile is None:
        return Requirement("risk_profile", label, False, _("VA margin financing needs a valid assessment with a risk profile of at least %(n)s (%(label)s).") % wanted, _url("onboarding:suitability"))
    if a.risk_profile >= minimum:
        return Requirement("risk_profile", label, True, _("Your risk profile is %(n)s (%(label)s).") % {"n": a.risk_profile, "label": a.risk_profile_label}, "")
    return Requirement(
        "risk_profile", label, False,
        _("VA margin financing needs a risk profile of at least %(n)s (%(label)s); yours is %(mine)s (%(mine_label)s).") % {**wanted, "mine": a.risk_profile, "mine_label": a.risk_profile_label},
        _url("onboarding:suitability"),
    )


def _knowledge(f: ClientFacts, *, code: str, flag: str, basis: str, label: str, module: str, what: str) -> Requirement:
    a = f.assessment
    if f.assessment_under_review:
        return _waiting(code, label, _("Waiting for the review of your suitability assessment, which assesses your knowledge of %(what)s.") % {"what": what})
    if not f.assessment_valid:
        return Requirement(code, label, False, _("Answer the suitability questionnaire: it assesses your knowledge of %(what)s.") % {"what": what}, _url("onboarding:suitability"))
    if getattr(a, flag):
        return Requirement(code, label, True, _("Basis: %(basis)s.") % {"basis": KnowledgeBasis(getattr(a, basis)).label}, "")
    return Requirement(code, label, False, _("We found no knowledge of %(what)s: read the short training and pass its quiz.") % {"what": what}, _url("onboarding:training", module))


def _professional_investor(f: ClientFacts) -> Requirement:
    label = _("Verified professional investor")
    if f.pi_valid:
        return Requirement("professional_investor", label, True, _("Verified until %(d)s.") % {"d": f.verified.expires_on.isoformat()}, "")
    latest = f.attestation
    if latest is None:
        reason = _("Perpetual contracts are only for professional investors: submit an attestation with evidence.")
    elif latest.state == PIState.SUBMITTED:
        return _waiting("professional_investor", label, _("Waiting for your account officer to verify your attestation."))
    elif latest.state == PIState.RETURNED:
        reason = _("Our staff returned your attestation with questions.")
    elif latest.state == PIState.DRAFT:
        reason = _("Finish and submit your professional-investor attestation.")
    elif latest.state == PIState.REJECTED:
        reason = _("Your attestation was not accepted; you may submit a new one.")
    else:
        reason = _("Your professional-investor status has ended; submit a new attestation.")
    return Requirement("professional_investor", label, False, reason, _url("onboarding:pi"))


def _disclosures(user, product, outstanding=None) -> Requirement:
    from disclosures.selectors import outstanding_documents

    label = _("Risk disclosures acknowledged")
    if outstanding is None:
        outstanding = outstanding_documents(user=user, product=product)
    if not outstanding:
        return Requirement("disclosures", label, True, _("You have acknowledged the current risk disclosure statements."), "")
    titles = ", ".join(f"{d.title} (v{d.version_number})" for d in outstanding)
    return Requirement("disclosures", label, False, _("Read and acknowledge: %(titles)s.") % {"titles": titles}, outstanding[0].url)


def product_eligibility(*, user, product, facts: ClientFacts | None = None, outstanding: list | None = None) -> Eligibility:
    """Which requirements ``user`` meets for ``product``, each with a reason and a link to fix it.

    ``facts`` (from ``client_facts``) and ``outstanding`` (disclosures'
    ``outstanding_documents(user=user, product=product)``) let a caller that already loaded them
    avoid loading them again.
    """
    product = Product(product)
    f = facts or client_facts(user=user)
    if product == Product.VA_MARGIN:
        policy = current_policy()
        requirements = [
            _margin_account(f),
            _profile_complete(f),
            _suitability(f),
            _risk_profile(f, policy.va_margin_min_risk_profile),
            _knowledge(f, code="va_knowledge", flag="va_knowledge", basis="va_knowledge_basis", label=_("Knowledge of virtual assets"), module="va", what=_("virtual assets")),
            _disclosures(user, product, outstanding),
        ]
    elif product == Product.PERPETUALS:
        requirements = [
            _professional_investor(f),
            _knowledge(f, code="derivative_knowledge", flag="derivative_knowledge", basis="derivative_knowledge_basis", label=_("Knowledge of derivatives"), module="derivatives", what=_("derivatives")),
            _disclosures(user, product, outstanding),
        ]
    else:  # being treated as a PI: a profile and the PI risk disclosure
        requirements = [_profile_complete(f), _disclosures(user, product, outstanding)]
    return Eligibility(product=product.value, requirements=requirements)


def disclosure_statuses_for_request(*, request) -> dict:
    """The signed-in client's risk-disclosure statuses for every product, loaded once per request (one query)."""
    memo = request.__dict__.setdefault("_portal_eligibility", {})
    if "statuses" not in memo:
        from disclosures.selectors import statuses_by_product

        memo["statuses"] = statuses_by_product(user=request.user)
    return memo["statuses"]


def eligibility_for_request(*, request, product) -> Eligibility:
    """``product_eligibility`` for the signed-in client, computed once per request: the dashboard's checklist,
    lending panel and disclosures panel all ask, and each answer costs the client's facts and disclosures."""
    memo = request.__dict__.setdefault("_portal_eligibility", {})
    product = Product(product)
    if product not in memo:
        if "facts" not in memo:
            memo["facts"] = client_facts(user=request.user)
        statuses = disclosure_statuses_for_request(request=request)
        outstanding = [s for s in statuses.get(product.value, []) if not s.acknowledged]
        memo[product] = product_eligibility(user=request.user, product=product, facts=memo["facts"], outstanding=outstanding)
    return memo[product]


@dataclass(frozen=True)
class Checklist:
    """The client's one onboarding checklist: the VA margin requirements in the order that works
    (profile, margin account, questionnaire and what it decides, disclosures), then what perpetual
    contracts add for a professional investor, which is optional."""

    steps: list[Requirement]
    optional: list[Requirement]

    @property
    def done(self) -> int:
        return sum(1 for r in self.steps if r.met)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def next_step(self) -> Requirement | None:
        """The first requirement the client can act on now (waiting ones are our staff's)."""
        return next((r for r in self.steps + self.optional if not r.met and not r.waiting), None)

    @property
    def waiting(self) -> list[Requirement]:
        return [r for r in self.steps + self.optional if r.waiting]


CHECKLIST_ORDER = ["profile_complete", "margin_account", "suitability", "risk_profile", "va_knowledge", "disclosures"]


def onboarding_checklist(*, va_margin: Eligibility, perpetuals: Eligibility) -> Checklist:
    """One checklist from the two products' eligibility, each requirement once."""
    by_code = {r.code: r for r in va_margin.requirements}
    steps = [by_code[code] for code in CHECKLIST_ORDER if code in by_code]
    steps += [r for r in va_margin.requirements if r.code not in CHECKLIST_ORDER]
    optional = [r for r in perpetuals.requirements if r.code not in by_code or r.code == "disclosures"]
    return Checklist(steps=steps, optional=optional)


def client_snapshot(*, user, facts: ClientFacts | None = None) -> dict | None:
    """Facts for the credit review, JSON-safe; None if the client has no profile.

    ``facts`` (from ``client_facts(user=user)``) saves loading them again."""
    f = facts or client_facts(user=user)
    p = f.profile
    if p is None:
        return None
    a = f.assessment if f.assessment_valid else None
    policy = current_policy()
    return {
        "client_type": p.client_type,
        "legal_name": p.legal_name,
        "other_names": list(p.other_names or []),
        "date_of_birth": p.date_of_birth.isoformat() if p.date_of_birth else None,
        "nationality": p.nationality,
        "margin_account_number": p.margin_account_number,
        "margin_account_confirmed": p.margin_account_confirmed,
        "annual_income": str(p.annual_income) if p.annual_income is not None else "0.00",
        "net_worth": str(p.net_worth) if p.net_worth is not None else "0.00",
        "liquid_assets": str(p.liquid_assets) if p.liquid_assets is not None else "0.00",
        "risk_profile": a.risk_profile if a else None,
        "risk_profile_label": a.risk_profile_label if a else None,
        "suitability_valid_until": a.valid_until.isoformat() if a else None,
        "va_knowledge": bool(a and a.va_knowledge),
        "va_knowledge_basis": (a.va_knowledge_basis or None) if a else None,
        "derivative_knowledge": bool(a and a.derivative_knowledge),
        "derivative_knowledge_basis": (a.derivative_knowledge_basis or None) if a else None,
        "professional_investor": f.pi_valid,
        "pi_valid_until": f.verified.expires_on.isoformat() if f.pi_valid else None,
        "va_exposure_limit_pct": str(policy.va_exposure_limit_pct(a.risk_profile if a else None)),
    }


def perpetuals_access_granted(*, user) -> bool:
    return PerpetualsAccessRequest.objects.filter(client=user, state=PerpetualsState.GRANTED).exists()


def latest_perpetuals_request(*, user) -> PerpetualsAccessRequest | None:
    return PerpetualsAccessRequest.objects.filter(client=user).order_by("-requested_at", "-id").first()


# --- client's own records ------------------------------------------------------------------


def pi_verification_due(*, attestation: PIAttestation, policy=None) -> date | None:
    """The day by which our staff aim to verify a submitted attestation (firm service level, in
    Hong Kong business days from the day it was submitted)."""
    if attestation.submitted_at is None:
        return None
    from lending.risk.revaluation import hk_business_day_after

    policy = policy or current_policy()
    return hk_business_day_after(timezone.localdate(attestation.submitted_at), policy.pi_review_business_days)


def attestations_for(*, user) -> QuerySet[PIAttestation]:
    return PIAttestation.objects.filter(client=user).order_by("-created_at", "-id")


def open_attestation(*, user) -> PIAttestation | None:
    return attestations_for(user=user).filter(state__in=[PIState.DRAFT, PIState.RETURNED, PIState.SUBMITTED]).first()


def assessments_for(*, user) -> QuerySet[SuitabilityAssessment]:
    return SuitabilityAssessment.objects.filter(client=user).select_related("questionnaire").order_by("-started_at", "-id")


def evidence_viewable(*, user, evidence_id: int) -> PIEvidence | None:
    """The evidence file if ``user`` may see it: its owner, or staff who review onboarding
    (never on their own client record). None otherwise, so callers answer 404."""
    evidence = PIEvidence.objects.select_related("attestation").filter(pk=evidence_id).first()
    if evidence is None or not user.is_authenticated:
        return None
    client_id = evidence.attestation.client_id
    if client_id == user.pk and user.is_client:
        return evidence
    if user.is_portal_staff and user.has_perm(Perm.ONBOARDING_REVIEW) and client_id != user.pk:
        return evidence
    return None


# --- staff -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    kind: str  # "attestation" | "assessment" | "perpetuals" | "margin_account"
    kind_label: str
    pk: int
    client_name: str
    client_email: str
    waiting_since: object
    summary: str
    url: str


def _queue_sources(user):
    """(kind, queryset, waiting-since field) for each kind of work ``user`` may act on, own record excluded."""
    sources = []
    if user.has_perm(Perm.ONBOARDING_REVIEW):
        sources.append(("attestation", PIAttestation.objects.filter(state=PIState.SUBMITTED).exclude(client=user).select_related("client"), "submitted_at"))
        sources.append(("margin_account", ClientProfile.objects.filter(margin_account_confirmed_at__isnull=True).exclude(margin_account_number="")
                        .exclude(user=user).select_related("user"), "updated_at"))
    if user.has_perm(Perm.SUITABILITY_REVIEW):
        sources.append(("assessment", SuitabilityAssessment.objects.filter(review_status=ReviewStatus.FLAGGED, state=SuitabilityState.COMPLETED)
                        .exclude(client=user).select_related("client"), "flagged_at"))
    if user.has_perm(Perm.PERPETUALS_GRANT):
        sources.append(("perpetuals", PerpetualsAccessRequest.objects.filter(state=PerpetualsState.REQUESTED).exclude(client=user).select_related("client"),
                        "requested_at"))
    return sources


# Only what an item shows, as plain values (id, client's name and email, waiting since, the summary's fields):
# not each attestation's checklist and assessment record (JSON) or a profile's every KYC field, and no model
# instance built for each of up to a page of rows per kind.
QUEUE_FIELDS = {
    "attestation": ("id", "client__full_name", "client__email", "submitted_at", "category", "basis", "declared_amount"),
    "margin_account": ("user_id", "user__full_name", "user__email", "updated_at", "margin_account_number"),
    "assessment": ("id", "client__full_name", "client__email", "flagged_at", "flag_reasons"),
    "perpetuals": ("id", "client__full_name", "client__email", "requested_at"),
}


def onboarding_queue_total(*, user) -> int:
    """How many items are waiting for ``user`` (one COUNT over the union)."""
    sources = _queue_sources(user)
    if not sources:
        return 0
    parts = [qs.order_by().values("pk") for _kind, qs, _field in sources]
    return parts[0].union(*parts[1:], all=True).count() if len(parts) > 1 else parts[0].count()


def onboarding_queue(*, user, limit: int | None = None, offset: int = 0) -> list[QueueItem]:
    """Work waiting for staff, oldest first: submitted PI attestations, flagged assessments,
    perpetual-contracts requests and unconfirmed margin accounts — what ``user`` may act on.

    With ``limit``, the page ``offset``…``offset + limit``: each kind reads at most that many rows
    (its oldest), so a page costs the same however long the queue is. Four queries at most."""
    items: list[QueueItem] = []
    wanted = offset + limit if limit else None
    labels = {
        "attestation": _("Professional-investor attestation"), "margin_account": _("Margin account to confirm"),
        "assessment": _("Flagged suitability assessment"), "perpetuals": _("Perpetual-contracts access request"),
    }
    urls = {
        "attestation": id_url("onboarding:staff-attestation"), "margin_account": id_url("onboarding:staff-client"),
        "assessment": id_url("onboarding:staff-assessment"), "perpetuals": id_url("onboarding:staff-perpetuals"),
    }
    categories, bases = dict(PIAttestation._meta.get_field("category").flatchoices), dict(PIAttestation._meta.get_field("basis").flatchoices)
    categories, bases = {k: str(v) for k, v in categories.items()}, {k: str(v) for k, v in bases.items()}

    for kind, qs, field_name in _queue_sources(user):
        rows = qs.order_by(field_name, "id").values_list("pk", *QUEUE_FIELDS[kind])
        if wanted is not None:
            rows = rows[:wanted]
        label, url = labels[kind], urls[kind]
        for pk, link_id, full_name, email, since, *shown in rows:
            if kind == "attestation":
                category, basis, amount = shown
                summary = f"{categories.get(category, category)} · {bases.get(basis, basis)} · HK${amount:,.2f}"
            elif kind == "margin_account":
                summary = shown[0]
            elif kind == "assessment":
                summary = "; ".join(shown[0])[:160]
            else:
                summary = ""
            items.append(QueueItem(kind, label, pk, full_name or email, email, since, summary, url(link_id)))
    items.sort(key=lambda i: (i.waiting_since, i.kind, i.pk))
    return items[offset:wanted] if wanted is not None else items
