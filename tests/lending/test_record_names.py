"""Records named in the admin and the audit trail give their times in Hong Kong time, as every page does: a price's and a
book summary's names printed UTC without saying so, eight hours off."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db


def test_a_price_and_a_book_summary_are_named_in_hong_kong_time():
    from lending.models import Price
    from lending.risk.models import BookSummary

    moment = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Hong Kong
    assert str(Price(asset="BTC", price_hkd=Decimal("760000.00"), source="desk", as_of=moment)) == "BTC HK$760000.00 (desk, 2026-03-02 09:30 HKT)"
    assert str(BookSummary(taken_at=moment)) == "Book summary at 2026-03-02 09:30:00 HKT"
