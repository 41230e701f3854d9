"""Every staff list's export names its coded columns (states, bands, recommendations, channels, outcomes, bases,
how a margin call was escalated or met) as the list's page does, in the language of the reader who asked for
it; money stays a number."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tests.helpers import make_user
from tests.reporting.conftest import make_facility
from tests.reporting.test_band_labels import _csv, _in, _sheet

pytestmark = pytest.mark.django_db


def _zh(role: str):
    return make_user(role, email=f"zh-{role}@example.com", language="zh-hant")


def test_application_export_names_the_state_as_the_queue_does_and_the_recommendation(client, book, alice, officer):
    from lending.models import FacilityApplication

    facility = make_facility(alice, drawn="1000")
    FacilityApplication.objects.filter(pk=facility.application_id).update(state="awaiting_decision", recommendation="refer",
                                                                          submitted_at=facility.accepted_at)
    client.force_login(officer)
    (row,) = _sheet(client.get("/reporting/export/applications.xlsx"))
    assert (row["State"], row["Recommendation"]) == ("Awaiting decision", "Refer to officer")
    assert isinstance(row["Requested limit (HKD)"], (int, float)), "money stays a number"

    client.force_login(_zh("credit_manager"))
    state, recommendation = _in("zh-hant", _("State"), _("Recommendation"))
    (line,) = _csv(client.get("/reporting/export/applications.csv"))
    assert (line[state], line[recommendation]) == tuple(_in("zh-hant", _("Awaiting decision"), _("Refer to officer")))
    assert line[state] not in ("awaiting_decision", "Awaiting decision") and line[recommendation] not in ("refer", "Refer to officer")


def test_facility_export_names_the_state_and_the_band_as_the_page_does(client, book, alice, officer):
    from lending.models import Facility

    facility = make_facility(alice, drawn="1000", state="suspended")
    Facility.objects.filter(pk=facility.pk).update(band="watch")
    client.force_login(officer)
    (row,) = _sheet(client.get("/reporting/export/facilities.xlsx"))
    assert (row["State"], row["Band"]) == ("Suspended", "Watch")
    assert row["Drawn (HKD)"] == 1000, "money stays a number"

    client.force_login(_zh("credit_manager"))
    state, band, drawn = _in("zh-hant", _("State"), _("Band"), _("Drawn (HKD)"))
    (line,) = _csv(client.get("/reporting/export/facilities.csv"))
    assert (line[state], line[band], line[drawn]) == ("已暫停", "觀察", "1000.00")
    (open_call,) = _in("zh-hant", _("Open margin call"))
    assert line[open_call] == "否" and row["Open margin call"] == "No"  # a yes/no in the reader's language, not "no"


@pytest.fixture
def calls(book, alice):
    from django.utils import timezone

    from lending.risk.models import MarginCall

    facility = make_facility(alice, drawn="1000000")
    now = timezone.now()
    common = {"facility": facility, "client": alice, "cure_deadline": now + timedelta(days=2), "shortfall": Decimal("1000"),
              "shortfall_at_open": Decimal("1000"), "utilisation": Decimal("1.01"), "utilisation_at_open": Decimal("1.01"),
              "lending_value": Decimal("990000"), "drawn_balance": Decimal("1000000"), "band": "margin_call"}
    MarginCall.objects.create(state="escalated", opened_at=now - timedelta(days=3), escalated_at=now - timedelta(days=1),
                              escalation_reason="overdue", proposed_resolution="waive", **common)
    MarginCall.objects.create(state="met", opened_at=now - timedelta(days=5), met_at=now - timedelta(days=4), met_by="top_up", **common)


def test_margin_call_export_names_the_state_and_how_it_was_escalated_or_met_as_the_pages_do(client, calls, officer):
    client.force_login(officer)
    export = "/reporting/export/margin-calls.{}"  # the list's default (open or escalated), then the met ones
    rows = {r["State"]: r for state in ("", "met") for r in _sheet(client.get(export.format("xlsx"), {"state": state}))}
    assert set(rows) == {"Escalated to a credit manager", "Met"}
    escalated, met = rows["Escalated to a credit manager"], rows["Met"]
    assert (escalated["Escalation reason"], escalated["Resolution proposed"]) == ("past the cure deadline", "Waive the call")
    assert met["Met by"] == "by a collateral top-up" and not met["Escalation reason"], "no reason is an empty cell"
    assert isinstance(escalated["Shortfall now (HKD)"], (int, float)), "money stays a number"

    client.force_login(_zh("credit_manager"))
    state, reason, met_by, proposed = _in("zh-hant", _("State"), _("Escalation reason"), _("Met by"), _("Resolution proposed"))
    lines = {r[state]: r for shown in ("", "met") for r in _csv(client.get(export.format("csv"), {"state": shown}))}
    expected = _in("zh-hant", _("Escalated to a credit manager"), pgettext_lazy("margin call", "Met"), _("past the cure deadline"), _("Waive the call"),
                   _("by a collateral top-up"))
    assert set(lines) == set(expected[:2]) and not set(lines) & {"escalated", "met"}
    assert (lines[expected[0]][reason], lines[expected[0]][proposed], lines[expected[1]][met_by]) == tuple(expected[2:])
    assert not {lines[expected[0]][reason], lines[expected[1]][met_by]} & {"overdue", "top_up", "past the cure deadline"}


def test_complaint_export_names_the_channel_state_and_outcome_as_the_page_does(client, alice, compliance_user):
    from django.utils import timezone

    from lending.reporting.models import Complaint

    now = timezone.now()
    Complaint.objects.create(client=alice, complainant_name="Alice Wong", channel="regulator", received_at=now, subject="Fees", details="-",
                             logged_by=compliance_user, state="closed", acknowledge_due=now, answer_due=now, closed_at=now,
                             closed_by=compliance_user, outcome="partly_upheld")
    client.force_login(compliance_user)
    (row,) = _sheet(client.get("/reporting/export/complaints.xlsx"))
    assert (row["Channel"], row["State"], row["Outcome"]) == ("Referred by a regulator", "Closed", "Partly upheld")

    client.force_login(_zh("compliance"))
    channel, state, outcome = _in("zh-hant", _("Channel"), _("State"), _("Outcome"))
    (line,) = _csv(client.get("/reporting/export/complaints.csv"))
    assert (line[channel], line[state], line[outcome]) == tuple(_in("zh-hant", _("Referred by a regulator"), _("Closed"), _("Partly upheld")))
    assert not {line[channel], line[state], line[outcome]} & {"regulator", "closed", "partly_upheld", "Referred by a regulator", "Partly upheld"}


def test_group_member_export_names_the_basis_and_the_state_as_the_page_does(client, alice, compliance_user):
    from lending.reporting.models import GroupMembership, RelatedClientGroup

    group = RelatedClientGroup.objects.create(name="Wong family", basis="common_control", description="-", created_by=compliance_user)
    GroupMembership.objects.create(group=group, client=alice, relationship="director", reason="-", effective_from=date(2026, 11, 1),
                                   state="active", proposed_by=compliance_user)
    client.force_login(compliance_user)
    (row,) = _sheet(client.get("/reporting/export/group-members.xlsx"))
    assert (row["Basis"], row["State"]) == ("Common control", "In the group")

    client.force_login(_zh("compliance"))
    basis, state = _in("zh-hant", _("Basis"), _("State"))
    (line,) = _csv(client.get("/reporting/export/group-members.csv"))
    assert (line[basis], line[state]) == tuple(_in("zh-hant", _("Common control"), _("In the group")))
    assert not {line[basis], line[state]} & {"common_control", "active", "Common control", "In the group"}
