"""Pages: access, decisions through forms, and query counts pinned."""

from decimal import Decimal

import pytest

from lending import services
from lending.models import AppState, FacilityApplication

from .conftest import submitted


def test_outsider_cannot_open_anothers_application_page(client, reviewed, outsider):
    client.force_login(outsider)
    assert client.get(f"/lending/applications/{reviewed.pk}/").status_code == 404


def test_client_cannot_open_the_workbench_pages(client, reviewed, eligible_client):
    client.force_login(eligible_client)
    for path in ["/lending/staff/queue/", f"/lending/staff/applications/{reviewed.pk}/", "/lending/staff/prices/", "/lending/staff/policy/", "/lending/staff/watchlist/", "/lending/staff/facilities/"]:
        assert client.get(path).status_code == 403, path


def test_anonymous_sent_to_sign_in(client, reviewed):
    for path in ["/lending/", "/lending/apply/", f"/lending/applications/{reviewed.pk}/", "/lending/staff/queue/"]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_compliance_cannot_decide(client, reviewed, compliance_user):
    client.force_login(compliance_user)
    assert client.get("/lending/staff/queue/").status_code == 403


def test_application_form_embeds_policy_numbers(client, eligible_client):
    client.force_login(eligible_client)
    response = client.get("/lending/apply/")
    assert response.status_code == 200
    assert b'"btc_haircut": "0.6000"' in response.content
    # Each holding row carries its price and the haircut of the marginable list in force.
    assert b'data-price="100.00" data-haircut="0.30"' in response.content and b'data-price="760000.00" data-haircut="0.6000"' in response.content


