"""The credit queue's per-state counts are kept by the database (``ApplicationStateCount``), so the page never
counts the book: they must stay equal to a count of the applications through every way rows are written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Count

from lending import selectors, services
from lending.models import ApplicationStateCount, AppState, FacilityApplication
from tests.helpers import make_user

pytestmark = pytest.mark.django_db


def _counted() -> dict[str, int]:
    rows = FacilityApplication.objects.exclude(state=AppState.DRAFT).values("state").annotate(n=Count("id"))
    return {r["state"]: r["n"] for r in rows}


def _app(client, state=AppState.DRAFT):
    app = FacilityApplication.objects.create(client=client, requested_limit=Decimal("1000000"), purpose="x")
    if state != AppState.DRAFT:
        FacilityApplication.objects.filter(pk=app.pk).update(state=state)
    return app


def test_counts_follow_inserts_state_changes_bulk_writes_and_deletes(alice, charlie):
    assert selectors.queue_counts() == _counted() == {}
    a = _app(alice)
    b = _app(charlie, AppState.AWAITING_DECISION)
    assert selectors.queue_counts() == _counted() == {"awaiting_decision": 1}
    FacilityApplication.objects.bulk_create([FacilityApplication(client=alice, requested_limit=Decimal("1"), purpose="x", state=s)
                                             for s in [AppState.SUBMITTED] * 3 + [AppState.DECLINED] * 2])
    assert selectors.queue_counts() == _counted() == {"awaiting_decision": 1, "submitted": 3, "declined": 2}
    FacilityApplication.objects.filter(state=AppState.SUBMITTED).update(state=AppState.IN_REVIEW)
    FacilityApplication.objects.filter(pk=b.pk).update(purpose="no state change")  # touches no count
    assert selectors.queue_counts() == _counted() == {"awaiting_decision": 1, "in_review": 3, "declined": 2}
    FacilityApplication.objects.filter(state=AppState.DECLINED).delete()
    a.delete()
    assert selectors.queue_counts() == _counted() == {"awaiting_decision": 1, "in_review": 3}
    assert ApplicationStateCount.objects.get(state=AppState.DRAFT).n == 0


def test_counts_follow_the_services_transitions(eligible_client):
    from .conftest import draft

    app = draft(eligible_client)
    assert selectors.queue_counts() == {}
    services.application_withdraw(user=eligible_client, application_id=app.pk)
    assert selectors.queue_counts() == _counted() == {"withdrawn": 1}


def test_the_queue_reads_one_row_per_state_whatever_the_book(alice, django_assert_num_queries):
    other = make_user("client", email="many@example.com")
    FacilityApplication.objects.bulk_create([FacilityApplication(client=other, requested_limit=Decimal("1"), purpose="x", state=AppState.ACTIVE)
                                             for _ in range(500)])
    with django_assert_num_queries(1) as ctx:
        assert selectors.queue_counts() == {"active": 500}
    assert "lending_applicationstatecount" in ctx.captured_queries[0]["sql"]
