"""Credit-limit history: the limit a facility opened with and every change (who, when, why), on the facility
page and in the SMF pack, which reads limits as they stood at its date."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db
NEW = Decimal("5000000.00")  # below the lending value of the test facility, a decrease: applied at once


def test_credit_limits_as_they_stood_and_the_periods_changes(alice, officer, credit_manager, book, facts):
    from datetime import timedelta

    from lending.reporting import smf
    from lending.servicing import lifecycle
    from lending.servicing.selectors import limit_history
    from tests.servicing.conftest import make_facility

    facility = make_facility(alice, securities=(("10000000", "0.30"),))
    from lending.risk.revaluation import revalue_book

    revalue_book()
    before = smf.compute(as_of=timezone.localdate())["credit_limits"]
    assert before["changes"] == []
    old = facility.limit
    change = lifecycle.facility_limit_change(actor=officer, facility_id=facility.pk, new_limit=NEW, reason="Lower exposure")
    assert change.state == "applied"
    yesterday = timezone.localdate() - timedelta(days=1)
    then = smf.compute(as_of=yesterday)["credit_limits"]  # the limit at yesterday's end was the old one
    now = smf.compute(as_of=timezone.localdate())["credit_limits"]
    assert Decimal(then["limits_total"]) == old and Decimal(now["limits_total"]) == NEW
    [row] = now["changes"]
    assert row["by"] == officer.email and row["reason"] == "Lower exposure" and row["state"] == "applied"
    assert row["old_limit"] == f"{old:.2f}" and row["new_limit"] == f"{NEW:.2f}"
    history = limit_history(facility=facility)
    assert [e.state for e in history] == ["approved", "applied"] and history[-1].by == officer


def test_the_facility_page_shows_the_limit_history_staff_see_who_and_why(client, alice, officer, book, facts):
    from lending.risk.revaluation import revalue_book
    from lending.servicing import lifecycle
    from tests.servicing.conftest import make_facility

    facility = make_facility(alice, securities=(("10000000", "0.30"),))
    revalue_book()
    lifecycle.facility_limit_change(actor=officer, facility_id=facility.pk, new_limit=NEW, reason="Lower exposure")
    client.force_login(alice)
    page = client.get(f"/lending/facilities/{facility.pk}/").content.decode()
    assert 'data-testid="limit-history"' in page and "Lower exposure" not in page  # the officer's reason is internal
    client.force_login(officer)
    page = client.get(f"/lending/staff/facilities/{facility.pk}/").content.decode()
    assert "Lower exposure" in page and officer.full_name in page