def test_client_applies_through_the_form(client, eligible_client, django_capture_on_commit_callbacks):
    client.force_login(eligible_client)
    page = client.get("/lending/apply/").content.decode()
    assert 'data-testid="holdings"' in page and "00005" in page and 'name="line_market_value"' not in page
    data = {
        "requested_limit": "1000000", "purpose": "Trade", "submit": "1", "confirm_terms": "on",
        "line_instrument": ["00005", "00004", "BTC", "ETH"], "line_kind": ["securities", "securities", "virtual_asset", "virtual_asset"],
        "line_quantity": ["50000", "", "0", "3"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/lending/apply/", data)
    app = FacilityApplication.objects.get()
    assert response.status_code == 302 and app.state == AppState.AWAITING_DECISION
    assert app.lines.count() == 2 and app.lines.get(asset="ETH").quantity == 3
    assert app.lines.get(kind="securities").instrument.code == "00005" and app.lending_value == Decimal("3500000.00") + Decimal("28350.00")


def test_officer_approves_on_the_review_page(client, reviewed, officer):
    client.force_login(officer)
    assert client.get(f"/lending/staff/applications/{reviewed.pk}/").status_code == 200
    client.post(f"/lending/staff/applications/{reviewed.pk}/", {"action": "approve", "limit": "3000000"})
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.APPROVED


@pytest.mark.parametrize("n", [1, 6])
def test_queue_query_count_is_constant(client, officer, eligible_client, facts, django_capture_on_commit_callbacks, django_assert_num_queries, n):
    from tests.helpers import make_user

    for i in range(n):
        user = make_user("client", email=f"q{i}@example.com", full_name=f"Queue {i}")
        submitted(user, django_capture_on_commit_callbacks)
    client.force_login(officer)
    # shell 4 + MFA + permissions 2 + counts + paginator count + rows
    with django_assert_num_queries(10):
        assert client.get("/lending/staff/queue/").status_code == 200


@pytest.mark.parametrize("screened", [0, 5])
def test_review_page_query_count_is_constant(client, reviewed, officer, facts, monkeypatch, django_assert_num_queries, screened):
    from django.db import transaction

    from portal.audit import SYSTEM, audit_log

    with transaction.atomic():
        for i in range(screened):
            audit_log(actor=SYSTEM, action="lending.test", obj=reviewed, after={"i": i})
    client.force_login(officer)
    # shell 4 + MFA + perms 2 + application + lines + steps + audit history (+ stubbed onboarding/disclosures: 0)
    with django_assert_num_queries(11):
        assert client.get(f"/lending/staff/applications/{reviewed.pk}/").status_code == 200


def test_client_application_page_and_progress_endpoint_query_counts(client, reviewed, eligible_client, django_assert_num_queries):
    client.force_login(eligible_client)
    # session, user, roles + application + steps
    with django_assert_num_queries(5):
        assert client.get(f"/api/v1/lending/applications/{reviewed.pk}/progress/").status_code == 200


def test_prices_page_records_a_desk_quote_that_counts_as_one_source_in_the_median(client, officer, policy, prices):
    from lending.risk import services as risk_services
    from lending.selectors import prices_current
    from portal.audit import SYSTEM

    risk_services.price_source_create(actor=SYSTEM, code="desk", name="Dealing desk", kind="desk")
    client.force_login(officer)
    client.post("/lending/staff/prices/", {"asset": "ETH", "price_hkd": "28000", "source": "desk"})
    # The test feed's 27,000 and the desk's 28,000: the governed median, not the officer's price.
    assert str(prices_current()["ETH"].price_hkd) == "27500.00"


def test_prices_page_refuses_an_officer_price_far_from_the_reference_and_changes_nothing(client, officer, policy, prices):
    from lending.risk import services as risk_services
    from lending.selectors import prices_current
    from portal.audit import SYSTEM

    risk_services.price_source_create(actor=SYSTEM, code="desk", name="Dealing desk", kind="desk")
    client.force_login(officer)
    response = client.post("/lending/staff/prices/", {"asset": "BTC", "price_hkd": "15000", "source": "desk"}, follow=True)
    assert "policy band" in response.content.decode()
    assert str(prices_current()["BTC"].price_hkd) == "760000.00"


def test_policy_page_proposal_and_approval(client, officer, credit_manager, policy):
    client.force_login(officer)
    form = {"action": "propose", "btc_haircut": "65", "eth_haircut": "65%", "va_max_share": "30", "price_max_age_minutes": "15",
            "officer_authority_default": "5,000,000", "watch_level": "90", "margin_call_level": "100", "close_out_level": "130", "cure_days": "2",
            "client_exposure_limit": "50000000", "firm_exposure_limit": "5000000000", "client_concentration_max": "10",
            "class_name": ["A", "b", ""], "class_haircut": ["30", "55", ""], "reason": "Tighten"}
    client.post("/lending/staff/policy/", form)
    from lending.models import CollateralPolicy

    proposed = CollateralPolicy.objects.get(version=2)
    assert (proposed.btc_haircut, proposed.eth_haircut, proposed.va_max_share, proposed.close_out_level) == (
        Decimal("0.65"), Decimal("0.65"), Decimal("0.30"), Decimal("1.30"))
    assert proposed.securities_haircuts == {"A": "0.30", "B": "0.55"} and proposed.effective_from is None
    page = client.get("/lending/staff/policy/").content.decode()
    assert 'Bitcoin haircut (%)</label><input id="id_btc_haircut" name="btc_haircut" value="60"' in page  # starts from the version in force
    assert '<td>Bitcoin haircut</td><td class="num">60%</td><td class="num">65%</td>' in page  # the change against v1
    assert "btc_haircut</label>" not in page and "securities_haircuts" not in page
    client.force_login(credit_manager)
    client.post("/lending/staff/policy/", {"action": "approve", "policy_id": proposed.pk})
    assert CollateralPolicy.objects.get(version=2).status == "approved"


def test_every_proposal_a_credit_manager_can_approve_shows_its_effect_on_the_book_first(client, officer, credit_manager, policy):
    """Two proposals awaiting a decision: the newest is previewed on the page; the older one offers its preview
    (one more whole-book SELECT, on demand) and only then its approval, so none is approved unseen. Bands in words."""
    from lending import services

    from .conftest import POLICY_NUMBERS

    older = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS, reason="Older")
    newer = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS, reason="Newer")
    client.force_login(credit_manager)
    page = client.get("/lending/staff/policy/").content.decode()
    assert f'data-testid="preview-{newer.version}"' in page and f'data-testid="preview-{older.version}"' not in page
    assert page.count('value="approve"') == 1
    assert f'href="?preview={older.version}"' in page
    page = client.get(f"/lending/staff/policy/?preview={older.version}").content.decode()
    assert f'data-testid="preview-{older.version}"' in page and page.count('value="approve"') == 2
    assert "margin_call" not in page.split('data-testid="policy-versions"')[1].split("</table>")[0]


@pytest.mark.parametrize("typed", ["1e309", "NaN", "Infinity", "99999999999999999999999999999"])
def test_a_percentage_that_is_not_a_usable_number_is_refused_on_the_policy_pages_and_nothing_is_proposed(client, officer, policy, typed):
    """Such a figure raised inside the percentage parser (lending.policy_forms): a 500 on every policy page (found by fuzzing)."""
    from lending.models import CollateralPolicy
    from lending.risk.models import RiskPolicy

    client.force_login(officer)
    response = client.post("/lending/staff/policy/", {"action": "propose", "btc_haircut": typed, "reason": "x"}, follow=True)
    assert response.status_code == 200 and not CollateralPolicy.objects.filter(version=2).exists()
    risk_policies = RiskPolicy.objects.count()
    response = client.post("/risk/policy/", {"action": "propose", "stress_btc_shock": typed, "reason": "x"}, follow=True)
    assert response.status_code == 200 and RiskPolicy.objects.count() == risk_policies


