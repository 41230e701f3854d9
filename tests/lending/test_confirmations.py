"""A confirmation of every drawdown, repayment and collateral movement, from the one place each is written."""

from __future__ import annotations

import pytest

from lending import services
from portal.models import Notification

from .conftest import submitted

pytestmark = pytest.mark.django_db


def _open(client, officer, capture):
    app = submitted(client, capture)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    return app, services.application_accept(user=client, application_id=app.pk, letter_sha256=app.letter_sha256)


def _confirmations(user):
    return list(Notification.objects.filter(user=user, kind__startswith="lending.confirmation.").order_by("id"))


def test_accepting_pledges_and_each_pledge_is_confirmed(eligible_client, officer, django_capture_on_commit_callbacks):
    from lending.collateral.models import CustodyEntry

    _app, facility = _open(eligible_client, officer, django_capture_on_commit_callbacks)
    pledges = CustodyEntry.objects.filter(facility_id=facility.pk, kind="pledge").count()
    notes = [n for n in _confirmations(eligible_client) if n.kind == "lending.confirmation.collateral_pledge"]
    assert pledges and len(notes) == pledges
    assert facility.reference in notes[0].title and notes[0].category == "confirmation"


def test_drawdown_and_repayment_are_confirmed_with_the_balance(eligible_client, officer, django_capture_on_commit_callbacks):
    _app, facility = _open(eligible_client, officer, django_capture_on_commit_callbacks)
    services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="250000.00", reference="DD-1")
    services.facility_repay(actor=officer, facility_id=facility.pk, amount="50000.50", reference="RP-1")
    drawn, repaid = [n for n in _confirmations(eligible_client) if n.kind in ("lending.confirmation.drawdown", "lending.confirmation.repayment")]
    assert drawn.title == f"Drawdown of HK$250,000.00 on facility {facility.reference}"
    assert "DD-1" in drawn.body and "HK$250,000.00" in drawn.body
    assert repaid.title == f"Repayment of HK$50,000.50 on facility {facility.reference}"
    assert "The drawn balance is now HK$199,999.50." in repaid.body


def test_a_refused_drawdown_confirms_nothing(eligible_client, officer, django_capture_on_commit_callbacks):
    from portal.errors import PortalError

    _app, facility = _open(eligible_client, officer, django_capture_on_commit_callbacks)
    before = len(_confirmations(eligible_client))
    with pytest.raises(PortalError):
        services.facility_drawdown(actor=officer, facility_id=facility.pk, amount="1e30")
    assert len(_confirmations(eligible_client)) == before


def test_a_top_up_is_confirmed_once_as_the_pledge_it_is(eligible_client, officer, django_capture_on_commit_callbacks):
    from lending.risk import services as risk_services

    _app, facility = _open(eligible_client, officer, django_capture_on_commit_callbacks)
    before = len(_confirmations(eligible_client))
    risk_services.collateral_top_up(actor=officer, facility_id=facility.pk, instrument="BTC", quantity="0.5",
                                    custody_reference="C-7", reference="TU-1")
    notes = _confirmations(eligible_client)[before:]
    assert [n.kind for n in notes] == ["lending.confirmation.collateral_pledge"]
    assert "0.5 BTC" in notes[0].body and "TU-1" in notes[0].body


def test_the_facility_letter_notification_is_resolved_by_accepting(eligible_client, officer, django_capture_on_commit_callbacks):
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="2000000")
    letter = Notification.objects.get(user=eligible_client, kind="lending.application.approved")
    assert letter.task_key and letter.resolved_at is None
    services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)
    letter.refresh_from_db()
    assert letter.resolved_at is not None and letter.read_at is not None
