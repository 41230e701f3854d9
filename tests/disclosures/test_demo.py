"""The demo is consistent: the brand-new client has acknowledged nothing; others are up to date or stale."""

from __future__ import annotations

import io

import pytest

from disclosures import selectors
from disclosures.models import Acknowledgement
from portal.models import User

pytestmark = pytest.mark.django_db


def _seed() -> str:
    from disclosures import demo as disclosures_demo
    from onboarding import demo as onboarding_demo
    from portal import demo as portal_demo

    out = io.StringIO()
    portal_demo.seed_people(out)
    onboarding_demo.seed(out)
    disclosures_demo.seed(out)
    return out.getvalue()


def test_demo_new_client_has_acknowledged_nothing_and_others_are_up_to_date_or_stale(settings):
    settings.DEMO = True
    _seed()
    output = _seed()  # idempotent: the second run reports the same and adds nothing
    chan = User.objects.get(email="chan.taiman@demo.vamargin.hk")
    assert not Acknowledgement.objects.filter(client=chan).exists()
    statuses = [s for docs in selectors.statuses_by_product(user=chan).values() for s in docs]
    assert statuses and not any(s.acknowledged or s.stale for s in statuses)
    assert ("outstanding (nothing acknowledged yet): chan.taiman@demo.vamargin.hk") in output
    assert "stale (must re-acknowledge the VA margin financing statement): harbourview.capital@demo.vamargin.hk;" in output
    assert "disclosures up to date: lee.kaying@demo.vamargin.hk, wong.siuming@demo.vamargin.hk;" in output
    assert Acknowledgement.objects.count() == 17
