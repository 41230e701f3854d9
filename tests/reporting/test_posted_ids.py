"""A record id posted back from a reporting page that is not a record number is a clear error on the page, and
nothing changes (``int()`` of it raised: a 500 on the capital, complaint, retention and group pages; found by
crawling the pages as compliance and posting their forms)."""

from __future__ import annotations

from datetime import date

import pytest

from lending.reporting import services
from lending.reporting.models import CapitalEntry, Complaint, DisposalRequest, GroupMembership

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("typed", ["abc", "NaN", "1e309", "2026-12-02T25:00", "²", ""])
def test_a_posted_id_that_is_not_a_record_number_is_refused_on_the_reporting_pages(client, alice, credit_manager, compliance_user, typed):
    entry = services.capital_propose(actor=credit_manager, as_of=date(2026, 11, 30), liquid_capital="1000000", source_reference="FRR", reason="r")
    complaint = services.complaint_log(actor=alice, subject="s", details="d")
    group = services.client_group_create(actor=credit_manager, name="G", basis="family", description="d")
    member = services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=alice, relationship="r", reason="r",
                                                  effective_from=date(2026, 11, 1))
    disposal = DisposalRequest.objects.create(record_type="risk.margincall", record_ids=[1], reason="past retention", requested_by=credit_manager)
    client.force_login(compliance_user)
    for path, data in (
        ("/reporting/capital/", {"action": "approve", "entry": typed}),
        (f"/reporting/complaints/{complaint.pk}/", {"action": "assign", "assignee": typed}),
        ("/reporting/retention/", {"action": "approve", "request": typed}),
        (f"/reporting/groups/{group.pk}/", {"action": "approve", "membership": typed}),
    ):
        response = client.post(path, data, follow=True)
        assert response.status_code == 200, (path, response.status_code)
        assert "must be a record number" in response.content.decode() or "Choose who handles" in response.content.decode(), path
    assert CapitalEntry.objects.get(pk=entry.pk).status == entry.status
    assert Complaint.objects.get(pk=complaint.pk).assigned_to_id == complaint.assigned_to_id
    assert DisposalRequest.objects.get(pk=disposal.pk).state == disposal.state
    assert GroupMembership.objects.get(pk=member.pk).state == member.state
