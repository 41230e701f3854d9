"""Collateral concentration limits of the marginable list: enforced in the credit review (refer, with the
reason) and on pledges after opening (refused), per client and firm-wide, exactly at the boundary."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lending.collateral import concentration
from lending.collateral.models import CustodyEntry, Instrument
from lending.models import StepCode, StepOutcome
from portal.errors import ConflictError
from tests.collateral.conftest import book_facility
from tests.lending.conftest import POLICY_NUMBERS, give_holdings, submitted

pytestmark = pytest.mark.django_db

# Per client: one instrument or issuer at most 50% of the client's lending value, one sector 75%;
# firm-wide 25% / 25% / 40%, applying from a book of HK$20,000,000 lending value.
LIMITS = {"instrument_concentration_max": "0.50", "issuer_concentration_max": "0.50", "sector_concentration_max": "0.75",
          "firm_instrument_concentration_max": "0.25", "firm_issuer_concentration_max": "0.25",
          "firm_sector_concentration_max": "0.40", "firm_concentration_min_book": "20000000"}


@pytest.fixture
def limits(eligible_client, officer, credit_manager):
    """The policy in force with LIMITS (tests/lending's policy has no per-client limit)."""
    from lending import services

    proposed = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"marginable": LIMITS}, reason="Concentration limits")
    return services.policy_approve(actor=credit_manager, policy_id=proposed.pk)


def hsbc_and_wharf(hsbc, wharf):
    """00005 HSBC (class A, 30%: HK$70 of lending value a share) and 00004 Wharf (class B, 50%: HK$50), at HK$100."""
    return [{"kind": "securities", "instrument": "00005", "quantity": str(hsbc)},
            {"kind": "securities", "instrument": "00004", "quantity": str(wharf)}]


def exposure_step(app):
    return app.steps.get(code=StepCode.EXPOSURE)


def test_exactly_at_the_client_limit_passes(limits, eligible_client, django_capture_on_commit_callbacks):
    # 50,000 × 70 = 3,500,000 and 70,000 × 50 = 3,500,000: each instrument, issuer and... sector exactly 50%.
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="1000000", lines=hsbc_and_wharf(50_000, 70_000))
    step = exposure_step(app)
    assert step.outcome == StepOutcome.PASS, step.reasons
    assert step.result["concentration_breaches"] == []
    assert any("within the policy's limits" in r for r in step.reasons)
    assert app.recommendation == "approve"


def test_one_share_over_the_client_limit_refers_with_the_reason(limits, eligible_client, django_capture_on_commit_callbacks):
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="1000000", lines=hsbc_and_wharf(50_001, 70_000))
    step = exposure_step(app)
    assert step.outcome == StepOutcome.REFER
    breaches = {(b["scope"], b["dimension"], b["name"]) for b in step.result["concentration_breaches"]}
    assert breaches == {("client", "instrument", "HSBC Holdings (00005)"), ("client", "issuer", "HSBC Holdings plc")}
    assert "Concentration: HSBC Holdings (00005) would be 50.0% of the client's lending value, above the policy maximum of 50%." in step.reasons
    assert step.inputs["concentration"]["limits"]["client"]["instrument"] == "0.5000"
    assert app.recommendation == "refer"
    assert any("Concentration" in r for r in app.recommendation_reasons)


def test_a_sector_limit_refers_a_client_holding_two_banks(limits, eligible_client, django_capture_on_commit_callbacks):
    from django.db import transaction

    from lending.collateral import services as custody
    from tests.lending.conftest import set_prices

    with transaction.atomic():
        custody.holding_set(client_id=eligible_client.pk, instrument=Instrument.objects.get(code="00011"), quantity=Decimal("100000"))
    set_prices(securities={"00005": Decimal("100"), "00004": Decimal("100"), "00303": Decimal("100"), "00011": Decimal("100")})
    lines = [{"kind": "securities", "instrument": "00005", "quantity": "40000"}, {"kind": "securities", "instrument": "00011", "quantity": "40000"},
             {"kind": "securities", "instrument": "00004", "quantity": "20000"}]  # Financials 5.6m of 6.6m = 84.8%
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="1000000", lines=lines)
    breaches = exposure_step(app).result["concentration_breaches"]
    assert [(b["dimension"], b["name"], b["share"]) for b in breaches] == [("sector", "Financials", "0.8485")]


