"""The risk engine's records name a band in words, as every other page does (lending's Band labels), in the reader's language."""

from __future__ import annotations

from datetime import date

import pytest

from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def moved(book, alice):
    from django.utils import timezone

    from lending.risk import services as risk_services
    from lending.risk.models import BandChange

    facility = make_facility(alice, drawn="1000")
    risk_services.snapshots_take(day=date(2026, 11, 1))
    BandChange.objects.create(facility=facility, client=alice, from_band="margin_call", to_band="close_out", drawn_balance=facility.drawn_balance,
                              market_value=0, va_market_value=0, lending_value=0, utilisation="1.20", at=timezone.now())
    return facility


def test_band_changes_name_the_bands_in_words(client, moved, compliance_user):
    client.force_login(compliance_user)
    page = client.get("/reporting/band-changes/").content.decode()
    assert "<td>Margin call</td><td>Close-out</td>" in page
    assert "<td>margin_call</td>" not in page and "<td>close_out</td>" not in page


def test_band_changes_and_snapshots_name_the_bands_in_chinese(client, moved):
    from tests.helpers import make_user

    reader = make_user("compliance", email="wing@example.com", language="zh-hant")
    client.force_login(reader)
    page = client.get("/reporting/band-changes/").content.decode()
    assert "<td>追加保證金通知</td><td>強制平倉</td>" in page
    snapshots = client.get("/reporting/snapshots/").content.decode()
    assert "<td>正常</td></tr>" in snapshots and "<td>healthy</td>" not in snapshots
