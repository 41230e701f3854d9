"""Price alarms read in the reader's language: raised by a feed or the beat (no reader), put in words when read.
The stored message stays the English record of what was raised."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from lending.risk import services
from lending.risk.models import AlarmKind, PriceAlarm
from portal.audit import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def alarmed(book, sources):
    """A deviating source (gamma), then twenty minutes on: every source stale and no fresh BTC or ETH price."""
    for code, price in (("alpha", "760000"), ("beta", "761000"), ("gamma", "790000")):
        services.quote_record(actor=SYSTEM, source_code=code, asset="BTC", price_hkd=price)
    services.quotes_record(rows=[{"source_code": "alpha", "asset": "BTC", "price_hkd": "1.00"}])  # beyond the policy band
    assert PriceAlarm.objects.filter(kind=AlarmKind.SOURCE_DEVIATION, cleared_at__isnull=True).exists()
    assert PriceAlarm.objects.filter(kind=AlarmKind.QUOTE_REFUSED, cleared_at__isnull=True).exists()
    with time_machine.travel(timezone.now() + timedelta(minutes=20), tick=False):
        services.reference_prices_refresh(refused=[])
        yield


def _read(client, path: str, user) -> str:
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def test_price_alarms_read_in_chinese_on_the_prices_page_and_the_board(client, alarmed):
    from tests.helpers import make_user

    reader = make_user("credit_manager", email="wing@example.com", language="zh-hant")
    prices = _read(client, "/risk/prices/", reader)
    assert "ALPHA：最後一次 BTC 報價於" in prices and "已超過 15 分鐘。" in prices
    assert "15 分鐘內沒有任何 ETH 來源報價；參考價格未有更新。" in prices
    for english in ("is older than", "has quoted within", "the reference price is not updated"):
        assert english not in prices
    board = _read(client, "/risk/board/", reader)
    assert "15 分鐘內沒有任何 BTC 來源報價" in board and "has quoted within" not in board


def test_a_deviation_and_a_refused_quote_read_in_chinese_while_they_hold(client, book, sources):
    from tests.helpers import make_user

    for code, price in (("alpha", "760000"), ("beta", "761000"), ("gamma", "790000")):
        services.quote_record(actor=SYSTEM, source_code=code, asset="BTC", price_hkd=price)
    services.quotes_record(rows=[{"source_code": "alpha", "asset": "BTC", "price_hkd": "1.00"}])
    page = _read(client, "/risk/prices/", make_user("credit_manager", email="wing@example.com", language="zh-hant"))
    assert "GAMMA 的 BTC 報價為 HK$790,000.00，偏離中位數 HK$761,000.00 達 3.8%（上限 2.0%）。" in page
    assert "alpha：BTC 報價 HK$1.00 被拒：" in page
    assert "quotes BTC at" not in page and "refused:" not in page and "from the governed price" not in page


def test_the_stored_message_stays_in_english_and_the_english_page_reads_it(client, alarmed, officer):
    alarm = PriceAlarm.objects.get(key="ETH:stale_price", cleared_at__isnull=True)
    assert alarm.message == "No ETH source has quoted within 15 minutes; the reference price is not updated."
    assert alarm.message in _read(client, "/risk/prices/", officer)


def test_an_alarm_stored_without_its_parameters_is_shown_by_its_message(client, book, officer):
    PriceAlarm.objects.create(key="BTC:stale_price", asset="BTC", kind=AlarmKind.STALE_PRICE, message="Recorded before: no BTC source.",
                              details={"sources": 0})
    assert "Recorded before: no BTC source." in _read(client, "/risk/prices/", officer)
