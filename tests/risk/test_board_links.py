"""The risk board and the workbench's risk panel link a margin call only for a reader who may open it.

Compliance may read the board (risk view) but not margin calls (the margin-call permission): it sees each call's
reference and the counts as text; an account officer, who manages calls, follows them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.risk.conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def open_call(book, alice):
    from django.utils import timezone

    from lending.risk.models import CallState, MarginCall

    facility = make_facility(alice, drawn="1000")
    opened = timezone.now() - timedelta(hours=2)
    return MarginCall.objects.create(
        facility=facility, client=alice, state=CallState.OPEN, opened_at=opened, cure_deadline=opened + timedelta(days=2),
        shortfall=Decimal("100000"), shortfall_at_open=Decimal("100000"), utilisation=Decimal("1.05"), utilisation_at_open=Decimal("1.05"),
        lending_value=Decimal("1000000"), drawn_balance=Decimal("1050000"), band="margin_call",
    )


def test_officer_follows_margin_calls_from_the_board_and_the_panel(client, open_call, officer):
    client.force_login(officer)
    board = client.get("/risk/board/").content.decode()
    assert f'<a href="/risk/margin-calls/{open_call.pk}/">{open_call.reference}</a>' in board and 'href="/risk/margin-calls/"' in board
    assert 'href="/risk/margin-calls/?state=open"' in client.get("/workbench/").content.decode()


def test_compliance_sees_margin_calls_on_the_board_and_the_panel_unlinked(client, open_call, compliance_user):
    client.force_login(compliance_user)
    board = client.get("/risk/board/").content.decode()
    assert open_call.reference in board and "/risk/margin-calls/" not in board
    workbench = client.get("/workbench/").content.decode()
    assert "/risk/margin-calls/" not in workbench and 'href="/risk/board/"' in workbench


def _facility_fact(page: str) -> str:
    start = page.index("<dt>Facility</dt>")
    return page[start:page.index("</dd>", start)]


def test_a_margin_call_links_its_facility_only_for_a_reader_who_may_open_it(client, open_call, officer):
    from django.contrib.auth.models import Permission

    from portal.permissions import Perm
    from tests.helpers import make_user

    client.force_login(officer)
    fact = _facility_fact(client.get(f"/risk/margin-calls/{open_call.pk}/").content.decode())
    assert f'<a href="/lending/staff/facilities/{open_call.facility_id}/">{open_call.facility.reference}</a>' in fact
    chaser = make_user("compliance", email="chaser@example.com")  # chases calls, records nothing on a facility
    chaser.user_permissions.add(Permission.objects.get(codename=Perm.MARGIN_CALL_MANAGE.codename))
    client.force_login(chaser)
    fact = _facility_fact(client.get(f"/risk/margin-calls/{open_call.pk}/").content.decode())
    assert open_call.facility.reference in fact and "<a " not in fact
