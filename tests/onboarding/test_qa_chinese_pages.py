"""Client pages used in Traditional Chinese keep their data: dates stay in the form, amounts read as HK$8,000,000,
and results are shown in the language of the page (found walking the portal in a browser)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone, translation

from onboarding.models import ClientProfile, PIAttestation
from portal.products import Product
from tests.onboarding.conftest import PROFILE, acknowledge, draft_attestation, make_profile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english_again_afterwards():
    """A request in Chinese leaves Chinese active in this thread: later tests expect English."""
    yield
    translation.activate("en")


def chinese(client, user):
    client.force_login(user)
    client.cookies["django_language"] = "zh-hant"


def date_input_value(body: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', body).group(0)
    value = re.search(r'value="([^"]*)"', tag)
    return value.group(1) if value else None


def as_a_browser_sends(value: str | None) -> str:
    """An <input type=date> drops a value that is not an ISO date and sends an empty field."""
    return value if value and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else ""


def test_profile_in_chinese_shows_the_date_of_birth_in_the_date_input(client, alice):
    make_profile(alice)
    chinese(client, alice)
    body = client.get("/onboarding/profile/").content.decode()
    assert date_input_value(body, "date_of_birth") == "1985-04-02"  # <input type=date> accepts ISO dates only


def test_saving_the_profile_in_chinese_keeps_the_date_of_birth(client, alice):
    make_profile(alice)
    chinese(client, alice)
    body = client.get("/onboarding/profile/").content.decode()
    # what the browser sends back: the values the page rendered, with the phone number changed
    posted = {**PROFILE, "other_names": "黃愛麗", "phone": "+852 9123 4568", "date_of_birth": as_a_browser_sends(date_input_value(body, "date_of_birth"))}
    assert client.post("/onboarding/profile/", posted).status_code == 302
    assert ClientProfile.objects.get(user=alice).date_of_birth.isoformat() == "1985-04-02"


def test_attestation_and_evidence_dates_show_in_chinese(client, alice):
    acknowledge(alice, Product.PROFESSIONAL_INVESTOR)
    attestation = draft_attestation(alice)
    chinese(client, alice)
    body = client.get("/onboarding/professional-investor/").content.decode()
    assert date_input_value(body, "relevant_date") == attestation.relevant_date.isoformat()
    assert PIAttestation.objects.get(pk=attestation.pk).relevant_date == timezone.localdate()


def test_pi_thresholds_read_with_thousands_separators_in_chinese(client, alice):
    chinese(client, alice)
    body = client.get("/onboarding/professional-investor/").content.decode()
    assert "8,000,000 港元" in body and "40,000,000" in body
    assert "8000000" not in body