def test_firm_limits_apply_only_from_the_policy_book_size(limits, eligible_client, charlie, django_capture_on_commit_callbacks):
    # The rest of the book: charlie's HK$14m of lending value in Wharf (below the HK$20m from which firm limits apply).
    give_holdings(charlie)
    book_facility(charlie, holdings={"00004": 280_000})
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="1000000", lines=hsbc_and_wharf(50_000, 70_000))
    step = exposure_step(app)
    assert step.outcome == StepOutcome.PASS and step.inputs["concentration"]["firm_limits_apply"] is False
    # With HK$21m in the book, this application's Wharf takes the firm to (21m + 3.5m) / (21m + 7m) = 87.5% Wharf.
    book_facility(charlie, holdings={"00004": 140_000})
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="1000000", lines=hsbc_and_wharf(50_000, 70_000))
    step = exposure_step(app)
    firm = {(b["dimension"], b["name"]): b["share"] for b in step.result["concentration_breaches"] if b["scope"] == "firm"}
    assert firm[("instrument", "Wharf (Holdings) (00004)")] == "0.8750"
    assert firm[("issuer", "Wharf (Holdings) Ltd")] == "0.8750" and firm[("sector", "Properties and Construction")] == "0.8750"
    assert ("instrument", "HSBC Holdings (00005)") not in firm  # 12.5%, within 25%
    assert step.outcome == StepOutcome.REFER


def test_breaches_are_exact_at_the_boundary():
    limits = concentration.Limits(client={"instrument": Decimal("0.5"), "issuer": Decimal("1"), "sector": Decimal("1")},
                                  firm={"instrument": Decimal("1"), "issuer": Decimal("1"), "sector": Decimal("1")}, firm_min_book=Decimal("1e12"))
    hsbc, wharf = Instrument.objects.get(code="00005"), Instrument.objects.get(code="00004")
    instruments = {hsbc.pk: hsbc, wharf.pk: wharf}
    before = concentration.Exposure(Decimal("100"), {wharf.pk: Decimal("100")})

    def found(added):
        return concentration.breaches(limits=limits, client_before=before, firm_before=concentration.Exposure(), added_total=added,
                                      added={hsbc.pk: added}, instruments=instruments, only_touched=True)

    assert found(Decimal("100")) == []  # 100 of 200: exactly 50%
    [breach] = found(Decimal("100.01"))
    assert breach.name == "HSBC Holdings (00005)" and breach.share == Decimal("0.5000") and breach.share_before == 0


@pytest.fixture
def balanced(limits, eligible_client):
    """alice's facility: 50,000 HSBC (HK$3.5m lending value) and 70,000 Wharf (HK$3.5m), pledged in custody."""
    from django.db import transaction

    from lending.collateral import services as custody

    facility = book_facility(eligible_client, holdings={"00005": 50_000, "00004": 70_000})
    with transaction.atomic():
        for code, qty in (("00005", 50_000), ("00004", 70_000)):
            custody.custody_pledge(client_id=eligible_client.pk, instrument_id=Instrument.objects.get(code=code).pk, quantity=qty,
                                   facility_id=facility.pk, actor=None)
    return facility


def test_a_top_up_that_would_breach_a_client_limit_is_refused_and_changes_nothing(balanced, officer):
    from lending.risk import services

    entries = CustodyEntry.objects.count()
    with pytest.raises(ConflictError) as exc:
        services.collateral_top_up(actor=officer, facility_id=balanced.pk, instrument="00005", quantity="1")
    assert exc.value.code == "concentration_limit"
    assert "HSBC Holdings (00005) to 50.0% of the client's lending value, above the policy maximum of 50% (now 50.0%)" in exc.value.message
    assert CustodyEntry.objects.count() == entries
    assert balanced.positions.get(instrument__code="00005").quantity == Decimal("50000")


def test_a_top_up_that_lowers_concentration_is_allowed(balanced, officer):
    from lending.risk import services

    # VTech (class C, 70%): HK$30 a share; a third instrument lowers both shares.
    services.collateral_top_up(actor=officer, facility_id=balanced.pk, instrument="00303", quantity="10000")
    assert balanced.positions.get(instrument__code="00303").quantity == Decimal("10000")
    # … and now some more HSBC fits: 3,500,000 + 70x ≤ 0.5 × (7,300,000 + 70x) → x ≤ 4,285 shares.
    services.collateral_top_up(actor=officer, facility_id=balanced.pk, instrument="00005", quantity="4285")
    with pytest.raises(ConflictError):
        services.collateral_top_up(actor=officer, facility_id=balanced.pk, instrument="00005", quantity="1")
