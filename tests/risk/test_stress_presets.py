"""The stress page's "SMF monthly" preset is the risk policy's monthly scenario (the one the monthly report runs),
and the page takes shocks as percentages, as the policy form does. Before, the preset and the page's default were
written into the code (BTC −50%, ETH −60%, securities −30%) whatever the policy in force said, and the page took
fractions (-0.50) beside a policy form that takes -50."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from lending.risk import selectors
from lending.risk.models import RiskPolicy, StressReport

from .conftest import RISK_NUMBERS, make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy_in_force(book, officer, credit_manager2):
    from lending.risk import services

    numbers = RISK_NUMBERS | {"stress_btc_shock": "-0.70", "stress_eth_shock": "-0.65", "stress_securities_shock": "-0.25"}
    proposed = services.risk_policy_propose(actor=officer, numbers=numbers, reason="Harsher monthly scenario")
    services.risk_policy_decide(actor=credit_manager2, policy_id=proposed.pk, approve=True)
    return RiskPolicy.objects.get(pk=proposed.pk)


def test_the_monthly_preset_is_the_risk_policys_scenario(client, book, officer, policy_in_force):
    client.force_login(officer)
    with translation.override("en"):
        page = client.get("/risk/stress/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'name="btc" value="-70"' in page and 'name="eth" value="-65"' in page and 'name="securities" value="-25"' in page
    assert "BTC -70%, ETH -65%, securities -25%" in page and f"v{policy_in_force.version}" in page
    assert "−50%, ETH −60%, securities −30%" not in page
    presets = {p["key"]: p for p in selectors.stress_presets()}
    assert (presets["policy"]["btc"], presets["policy"]["eth"], presets["policy"]["securities"]) == ("-0.7000", "-0.6500", "-0.2500")


def test_the_presets_api_gives_the_policys_scenario(client, book, officer, policy_in_force):
    client.force_login(officer)
    presets = {p["key"]: p for p in client.get("/api/v1/risk/staff/stress/presets/").json()}
    assert (presets["policy"]["btc"], presets["policy"]["eth"], presets["policy"]["securities"]) == ("-0.7000", "-0.6500", "-0.2500")
    assert presets["va_crash"]["btc"] == "-0.50"


def test_the_page_takes_percentages(client, book, alice, officer):
    make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    client.force_login(officer)
    page = client.post("/risk/stress/", {"btc": "-50", "eth": "-60", "securities": "-12.5", "save": "1"})
    report = StressReport.objects.get()
    assert page.status_code == 302
    assert (report.btc_shock, report.eth_shock, report.securities_shock) == (Decimal("-0.5000"), Decimal("-0.6000"), Decimal("-0.1250"))


def test_a_percentage_beyond_100_is_refused_and_nothing_is_stored(client, book, officer):
    client.force_login(officer)
    page = client.post("/risk/stress/", {"btc": "-150", "eth": "0", "securities": "0", "save": "1"}, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and StressReport.objects.count() == 0
    text = page.content.decode()
    assert "between −100% and +100%" in text and 'value="-150"' in text


def test_the_page_without_a_risk_policy_uses_the_defaults(client, book, officer):
    RiskPolicy.objects.all().delete()
    client.force_login(officer)
    page = client.get("/risk/stress/?preset=policy").content.decode()
    assert 'name="btc" value="-50"' in page and 'name="eth" value="-60"' in page and 'name="securities" value="-30"' in page


def test_the_monthly_preset_reads_in_chinese(client, book, officer, policy_in_force):
    client.force_login(officer)
    client.cookies["django_language"] = "zh-hant"
    page = client.get("/risk/stress/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert f"風險政策第 {policy_in_force.version} 版（BTC -70%、ETH -65%、證券 -25%）" in page
    assert "衝擊以百分比表示" in page and "SMF monthly" not in page


def test_an_unknown_preset_posted_runs_the_monthly_scenario(client, book, officer):
    client.force_login(officer)
    page = client.post("/risk/stress/", {"preset": "bogus"})
    assert page.status_code == 200 and 'name="btc" value="-50"' in page.content.decode()
