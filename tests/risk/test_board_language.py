"""What a credit manager reads on the risk pages in Chinese: bands by lending's Band labels, the engine as 'System'."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lending.risk.revaluation import revalue_book

from .conftest import make_facility

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(db):
    from tests.helpers import make_user

    return make_user("credit_manager", email="wing@example.com", language="zh-hant")


def _read(client, path: str, user) -> str:
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def _card(page: str) -> str:
    start = page.index('data-testid="band-counts"')
    return page[start:page.index("</div>", start)]


def test_the_board_counts_bands_by_their_labels(client, book, alice, officer, reader):
    make_facility(alice, drawn="8000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    revalue_book()
    english = _card(_read(client, "/risk/board/", officer))
    assert "Watch" in english and "Margin call" in english and "Close-out" in english
    chinese = _card(_read(client, "/risk/board/", reader))
    assert "觀察" in chinese and "追加保證金通知" in chinese and "強制平倉" in chinese


def test_the_engine_is_named_system_in_chinese(client, book, alice, reader, django_capture_on_commit_callbacks):
    from lending.risk import services
    from lending.risk.models import MarginCall

    make_facility(alice, drawn="8000000", securities=(("10000000", "0.30"),), btc="2", eth="10")
    with django_capture_on_commit_callbacks(execute=True):
        revalue_book()
    services.stress_monthly_report(now=timezone.now())
    reports = _read(client, "/risk/stress/reports/", reader)
    assert "<td>系統</td>" in reports and ">system<" not in reports
    call = _read(client, f"/risk/margin-calls/{MarginCall.objects.get().pk}/", reader)
    assert "<td>系統</td>" in call and "<td>system</td>" not in call


def test_the_board_shows_money_to_the_cent(client, book, alice, officer):
    """The board's totals read in whole dollars (floatformat:0): HK$8,000,001 for a book drawn HK$8,000,000.55."""
    make_facility(alice, drawn="8000000.55", securities=(("10000000", "0.30"),), btc="2", eth="10")
    revalue_book()
    page = _read(client, "/risk/board/", officer)
    assert "HK$8,000,000.55</strong>" in page
