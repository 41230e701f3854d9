"""Every page each demo user can reach, walked in Chromium: it fits a 390 px phone, axe-core finds no
serious or critical violation, the browser reports no script or console error while it loads (a
style refused by the CSP, a resource that fails), and in Traditional Chinese no English UI text is left.

The demo data is the richest set of states the portal has (fully onboarded, mid-way and new clients,
facilities in every band, open margin calls, statements, complaints), so the walk is over it.
"""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

from lending.servicing.models import Statement
from tests.browser import walk
from tests.helpers import browser_sign_in

CLIENTS = [
    "lee.kaying@demo.vamargin.hk",  # fully onboarded, facilities, statements
    "wong.siuming@demo.vamargin.hk",  # mid-way, waiting for staff
    "chan.taiman@demo.vamargin.hk",  # new
    "harbourview.capital@demo.vamargin.hk",  # corporate
]
STAFF = ["officer@demo.vamargin.hk", "manager@demo.vamargin.hk", "compliance@demo.vamargin.hk"]
DEMO_PASSWORD = "Demo-Portal-2026!"


@pytest.fixture
def demo_book(settings):
    settings.DEMO = True
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115


def demo_user(email: str, *, language: str | None = None):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.utils import decrypt

    from portal.models import User
    from portal.services import user_set_language

    user = User.objects.get(email=email)
    if language:
        user_set_language(user=user, language=language)
    auth = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if auth is not None:
        user.totp_secret = decrypt(auth.data["secret"])
    return user


def data_phrases() -> list[str]:
    """Text the demo's people typed or the back office sent (names, addresses, instruments, free-text
    reasons): data shown as entered, in whatever language it was entered in, not UI."""
    from django.apps import apps

    phrases: set[str] = set()
    for label, fields in DATA_FIELDS.items():
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        names = [f for f in fields if any(x.name == f for x in model._meta.get_fields())]
        for row in model.objects.values_list(*names):
            phrases.update(str(v) for v in row if v)
    return sorted(phrases, key=len, reverse=True)


DATA_FIELDS = {
    "portal.User": ["full_name", "email"],
    "onboarding.ClientProfile": ["legal_name", "nationality", "residential_address", "employer", "occupation", "source_of_wealth"],
    "collateral.Instrument": ["name_en", "name_zh", "issuer", "sector"],
    "lending.Facility": ["suspended_reason", "conditions"],
    "servicing.FacilityTerms": ["tier"],  # pricing-tier names as the rates policy names them
    "lending.FacilityTransaction": ["reference", "narrative"],
    "lending.FacilityApplication": ["purpose", "conditions", "screening_note"],  # compliance's note on a screening match
    "onboarding.PIAttestation": ["decision_reason", "return_questions"],
    "onboarding.PerpetualsAccessRequest": ["decision_reason", "lapse_reason"],
    "disclosures.Serving": ["user_agent"],
    "disclosures.Acknowledgement": ["user_agent"],
    "servicing.WithdrawalAddress": ["label"],  # the client's own name for a whitelisted address
    "servicing.ActivityStatementElection": ["text"],  # the election as the client made it, in its language
}


