"""Servicing pages: statements, documents and the rates page refuse outsiders, serve files safely, and run constant queries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from lending.servicing import interest, statements
from portal.pdf import pdf_text
from tests.servicing.conftest import make_facility, old_facility, post

pytestmark = pytest.mark.django_db
NOV = (date(2025, 11, 1), date(2025, 11, 30))


@pytest.fixture
def issued(alice, prime):
    facility = old_facility(alice)
    post(facility, "drawdown", "1000.00", date(2025, 11, 3))
    return statements.issue_one(facility_id=facility.pk, kind="monthly", period_start=NOV[0], period_end=NOV[1])


CLIENT_PAGES = ["/servicing/statements/", "/servicing/statements/{s}/", "/servicing/statements/{s}/pdf/", "/servicing/facilities/{f}/letter.pdf",
                "/servicing/receipts/999/pdf/"]
STAFF_PAGES = ["/servicing/staff/rates/", "/servicing/staff/statements/", "/servicing/staff/statements/{s}/",
               "/servicing/staff/statements/{s}/pdf/", "/servicing/staff/facilities/{f}/letter.pdf"]


def _ids(issued):
    return {"s": issued.pk, "f": issued.facility_id}


def test_anonymous_is_sent_to_sign_in(client, issued):
    for path in [*CLIENT_PAGES, *STAFF_PAGES]:
        response = client.get(path.format(**_ids(issued)))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_another_client_never_sees_a_statement_or_letter(client, issued, charlie):
    client.force_login(charlie)
    ids = _ids(issued)
    for path in CLIENT_PAGES[1:]:
        assert client.get(path.format(**ids)).status_code == 404, path
    assert issued.number not in client.get("/servicing/statements/").content.decode()
    for path in STAFF_PAGES:
        assert client.get(path.format(**ids)).status_code == 403, path


def test_the_client_lists_and_downloads_their_statement_as_a_sandboxed_private_file(client, issued, alice):
    client.force_login(alice)
    assert issued.number in client.get("/servicing/statements/").content.decode()
    response = client.get(f"/servicing/statements/{issued.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Security-Policy"] == "sandbox" and "no-store" in response["Cache-Control"]
    assert "attachment" in response["Content-Disposition"] and issued.number in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert body == bytes(issued.pdf)
    html = client.get(f"/servicing/statements/{issued.pk}/")
    assert html["Content-Security-Policy"] == "sandbox" and issued.number in b"".join(html.streaming_content).decode()


def test_staff_read_any_statement_but_a_client_cannot_use_staff_pages(client, issued, officer, alice):
    client.force_login(officer)
    assert issued.number in client.get("/servicing/staff/statements/").content.decode()
    assert client.get(f"/servicing/staff/statements/{issued.pk}/pdf/").status_code == 200
    client.force_login(alice)
    assert client.get("/servicing/staff/statements/").status_code == 403


def test_the_facility_letter_downloads_as_a_pdf_with_its_hash(client, opened, eligible_client):
    client.force_login(eligible_client)
    response = client.get(f"/servicing/facilities/{opened.pk}/letter.pdf")
    assert response.status_code == 200 and response["Content-Security-Policy"] == "sandbox"
    text = pdf_text(b"".join(response.streaming_content))
    assert "FACILITY LETTER" in text and "HKD Prime plus a margin of 3.000%" in text
    assert opened.letter_sha256[:32] in text.replace("\n", "")


def test_facility_pages_show_accrued_interest_and_the_next_posting(client, alice, officer, prime):
    facility = make_facility(alice)
    post(facility, "drawdown", "365000.00", date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 3))
    interest.accrue_day(day=date(2025, 11, 4))
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert 'data-testid="accrued-to-date">HK$165.00' in page
    assert 'data-testid="next-posting">2025-11-30' in page
    assert "8.250%" in page
    client.force_login(officer)
    page = client.get(f"/lending/staff/facilities/{facility.pk}/").content.decode()
    assert 'data-testid="accrued-to-date">HK$165.00' in page


def test_rates_page_enters_and_confirms_a_fixing_with_two_people(client, book, officer, officer2, alice):
    from lending.servicing.models import BaseRateFixing

    client.force_login(officer)
    assert client.get("/servicing/staff/rates/").status_code == 200
    client.post("/servicing/staff/rates/", {"action": "fixing", "base_rate": "hibor_1m", "rate": "4.12", "effective_date": "2025-11-01", "source": "HKAB"})
    fixing = BaseRateFixing.objects.get()
    assert fixing.status == "entered" and fixing.rate == Decimal("0.041200")  # typed as a percentage, stored as a ratio
    client.post("/servicing/staff/rates/", {"action": "confirm", "fixing_id": fixing.pk})
    assert BaseRateFixing.objects.get().status == "entered"  # the same person cannot confirm
    client.force_login(officer2)
    client.post("/servicing/staff/rates/", {"action": "confirm", "fixing_id": fixing.pk})
    assert BaseRateFixing.objects.get().status == "confirmed"
    client.force_login(alice)
    assert client.get("/servicing/staff/rates/").status_code == 403


def test_a_fixing_effective_on_an_impossible_day_is_refused_on_the_page_and_nothing_is_entered(client, book, officer):
    """30 February raised inside Django's parse_date: a 500 on the rates page (found by fuzzing)."""
    from lending.servicing.models import BaseRateFixing

    client.force_login(officer)
    response = client.post("/servicing/staff/rates/", {"action": "fixing", "base_rate": "hibor_1m", "rate": "4.12", "effective_date": "2026-02-30",
                                                       "source": "HKAB"}, follow=True)
    assert response.status_code == 200 and "Give the date the rate is effective from." in response.content.decode()
    assert not BaseRateFixing.objects.exists()