def test_decision_refused_on_page_for_own_record_shows_message(client, facts, policy, prices, django_capture_on_commit_callbacks):
    from portal.permissions import Role
    from portal.services import user_add_role
    from tests.helpers import make_user

    staff = make_user("account_officer", email="sam@example.com")
    user_add_role(user=staff, role=Role.CLIENT)
    app = submitted(staff, django_capture_on_commit_callbacks)
    client.force_login(staff)
    response = client.post(f"/lending/staff/applications/{app.pk}/", {"action": "approve", "limit": "100"}, follow=True)
    assert "own client record" in response.content.decode()
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.AWAITING_DECISION
    services  # noqa: B018


def test_review_page_folds_each_steps_inputs_so_the_reasons_stay_readable(client, reviewed, officer):
    """QA: the raw inputs JSON squeezed the reasons column to a few characters; it is behind 'Inputs and timing', with the step's time."""
    client.force_login(officer)
    html = client.get(f"/lending/staff/applications/{reviewed.pk}/").content.decode()
    assert html.count('<td class="step-inputs"><details><summary>Inputs and timing</summary>') >= 5  # timings too, only on demand
    assert 'td class="step-reasons"' in html


def test_a_proposal_with_a_bad_number_shows_the_form_again_with_what_was_typed(client, officer, policy):
    client.force_login(officer)
    response = client.post("/lending/staff/policy/", {"action": "propose", "btc_haircut": "50", "eth_haircut": "65", "reason": "Too low",
                                                      "class_name": ["A"], "class_haircut": ["30"]})
    body = response.content.decode()
    assert response.status_code == 200 and "at least 60%" in body and 'value="50"' in body and "Too low" in body
    from lending.models import CollateralPolicy

    assert CollateralPolicy.objects.count() == 1


def test_an_approved_policy_with_a_later_effective_date_comes_into_force_on_that_day(officer, credit_manager, policy, prices):
    from datetime import timedelta

    from django.utils import timezone

    from lending import selectors, services
    from lending.demo import POLICY_V1
    from lending.models import PolicyStatus
    from portal.errors import PortalError
    from portal.models import AuditEvent

    today = timezone.localdate()
    with pytest.raises(PortalError, match="past"):
        services.policy_propose(actor=officer, numbers=POLICY_V1, reason="Backdated", effective_from=today - timedelta(days=1))
    proposed = services.policy_propose(actor=officer, numbers=POLICY_V1 | {"cure_days": 3}, reason="Longer cure from next week",
                                       effective_from=(today + timedelta(days=7)).isoformat())
    services.policy_approve(actor=credit_manager, policy_id=proposed.pk)
    proposed.refresh_from_db()
    assert proposed.status == PolicyStatus.SCHEDULED and selectors.policy_current().pk == policy.pk  # still v1 in force
    assert services.policies_take_effect(today=today + timedelta(days=6)) == 0
    assert services.policies_take_effect(today=today + timedelta(days=7)) == 1
    assert selectors.policy_current().pk == proposed.pk and selectors.policy_current().cure_days == 3
    policy.refresh_from_db()
    assert policy.status == PolicyStatus.SUPERSEDED
    assert AuditEvent.objects.filter(action="lending.policy.took_effect", object_id=str(proposed.pk)).exists()
    assert services.policies_take_effect(today=today + timedelta(days=8)) == 0  # once


def test_the_policy_page_names_the_classes_a_version_gives_no_haircut(client, officer, credit_manager, policy):
    """The instrument master's ETFs are class E; a version whose class haircuts leave E out makes the Tracker Fund
    (02800) and its peers not marginable, silently. The page says so for the version in force and for a proposal,
    before a credit manager approves it."""
    from lending import services

    from .conftest import POLICY_NUMBERS

    assert "E" not in (policy.securities_haircuts or {})
    client.force_login(credit_manager)
    page = client.get("/lending/staff/policy/").content.decode()
    warning = page.split(f'data-testid="unmargined-{policy.version}">')[1].split("</span>")[0]
    assert "Class E" in warning and "02800" in warning and "not marginable" in warning
    covered = services.policy_propose(actor=officer, reason="ETFs marginable",
                                      numbers=POLICY_NUMBERS | {"securities_haircuts": dict(policy.securities_haircuts) | {"E": "0.20"}})
    page = client.get("/lending/staff/policy/").content.decode()
    assert f'data-testid="unmargined-{covered.version}"' not in page and f'data-testid="unmargined-{policy.version}"' in page
