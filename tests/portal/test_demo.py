"""Demo data: idempotent, and never loaded outside demo mode."""

from __future__ import annotations

import io

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.audit import audit_chain_verify
from portal.demo import DEMO_PASSWORD, STAFF
from portal.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_one_user_per_staff_role_with_totp(settings):
    settings.DEMO = True
    output = _seed()
    for person in STAFF:
        user = User.objects.get(email=person.email)
        assert user.has_role(person.role)
        assert user.check_password(DEMO_PASSWORD)
        assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        assert person.email in output
    assert "TOTP secret" in output
    assert "Demo data ready." in output
    # Security prices under maker-checker too: one in force (the suspended stock), one awaiting approval with its holders.
    from lending.risk.models import PriceOverride

    securities = {o.asset: o for o in PriceOverride.objects.exclude(asset__in=["BTC", "ETH"])}
    assert securities["02007"].status == "approved" and securities["00388"].status == "proposed"
    assert securities["00388"].preview["holders"] and securities["00388"].preview["facilities"] > 0


def test_every_demo_user_the_readme_names_can_sign_in_as_the_readme_says(settings):
    """The README's tour names the demo users: each exists with the demo password; each staff member is enrolled
    in TOTP and printed with a secret; a client enrolled in TOTP (drawdowns and releases ask for a code) is
    printed with a secret too, so nobody meets an unexpected second factor."""
    import re
    from pathlib import Path

    settings.DEMO = True
    output = _seed()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    named = set(re.findall(r"`([a-z0-9.]+@demo\.vamargin\.hk)`", readme))
    assert "manager2@demo.vamargin.hk" in named and "lee.kaying@demo.vamargin.hk" in named
    printed = {line.split()[1]: line for line in output.splitlines() if "@demo.vamargin.hk" in line and len(line.split()) > 1}
    for email in named:
        user = User.objects.get(email=email)
        assert user.check_password(DEMO_PASSWORD), email
        enrolled = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        assert enrolled or not user.is_portal_staff, email
        if enrolled:
            assert "TOTP secret" in printed.get(email, ""), email
    assert User.objects.get(email="lee.kaying@demo.vamargin.hk").preferred_language == "en"  # the README's Chinese reader is Chan Tai Man


def test_seed_demo_twice_changes_nothing_the_second_time(settings):
    settings.DEMO = True
    _seed()
    counts = (User.objects.count(), Authenticator.objects.count(), AuditEvent.objects.count())
    secrets = list(
        Authenticator.objects.filter(type=Authenticator.Type.TOTP).order_by("id").values_list("data", flat=True)
    )
    _seed()
    assert (User.objects.count(), Authenticator.objects.count(), AuditEvent.objects.count()) == counts
    assert (
        list(Authenticator.objects.filter(type=Authenticator.Type.TOTP).order_by("id").values_list("data", flat=True))
        == secrets
    )
    assert audit_chain_verify().ok


def test_seed_demo_is_refused_outside_demo_mode(settings):
    settings.DEMO = False
    with pytest.raises(CommandError, match="PORTAL_DEMO=1"):
        _seed()
    assert not User.objects.exists()


def test_demo_totp_prints_a_working_code_in_demo_mode_only(settings, client):
    settings.DEMO = True
    _seed()
    out = io.StringIO()
    call_command("demo_totp", "officer@demo.vamargin.hk", stdout=out)
    code = out.getvalue().strip()
    client.post("/accounts/login/", {"login": "officer@demo.vamargin.hk", "password": DEMO_PASSWORD})
    client.post("/accounts/2fa/authenticate/", {"code": code})
    assert client.get("/workbench/").status_code == 200
    settings.DEMO = False
    with pytest.raises(CommandError):
        call_command("demo_totp", "officer@demo.vamargin.hk", stdout=io.StringIO())


def test_the_demo_policy_makes_every_class_of_the_instrument_master_marginable(settings):
    """The demo's policy gave the ETFs' class E no haircut, so the Tracker Fund (02800) and its peers, pledged by
    demo clients, counted for nothing, which no broker's book would show."""
    from lending import selectors as lending_selectors
    from lending.collateral.selectors import classes_without_haircut
    from lending.models import CollateralPosition

    settings.DEMO = True
    _seed()
    policy = lending_selectors.policy_current()
    assert classes_without_haircut(policy=policy) == []
    etfs = CollateralPosition.objects.filter(instrument__margin_class="E", facility__state="active")
    assert etfs.exists() and all(p.haircut < 1 for p in etfs)
    # The same seeded book: its watch list names a name from each kind of list.
    from lending.models import WatchListCategory, WatchListEntry

    assert set(WatchListEntry.objects.values_list("category", flat=True)) == set(WatchListCategory.values)
    # Facilities in each state, and a closed one holds nothing pledged: closing released every pledge.
    from lending.collateral.models import CustodyEntry
    from lending.models import Facility, FacilityState

    assert set(Facility.objects.values_list("state", flat=True)) == set(FacilityState.values)
    closed = Facility.objects.filter(state=FacilityState.CLOSED)
    assert CustodyEntry.objects.filter(facility__in=closed, kind="pledge").exists()
    assert all(quantity == 0 for quantity in _pledged_now(closed))


def _pledged_now(facilities):
    from lending.collateral import selectors as custody_selectors
    from lending.collateral.models import CustodyEntry

    for f in facilities:
        for instrument_id in set(CustodyEntry.objects.filter(facility=f).values_list("instrument_id", flat=True)):
            yield custody_selectors.pledged_to_facility(facility_id=f.pk, instrument_id=instrument_id)


def test_the_demo_pack_as_at_today_is_the_whole_live_book_the_risk_board_shows(settings):
    """The demo takes no snapshot of today part-way through seeding: today's SMF pack is the live book, every
    facility in it, its loans the risk board's, and its collateral by type and by instrument one valuation."""
    from django.utils import timezone

    from lending.reporting import smf
    from lending.risk import selectors as risk_selectors
    from lending.risk.models import ValuationSnapshot
    from lending.risk.revaluation import current_inputs

    settings.DEMO = True
    _seed()
    today = timezone.localdate()
    assert not ValuationSnapshot.objects.filter(day=today).exists()
    d = smf.compute(as_of=today)
    policy, prices = current_inputs()
    board = risk_selectors.book_figures(policy=policy, prices=prices, nearest_limit=1)
    assert d["book_source"]["kind"] == "live"
    assert d["total_loans"]["total_loans"] == str(board["totals"]["drawn"]) and d["total_loans"]["facilities"] == board["facilities"]
    by_type = {r["asset"]: r["market_value"] for r in d["collateral_concentration"]["by_asset"]}
    by_instrument = {r["code"]: r["market_value"] for r in d["collateral_concentration"]["instruments"]["by_instrument"]}
    assert by_type["BTC"] == by_instrument["BTC"] and by_type["ETH"] == by_instrument["ETH"]