def _walk_all(browser, live_server, emails, *, viewport, language, visit, shared_routes=True):
    routes: set = set()
    visits = []
    for email in emails:
        user = demo_user(email, language=language)
        context = browser.new_context(base_url=live_server.url, locale="en-GB", viewport=viewport)
        context.set_default_timeout(20_000)
        page = context.new_page()
        browser_sign_in(page, user, password=DEMO_PASSWORD)
        start = "/workbench/" if user.is_portal_staff else "/dashboard/"
        visits += walk.walk(page, start, seen_routes=routes if shared_routes else set(), visit=visit)
        context.close()
    return visits


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_client_page_fits_a_phone_and_has_no_serious_axe_violation(browser, live_server, demo_book):
    problems = []

    def check(page, record):
        walk.measure_overflow(page, record)
        if record.scroll_width > record.viewport:
            problems.append(f"{record.url}: {record.scroll_width}px wide at {record.viewport}px — {walk.overflowing(page)}")
        for violation in walk.axe_violations(page, record):
            problems.append(f"{record.url}: {violation}")
        problems.extend(f"{record.url}: {error}" for error in record.errors)

    visits = _walk_all(browser, live_server, CLIENTS, viewport=walk.PHONE, language="en", visit=check)
    routes = {v.route for v in visits}
    assert {"dashboard", "onboarding:overview", "lending:client-home", "lending:apply", "lending:facility", "disclosures:read"} <= routes
    assert not problems, "\n".join(problems)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_client_page_in_traditional_chinese_has_no_english_left(browser, live_server, demo_book):
    allowed = data_phrases() + ALLOWED_PROPER_NAMES
    problems = []

    def check(page, record):
        lang = page.evaluate("document.documentElement.lang")
        if record.route == "servicing:statement":
            # An issued statement is a document: it stays in the language it was issued in.
            statement = Statement.objects.get(pk=int(record.url.rstrip("/").rsplit("/", 1)[1]))
            assert lang == statement.language.lower(), record.url
            if lang != "zh-hant":
                return
        assert lang == "zh-hant", record.url
        left = walk.english_left(walk.visible_text(page), allowed)
        if left:
            problems.append(f"{record.url}: {left}")
        walk.measure_overflow(page, record)
        if record.scroll_width > record.viewport:
            problems.append(f"{record.url}: {record.scroll_width}px wide at {record.viewport}px — {walk.overflowing(page)}")

    # Each client separately: a new client's empty pages say different things from a borrower's.
    visits = _walk_all(browser, live_server, CLIENTS, viewport=walk.PHONE, language="zh-hant", visit=check, shared_routes=False)
    assert len({v.route for v in visits}) >= 20
    assert not problems, "\n".join(problems)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_staff_pages_have_no_serious_axe_violation_and_the_audit_trail_fits_a_desktop(browser, live_server, demo_book):
    problems = []

    def check(page, record):
        walk.measure_overflow(page, record)
        if record.route == "audit-trail" and record.scroll_width > record.viewport:
            problems.append(f"{record.url}: {record.scroll_width}px wide at {record.viewport}px — {walk.overflowing(page)}")
        for violation in walk.axe_violations(page, record):
            problems.append(f"{record.url}: {violation}")
        problems.extend(f"{record.url}: {error}" for error in record.errors)

    visits = _walk_all(browser, live_server, STAFF, viewport=walk.DESKTOP, language="en", visit=check)
    assert "audit-trail" in {v.route for v in visits}
    assert not problems, "\n".join(problems)


# Names that stay in Latin letters in a Chinese page: products, standards and the app names of
# authenticators a client may install.
ALLOWED_PROPER_NAMES = ["Google Authenticator", "Microsoft Authenticator", "Authy", "1Password", "bitcoin", "ether"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_screenshots_of_every_page(browser, live_server, demo_book):
    """``make screenshots``: each client and staff page at desktop and phone width, in English and
    Traditional Chinese, under test-artifacts/screenshots/."""
    if not os.environ.get("PORTAL_SCREENSHOTS"):
        pytest.skip("run by `make screenshots`")
    taken = []
    for language in ("en", "zh-hant"):
        for width_name, viewport in (("desktop", walk.DESKTOP), ("phone", walk.PHONE)):
            for email in CLIENTS[:3] + STAFF:
                who = email.split("@")[0]

                def shoot(page, record, who=who, width_name=width_name, language=language):
                    name = f"{who}-{record.route.replace(':', '-')}-{width_name}-{language}"
                    taken.append(walk.screenshot(page, name))

                _walk_all(browser, live_server, [email], viewport=viewport, language=language, visit=shoot, shared_routes=False)
    assert taken
    print(f"{len(taken)} screenshots in {walk.ARTIFACTS / 'screenshots'}")
