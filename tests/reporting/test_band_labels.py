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


def _sheet(response) -> list[dict]:
    """The export's first sheet as one dict per row, keyed by its (translated) headers."""
    import io

    from openpyxl import load_workbook

    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _csv(response) -> list[dict]:
    import csv

    assert response.status_code == 200
    return list(csv.DictReader(b"".join(response.streaming_content).decode("utf-8-sig").splitlines()))


def _in(language, *labels):
    from django.utils import translation

    with translation.override(language):
        return [str(label) for label in labels]


def test_band_change_exports_name_the_bands_as_the_page_does_in_the_readers_language(client, moved):
    from django.utils.translation import gettext_lazy as _

    from tests.helpers import make_user

    client.force_login(make_user("compliance", email="wing@example.com", language="zh-hant"))
    from_band, to_band, drawn = _in("zh-hant", _("From band"), _("To band"), _("Drawn (HKD)"))
    (row,) = _sheet(client.get("/reporting/export/band-changes.xlsx"))
    assert (row[from_band], row[to_band]) == ("追加保證金通知", "強制平倉")
    assert isinstance(row[drawn], (int, float)) and row[drawn] == 1000, "money stays a number"
    (line,) = _csv(client.get("/reporting/export/band-changes.csv"))
    assert (line[from_band], line[to_band], line[drawn]) == ("追加保證金通知", "強制平倉", "1000.00")


def test_snapshot_exports_name_the_band_and_the_collateral_as_the_page_does(client, moved, compliance_user):
    from django.utils.translation import gettext_lazy as _

    from tests.helpers import make_user

    client.force_login(compliance_user)
    rows = _sheet(client.get("/reporting/export/snapshots.xlsx"))
    assert {r["Collateral"] for r in rows} >= {"Securities", "Total (after the VA cap)"}
    assert {r["Band"] for r in rows if r["Collateral"] == "Total (after the VA cap)"} == {"Healthy"}
    assert all(isinstance(r["Market value (HKD)"], (int, float)) for r in rows), "money stays a number"

    client.force_login(make_user("compliance", email="wing@example.com", language="zh-hant"))
    collateral, band = _in("zh-hant", _("Collateral"), _("Band"))
    lines = _csv(client.get("/reporting/export/snapshots.csv"))
    assert {r[collateral] for r in lines} >= {"證券", "總計（虛擬資產上限後）"}
    assert "正常" in {r[band] for r in lines}
    assert not {r[collateral] for r in lines} & {"securities", "total", "BTC", "ETH"}
    assert not {r[band] for r in lines} & {"healthy", "watch", "margin_call", "close_out"}
