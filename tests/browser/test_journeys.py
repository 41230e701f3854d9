"""Each role's main journey, walked in Chromium in English and in Traditional Chinese at phone width.

At every step of every journey: nothing reaches past the viewport (``scrollWidth`` ≤ the window),
axe-core finds no serious or critical violation, a Chinese page leaves no English UI text, and the
step's real effect is there (the row changed in the database, the page says so). A step that fails
a check is collected, so one run names every defect of a journey, not only the first.

The demo data is seeded once for the module (seed_demo takes over a minute) and served by one live
server; each journey takes the records it works on from what the demo (or an earlier journey) left,
or makes them through the services first, so the two languages share one body and never act on the
same record twice. ``make screenshots`` keeps a picture of every step under test-artifacts/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from tests.browser import walk
from tests.browser.test_every_page import ALLOWED_PROPER_NAMES, DEMO_PASSWORD, data_phrases, demo_user
from tests.helpers import browser_sign_in

pytestmark = pytest.mark.browser

LANGUAGES = [pytest.param("en", id="en"), pytest.param("zh-hant", id="zh-hant")]


@pytest.fixture
def db():
    """Named ``db`` so that pytest-django sets up the test database for these tests (it looks for the
    name), without the per-test transaction the real fixture would wrap them in."""


@pytest.fixture(scope="module")
def journey_server(request, django_db_setup, django_db_blocker):
    """The demo book seeded once, and a live server over it, for every journey of the module.

    No test here runs in a transaction (the live server must see what the journeys write, and a
    transactional test's flush would take the seeded book away after the first journey): the module
    opens the database itself and, when it is done, empties it and puts the reference data back, as a
    transactional test would leave it."""
    from pytest_django.live_server_helper import LiveServer

    from portal.celery import app

    with django_db_blocker.unblock(), override_settings(
        DEMO=True,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    ):
        app.conf.task_always_eager = True
        app.conf.task_eager_propagates = True
        from django.db import connection

        assert connection.settings_dict["NAME"].startswith("test_"), "never seed or flush a database other than the test one"
        _reference_data_load()
        call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
        server = LiveServer("localhost:0")
        server._live_server_modified_settings.enable()
        try:
            yield server
        finally:
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", interactive=False, verbosity=0)
            _reference_data_load()
            app.conf.task_always_eager = False


def _reference_data_load() -> None:
    from importlib import import_module

    from django.apps import apps

    from disclosures.loader import load_shipped_documents
    from lending.collateral.services import load_shipped_instruments

    import_module("onboarding.migrations.0002_policy_and_questionnaire_v1").load(apps, None)
    load_shipped_documents(apps)
    load_shipped_instruments(apps)


@dataclass
class Journey:
    """One role's walk in one language: the page, and every check that failed on the way."""

    page: object
    language: str
    role: str
    viewport: dict
    allowed: object  # () → the data phrases as they stand (a journey types some of its own)
    problems: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    policies: dict = field(default_factory=dict)  # URL → the Content-Security-Policy it was served with

    def __post_init__(self):
        def seen(response):
            if response.request.resource_type == "document":
                self.policies[response.url] = response.headers.get("content-security-policy") or ""

        self.page.on("response", seen)

    def step(self, name: str, *, written_in: str | None = None) -> None:
        """The page as it stands now: it fits, axe finds nothing serious, no English is left in Chinese.

        ``written_in``: the page is a record kept in the language it was issued in (a statement), so it
        must say that language rather than the reader's."""
        page = self.page
        page.wait_for_load_state("load")
        where = f"[{self.role} {self.language}] step {len(self.steps) + 1} {name} ({page.url})"
        self.steps.append(name)
        width, viewport = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if width > viewport:
            self.problems.append(f"{where}: {width}px wide at {viewport}px — {walk.overflowing(page)}")
        # A document served sandboxed (a statement's HTML copy) runs no script, so axe cannot run in it.
        csp = self.policies.get(page.url, "")
        sandboxed = "sandbox" in csp and "allow-scripts" not in csp
        for violation in walk.axe_violations(page) if not sandboxed else []:
            self.problems.append(f"{where}: {violation}")
        lang = page.evaluate("document.documentElement.lang")
        if written_in is not None:
            if lang != written_in:
                self.problems.append(f"{where}: a record written in {written_in!r} says it is in {lang!r}")
        elif self.language == "zh-hant":
            if lang != "zh-hant":
                self.problems.append(f"{where}: the page is in {lang!r}")
            left = walk.english_left(walk.visible_text(page), self.allowed() + KNOWN_ENGLISH.get((self.role, name), []))
            if left:
                self.problems.append(f"{where}: English left: {left}")
        if os.environ.get("PORTAL_SCREENSHOTS"):
            width_name = "phone" if self.viewport == walk.PHONE else "desktop"
            walk.screenshot(page, f"journey-{self.role}-{self.language}-{width_name}-{len(self.steps):02d}-{name}")

    def click_and_wait(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)

    def done(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def journey(request, db, browser, journey_server):
    contexts = []

    def start(role: str, email: str, language: str, viewport=walk.PHONE) -> Journey:
        user = demo_user(email, language=language)
        context = browser.new_context(base_url=journey_server.url, locale="en-GB", viewport=viewport)
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        browser_sign_in(page, user, password=DEMO_PASSWORD)
        return Journey(page=page, language=language, role=role, viewport=viewport, allowed=lambda: _data(role) + ALLOWED_PROPER_NAMES)

    yield start
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        from tests.conftest import _save_browser_artifacts

        _save_browser_artifacts(browser, request.node.name)
    for context in contexts:
        context.close()


def _data(role: str) -> list[str]:
    """Text shown as it was recorded, in whatever language it was recorded in: what the demo's people
    typed (test_every_page's list, plus policy and margin-call reasons and notes, file names), what the
    audit trail recorded (who, and what the record was called then), and, for the administrator who
    writes them, the disclosure documents in both languages."""
    from django.apps import apps

    phrases = set(data_phrases())
    typed = [("portal.AuditEvent", ["object_repr", "actor_label"]), ("lending.CollateralPolicy", ["reason", "decision_note"]),
             ("risk.MarginCall", ["proposal_reason", "resolution_note"]), ("onboarding.PIEvidence", ["original_name"])]
    for label, fields in typed + (
            [("disclosures.Document", ["title_en"]), ("disclosures.DocumentVersion", ["body_en", "change_summary"])] if role == "admin" else []):
        for row in apps.get_model(label).objects.values_list(*fields).distinct():
            phrases.update(str(v) for v in row if v)
    for after in apps.get_model("portal.AuditEvent").objects.exclude(after=None).values_list("after", flat=True):
        if isinstance(after, dict):  # reasons and notes as typed, shown in a record's history
            phrases.update(str(after[k]) for k in ("reason", "proposal_reason", "resolution_note", "note") if after.get(k))
    for body in list(phrases):  # a document shown as lines: each line is the same data
        if "\n" in body:
            phrases.update(line.strip() for line in body.splitlines() if line.strip())
    return sorted(phrases, key=len, reverse=True)


# English the journeys still find in Chinese pages, each left to the module that owns it (see the notes
# for the lead); a journey fails on any English not listed here.
KNOWN_ENGLISH = {
    # Django admin: "Markdown" is the text format's name; a read-only boolean is Django's icon, whose alt text is "True"
    ("admin", "new-version"): ["Markdown"],
    ("admin", "published"): ["Markdown", "True"],
}


# --- the client -------------------------------------------------------------------------------------

CLIENT = "borrower00@demo.vamargin.hk"  # two active facilities, an authenticator enrolled, statements


@pytest.mark.parametrize("language", LANGUAGES)
def test_client_signs_in_reads_the_account_requests_a_drawdown_and_reads_statements_and_notifications(journey, language):
    from lending.models import Facility
    from lending.servicing.models import ServicingRequest, Statement

    j = journey("client", CLIENT, language)
    page = j.page
    j.step("dashboard")
    assert page.is_visible("[data-testid=account-summary]")
    facility = Facility.objects.filter(client__email=CLIENT, state="active").order_by("id").first()
    drawn_before = facility.drawn_balance

    j.click_and_wait(f"#panel-lending a[href='/lending/facilities/{facility.pk}/']")
    j.step("facility")
    assert facility.reference in page.inner_text("h1")

    j.click_and_wait(f"main a[href='/servicing/facilities/{facility.pk}/requests/']")
    j.step("requests")
    page.fill("#id_dd_amount", "1000")
    j.click_and_wait("[data-testid=request-drawdown]")
    j.step("drawdown-requested")
    request = ServicingRequest.objects.filter(facility=facility, kind="drawdown").order_by("-id").first()
    assert request is not None and request.state == "executed" and request.amount == Decimal("1000")
    assert request.reference in page.inner_text("[data-testid=requests]")
    facility.refresh_from_db()
    assert facility.drawn_balance == drawn_before + Decimal("1000")

    j.click_and_wait(f"main a[href='/lending/facilities/{facility.pk}/']")
    j.step("facility-after-drawdown")
    assert request.reference in page.inner_text("main")

    page.goto("/servicing/statements/")
    j.step("statements")
    link = page.locator("main a[href^='/servicing/statements/']:not([href$='/pdf/']):not([href*='preferences'])").first
    statement = Statement.objects.get(pk=int(link.get_attribute("href").rstrip("/").split("/")[-1]))
    with page.expect_navigation():
        link.click()
    j.step("statement", written_in=statement.language)
    assert statement.number in page.inner_text("body")

    page.goto("/notifications/")
    j.step("notifications")
    assert page.locator("main li, main tr").count() > 0
    j.done()


# --- the account officer ----------------------------------------------------------------------------

def _client_waiting_for_pi_review(language: str):
    """A client whose professional-investor evidence waits for an officer (the demo has one such
    client; each language's journey gets its own)."""
    from django.db import transaction

    from onboarding import demo as onboarding_demo
    from onboarding.models import PIAttestation
    from portal.demo import DemoPerson, person_ensure
    from portal.permissions import Role

    name = {"en": "Journey Cheung", "zh-hant": "Journey Lam"}[language]
    user, created = person_ensure(DemoPerson(f"journey.pi.{language}@demo.vamargin.hk", name, Role.CLIENT))
    if created:
        with transaction.atomic():
            onboarding_demo._mid_way(user)
    return user, PIAttestation.objects.filter(client=user).order_by("-id").first()


@pytest.mark.parametrize("language", LANGUAGES)
def test_officer_verifies_pi_evidence_approves_an_application_and_services_a_facility(journey, language):
    from lending.models import AppState, Facility, FacilityApplication, ScreeningStatus

    client, attestation = _client_waiting_for_pi_review(language)
    assert attestation.state == "submitted"
    application = (FacilityApplication.objects.filter(state=AppState.AWAITING_DECISION, recommended_limit__gt=0)
                   .exclude(screening_status=ScreeningStatus.PENDING).order_by("-recommendation", "id").first())
    assert application is not None, "the demo leaves applications awaiting a decision"

    j = journey("officer", "officer@demo.vamargin.hk", language)
    page = j.page
    j.step("workbench")
    j.click_and_wait("main a[href='/onboarding/staff/']")
    j.step("onboarding-queue")
    j.click_and_wait(f"main a[href='/onboarding/staff/attestations/{attestation.pk}/']")
    j.step("pi-evidence")
    page.check("input[name=decision][value=verify]")
    for box in page.locator("input[type=checkbox][name^=check_]").all():
        box.check()
    page.fill("textarea[name=reason]", "Custodian statement matches; portfolio above HK$8m.")
    j.click_and_wait("[data-testid=decide]")
    j.step("pi-verified")
    attestation.refresh_from_db()
    assert attestation.state == "verified"

    page.goto("/lending/staff/queue/?state=awaiting_decision")
    j.step("credit-queue")
    j.click_and_wait(f"main a[href='/lending/staff/applications/{application.pk}/']")
    j.step("credit-review")
    page.fill("#id_limit", str(application.recommended_limit))
    j.click_and_wait("[data-testid=approve]")
    j.step("decided")
    application.refresh_from_db()
    # Within the officer's authority: approved at once, or, where the review referred it, on to a credit manager.
    assert application.state in (AppState.APPROVED, AppState.AWAITING_SECOND_APPROVAL)
    assert application.decided_by.email == "officer@demo.vamargin.hk"
    with translation.override(language):
        assert str(application.get_state_display()) in page.inner_text("main")

    facility = Facility.objects.filter(state="active", drawn_balance__gt=1000).order_by("id").first()
    before = facility.drawn_balance
    page.goto(f"/lending/staff/facilities/{facility.pk}/")
    j.step("facility")
    page.check("input[name=action][value=repay]")
    page.fill("#id_amount", "500")
    page.fill("#id_reference", f"Journey repayment {language}")
    j.click_and_wait("form.panel button[type=submit]")
    j.step("repayment-recorded")
    facility.refresh_from_db()
    assert facility.drawn_balance == before - Decimal("500")
    j.done()


# --- the credit manager -----------------------------------------------------------------------------

def _awaiting_second_approval():
    """An application an officer approved above their authority (the demo has one; the officer's
    journey may leave another); else officer2 refers one now."""
    from lending import services
    from lending.models import AppState, FacilityApplication, ScreeningStatus
    from portal.models import User

    found = FacilityApplication.objects.filter(state=AppState.AWAITING_SECOND_APPROVAL).order_by("id").first()
    if found is not None:
        return found
    app = (FacilityApplication.objects.filter(state=AppState.AWAITING_DECISION, recommended_limit__gt=0)
           .exclude(screening_status=ScreeningStatus.PENDING).order_by("id").first())
    officer2 = User.objects.get(email="officer2@demo.vamargin.hk")
    return services.application_approve(actor=officer2, application_id=app.pk, limit=app.recommended_limit)


def _policy_proposal():
    from lending import selectors, services
    from lending.demo import POLICY_V1
    from lending.models import CollateralPolicy
    from portal.models import User

    found = CollateralPolicy.objects.filter(status="proposed").order_by("id").first()
    if found is not None:
        return found
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    assert selectors.policy_current() is not None
    return services.policy_propose(actor=officer, reason="Journey: class B haircut to 55%.",
                                   numbers=POLICY_V1 | {"securities_haircuts": {"A": "0.30", "B": "0.55", "C": "0.70"},
                                                        "marginable": {"entries": {"00700": "0.45"}}})


def _call_with_proposal():
    """An escalated margin call with a close-out or waiver proposed by someone else (the demo has a
    close-out; the second journey gets a waiver proposed by the officer)."""
    from lending.risk import services as risk_services
    from lending.risk.models import MarginCall
    from portal.models import User

    found = MarginCall.objects.filter(state="escalated").exclude(proposed_resolution="").order_by("id").first()
    if found is not None:
        return found
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    call = MarginCall.objects.filter(state="open").order_by("id").first()
    risk_services.margin_call_escalate(actor=officer, call_id=call.pk, reason="Journey: the cure deadline passed.")
    return risk_services.margin_call_propose(actor=officer, call_id=call.pk, resolution="waive",
                                             reason="Journey: the client repaid by bank transfer; the receipt is on file.")


@pytest.mark.parametrize("language", LANGUAGES)
def test_credit_manager_gives_second_approval_approves_a_policy_and_decides_a_call(journey, language):
    from lending.models import AppState

    application = _awaiting_second_approval()
    proposal = _policy_proposal()
    call = _call_with_proposal()

    j = journey("manager", "manager@demo.vamargin.hk", language)
    page = j.page
    j.step("workbench")
    page.goto("/lending/staff/queue/?state=awaiting_second_approval")
    j.step("second-approval-queue")
    j.click_and_wait(f"main a[href='/lending/staff/applications/{application.pk}/']")
    j.step("second-approval")
    assert page.is_visible("[data-testid=second-approval-why]")
    j.click_and_wait("[data-testid=second-approve]")
    j.step("second-approved")
    application.refresh_from_db()
    assert application.state == AppState.APPROVED and application.second_approver.email == "manager@demo.vamargin.hk"

    page.goto("/lending/staff/policy/")
    j.step("policy")
    form = page.locator(f"form:has(input[name=policy_id][value='{proposal.pk}'])")
    form.locator("input[name=note]").fill("Checked against the concentration report.")
    with page.expect_navigation():
        form.locator("button[name=action][value=approve]").click()
    j.step("policy-approved")
    proposal.refresh_from_db()
    assert proposal.status in ("approved", "scheduled") and proposal.decided_by.email == "manager@demo.vamargin.hk"

    page.goto("/risk/margin-calls/?state=escalated")
    j.step("escalated-calls")
    j.click_and_wait(f"main a[href='/risk/margin-calls/{call.pk}/']")
    j.step("margin-call")
    page.fill("form:has([data-testid=approve]) textarea[name=note]", "Agreed.")
    j.click_and_wait("[data-testid=approve]")
    j.step("call-decided")
    call.refresh_from_db()
    assert call.state == {"close_out": "closed_out", "waive": "waived"}[call.proposed_resolution]
    j.done()


# --- compliance -------------------------------------------------------------------------------------

@pytest.mark.parametrize("language,viewport", [pytest.param("en", walk.PHONE, id="en"), pytest.param("zh-hant", walk.PHONE, id="zh-hant"),
                                               pytest.param("en", walk.DESKTOP, id="en-desktop")])
def test_compliance_filters_and_exports_the_audit_trail_and_reads_a_disclosure_report(journey, language, viewport):
    from disclosures.models import DocumentVersion

    j = journey("compliance", "compliance@demo.vamargin.hk", language, viewport)
    page = j.page
    j.step("workbench")
    page.goto("/workbench/audit/")
    j.step("audit-trail")
    page.fill("input[name=action]", "lending.application")
    j.click_and_wait("main form button[type=submit]")
    j.step("audit-filtered")
    rows = page.locator("main table tbody tr")
    assert rows.count() > 0
    assert "lending.application" in rows.first.inner_text()
    export = page.locator("main a[href^='/reporting/export/audit.csv']")
    assert "action=lending.application" in export.get_attribute("href")
    with page.expect_download() as download:
        export.click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    body = text.splitlines()[1:]
    assert body and all("lending.application" in line for line in body if line.strip())

    page.goto("/disclosures/compliance/")
    j.step("disclosure-reports")
    version = DocumentVersion.objects.filter(status="published").order_by("id").first()
    j.click_and_wait(f"main a[href='/disclosures/compliance/versions/{version.pk}/']")
    j.step("disclosure-report")
    assert version.document.title_en in page.inner_text("main") or version.document.title_zh in page.inner_text("main")
    j.done()


# --- the administrator ------------------------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
def test_admin_writes_a_disclosure_version_previews_it_and_publishes_it(journey, language):
    from disclosures.models import DocumentVersion

    current = DocumentVersion.objects.filter(status="published").select_related("document").order_by("id").first()
    document = current.document

    j = journey("admin", "admin@demo.vamargin.hk", language)
    page = j.page
    page.goto("/admin/disclosures/documentversion/add/")
    j.step("new-version")
    page.select_option("select[name=document]", str(document.pk))
    page.fill("textarea[name=body_en]", current.body_en + f"\n\nCollateral is revalued every five minutes ({language}).")
    page.fill("textarea[name=body_zh]", current.body_zh + f"\n\n抵押品每五分鐘重新估值一次（{language}）。")
    page.fill("textarea[name=change_summary]", "Adds the revaluation frequency.")
    page.fill("textarea[name=change_summary_zh]", "加入重新估值的頻率。")
    j.click_and_wait("input[name=_save]")
    page.wait_for_selector("[data-testid=diff]")
    j.step("preview")
    assert "抵押品每五分鐘重新估值一次" in page.inner_text("[data-testid=preview-zh]")
    page.check("[data-testid=publish-confirm]")
    j.click_and_wait("[data-testid=publish-submit]")
    j.step("published")
    newest = DocumentVersion.objects.filter(document=document).order_by("-number").first()
    assert newest.number > current.number and newest.status == "published"
    current.refresh_from_db()
    assert current.status == "superseded"
    j.done()
