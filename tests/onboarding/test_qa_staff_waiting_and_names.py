"""QA fixes: requirements waiting for staff offer no "Fix this" link; the legal name becomes the user's name."""

from __future__ import annotations

import pytest

from onboarding import selectors, services
from portal.models import AuditEvent, User
from portal.products import Product
from tests.onboarding.conftest import answers_with, complete_assessment, make_profile, submitted_attestation

pytestmark = pytest.mark.django_db


def requirement(user, product, code):
    return next(r for r in selectors.product_eligibility(user=user, product=product).requirements if r.code == code)


def test_a_new_client_has_a_fix_link_for_every_unmet_requirement_and_waits_for_nothing(alice):
    eligibility = selectors.product_eligibility(user=alice, product=Product.VA_MARGIN)
    assert all(r.fix_url and not r.waiting for r in eligibility.unmet)


def test_margin_account_awaiting_confirmation_waits_for_the_officer_without_a_fix_link(alice, officer):
    make_profile(alice)
    r = requirement(alice, Product.VA_MARGIN, "margin_account")
    assert (r.met, r.waiting, r.fix_url) == (False, True, "")
    assert r.reason == "Waiting for your account officer to confirm your securities margin account M-100234."
    services.profile_confirm_margin_account(profile_id=alice.client_profile.pk, actor=officer)
    r = requirement(alice, Product.VA_MARGIN, "margin_account")
    assert (r.met, r.waiting) == (True, False)


def test_submitted_attestation_waits_for_verification_without_a_fix_link(alice):
    make_profile(alice)
    submitted_attestation(alice)
    r = requirement(alice, Product.PERPETUALS, "professional_investor")
    assert (r.met, r.waiting, r.fix_url) == (False, True, "")
    assert r.reason == "Waiting for your account officer to verify your attestation."


def test_returned_attestation_is_the_clients_to_fix(alice, officer):
    make_profile(alice)
    attestation = submitted_attestation(alice)
    services.attestation_return(attestation_id=attestation.pk, actor=officer, questions="Whose account is the second statement?")
    r = requirement(alice, Product.PERPETUALS, "professional_investor")
    assert not r.waiting and r.fix_url == "/onboarding/professional-investor/"


def test_flagged_assessment_waits_for_the_review_on_every_requirement_it_decides(alice):
    make_profile(alice)
    complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))  # inconsistent: flagged
    eligibility = selectors.product_eligibility(user=alice, product=Product.VA_MARGIN)
    waiting = {r.code for r in eligibility.requirements if r.waiting}
    assert waiting == {"margin_account", "suitability", "risk_profile", "va_knowledge"}
    assert all(r.fix_url == "" for r in eligibility.requirements if r.waiting)


def test_checklist_page_shows_the_waiting_state_instead_of_a_fix_link(client, alice):
    make_profile(alice)
    client.force_login(alice)
    body = client.get("/onboarding/").content.decode()
    item = body.split('data-requirement="margin_account"', 1)[1].split("</li>", 1)[0]
    assert 'data-waiting="yes"' in item and "Waiting for your account officer" in item and "Fix this" not in item
    profile_item = body.split('data-requirement="suitability"', 1)[1].split("</li>", 1)[0]
    assert "Fix this" in profile_item and "data-waiting" not in profile_item


def test_api_eligibility_says_which_requirements_wait_for_staff(api_client, alice):
    make_profile(alice)
    api_client.force_authenticate(alice)
    va_margin = api_client.get("/api/v1/onboarding/eligibility/").json()[0]
    margin = next(r for r in va_margin["requirements"] if r["code"] == "margin_account")
    assert margin["waiting"] is True and margin["fix_url"] == ""
    suitability = next(r for r in va_margin["requirements"] if r["code"] == "suitability")
    assert suitability["waiting"] is False and suitability["fix_url"]


def test_saving_the_profile_makes_the_legal_name_the_users_name_audited_with_the_change(client, alice):
    make_profile(alice, legal_name="CHAN, Tai Man")
    assert User.objects.get(pk=alice.pk).full_name == "CHAN, Tai Man"
    event = AuditEvent.objects.filter(action="onboarding.profile.updated").order_by("-id").first()
    assert (event.before["user_full_name"], event.after["user_full_name"]) == ("Alice Wong", "CHAN, Tai Man")
    client.force_login(User.objects.get(pk=alice.pk))
    assert "Welcome, CHAN, Tai Man" in client.get("/dashboard/").content.decode()


def test_the_staff_queue_names_the_client_by_their_legal_name(alice, officer):
    make_profile(alice, legal_name="CHAN, Tai Man")
    item = next(i for i in selectors.onboarding_queue(user=officer) if i.kind == "margin_account")
    assert item.client_name == "CHAN, Tai Man"


def test_a_blank_legal_name_leaves_the_users_name_alone(alice):
    make_profile(alice, legal_name="")
    assert User.objects.get(pk=alice.pk).full_name == "Alice Wong"


def test_a_refused_profile_change_renames_nobody(alice):
    from portal.errors import PortalError

    with pytest.raises(PortalError):
        make_profile(alice, legal_name="CHAN, Tai Man", net_worth="not money")
    assert User.objects.get(pk=alice.pk).full_name == "Alice Wong"


def test_a_lapse_caused_by_a_task_is_told_in_the_clients_language(officer):
    from onboarding.models import PerpetualsAccessRequest, PIAttestation
    from portal.models import Notification
    from tests.helpers import make_user
    from tests.onboarding.conftest import onboard_fully

    client_zh = make_user("client", email="chan@example.com", full_name="陳大文", language="zh-hant")
    onboard_fully(client_zh, officer)
    services.perpetuals_grant(request_id=services.perpetuals_request(client=client_zh).pk, actor=officer)
    attestation = PIAttestation.objects.get(client=client_zh, state="verified")
    assert services.attestation_expire(attestation_id=attestation.pk, today=attestation.expires_on)  # the daily task, in English
    assert PerpetualsAccessRequest.objects.get(client=client_zh).lapse_reason == "專業投資者身份已到期。"
    notice = Notification.objects.filter(user=client_zh, kind="onboarding.perpetuals_lapsed").get()
    assert notice.body == "專業投資者身份已到期。"