@pytest.mark.parametrize("n", [2, 12])
def test_statement_lists_run_a_constant_number_of_queries(client, alice, officer, prime, n, django_assert_num_queries):
    facilities = [old_facility(alice) for _ in range(n)]
    for f in facilities:
        post(f, "drawdown", "100.00", date(2025, 11, 3))
    job, _ = statements.job_start(kind="monthly", period_start=NOV[0], period_end=NOV[1])
    while statements.job_step(job_id=job.pk, batch_size=50):
        pass
    client.force_login(alice)
    with django_assert_num_queries(6):
        assert client.get("/servicing/statements/").status_code == 200
    client.force_login(officer)
    with django_assert_num_queries(9):
        assert client.get("/servicing/staff/statements/").status_code == 200


def _proposal(**overrides):
    """The rates form as a member of staff fills it: percentages, whole Hong Kong dollars, labelled tier rows."""
    form = {"action": "propose", "base_rate": "hkd_prime", "tier_name": ["standard", "preferred", ""], "tier_margin": ["3.125", "1.5", ""],
            "default_tier": "standard", "overdue_margin": "4", "arrangement_fee": "0", "liquidation_fee_rate": "1",
            "client_drawdown_auto_max": "500000", "staff_four_eyes_above": "5000000", "release_initial_level": "70",
            "whitelist_cooling_off_hours": "24", "withdrawal_officer_above": "100000", "withdrawal_second_above": "1000000",
            "review_months": "12", "unpaid_interest_grace_days": "45", "effective_from": "", "reason": "Preferred tier cheaper"}
    return form | overrides


def test_servicing_policy_form_reads_percentages_and_shows_the_change_against_the_version_in_force(client, book, officer, credit_manager):
    from lending.servicing import selectors
    from lending.servicing.models import ServicingPolicy

    client.force_login(officer)
    page = client.get("/servicing/staff/rates/").content.decode()
    assert 'name="release_initial_level" value="70"' in page  # the version in force, as a percentage
    assert 'value="3"' in page and "Interest unpaid for more than this many days is overdue (days)" in page
    client.post("/servicing/staff/rates/", _proposal())
    proposed = ServicingPolicy.objects.get(status="proposed")
    assert proposed.tier_margins == {"standard": "0.031250", "preferred": "0.015000"}
    assert proposed.release_initial_level == Decimal("0.7000") and proposed.liquidation_fee_rate == Decimal("0.0100")
    assert proposed.overdue_margin == Decimal("0.040000") and proposed.unpaid_interest_grace_days == 45
    client.force_login(credit_manager)
    page = client.get("/servicing/staff/rates/").content.decode()
    changes = page.split(f'data-testid="changes-{proposed.version}"')[1].split("</details>")[0]
    assert "Margin of tier standard" in changes and "3%" in changes and "3.125%" in changes
    assert "Interest unpaid for more than this many days is overdue" in changes and "30 days" in changes and "45 days" in changes
    assert "Initial level for collateral releases" not in changes  # unchanged numbers are not listed
    assert selectors.servicing_policy_current().release_initial_level == Decimal("0.7000")


def test_a_scheduled_servicing_proposal_carries_its_effective_date(client, book, officer):
    from lending.servicing.models import ServicingPolicy

    client.force_login(officer)
    client.post("/servicing/staff/rates/", _proposal(effective_from="2099-01-01"))
    assert ServicingPolicy.objects.get(status="proposed").effective_from == date(2099, 1, 1)


def test_a_bad_servicing_proposal_changes_nothing_and_keeps_what_was_typed(client, book, officer):
    from lending.servicing.models import ServicingPolicy

    client.force_login(officer)
    before = ServicingPolicy.objects.count()
    response = client.post("/servicing/staff/rates/", _proposal(unpaid_interest_grace_days="0", reason="typo"), follow=True)
    assert ServicingPolicy.objects.count() == before
    page = response.content.decode()
    assert 'name="unpaid_interest_grace_days" value="0"' in page and 'value="3.125"' in page and ">typo</textarea>" in page
