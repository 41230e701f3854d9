"""The SMF control pack names each record's state and kind by its model's label (the choices class), in the
reader's language, on the page and in each language of the PDF; the stored figures keep the codes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.reporting import test_smf_pack
from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db
# The SMF pack tests' clock: 30 November 2026, 16:00 in Hong Kong.
frozen, NOW, AS_OF = test_smf_pack.frozen, test_smf_pack.NOW, test_smf_pack.AS_OF


@pytest.fixture
def pack(frozen, book, alice, officer, compliance_user):
    from lending.reporting import services
    from lending.risk import services as risk_services
    from lending.risk.models import CallState, MarginCall
    from lending.servicing.models import LimitChange

    facility = make_facility(alice, drawn="1000000")
    LimitChange.objects.create(facility=facility, old_limit=Decimal("50000000"), new_limit=Decimal("60000000"), reason="Annual review",
                               proposed_by=officer)
    opened = NOW - timedelta(hours=3)
    MarginCall.objects.create(facility=facility, client=alice, state=CallState.ESCALATED, opened_at=opened, cure_deadline=opened + timedelta(days=2),
                              escalated_at=NOW - timedelta(hours=1), shortfall=Decimal("1000"), shortfall_at_open=Decimal("1000"),
                              utilisation=Decimal("1.01"), utilisation_at_open=Decimal("1.01"), lending_value=Decimal("990000"),
                              drawn_balance=Decimal("1000000"), band="margin_call")
    risk_services.stress_monthly_report(now=NOW)
    return services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)


def _cells(page: str, testid: str) -> str:
    start = page.index(f'data-testid="{testid}"')
    return page[start:page.index("</table>", start)]


def test_pack_names_states_and_kinds_by_their_labels_on_the_page_and_in_the_pdf(client, pack, compliance_user):
    """One pack for every check: generating it (the PDF in two languages) is the slow part."""
    from portal.pdf import pdf_text
    from tests.helpers import make_user

    d = pack.data  # the stored figures keep the codes
    assert d["credit_limits"]["changes"][0]["state"] == "proposed"
    assert d["margin_calls"]["opened_calls"][0]["state"] == "escalated"
    assert d["stress_testing"]["reports"][0]["kind"] == "monthly"
    assert {p["status"] for p in d["haircuts"]["changes"]} == {"approved"}

    client.force_login(compliance_user)
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    assert "<td>Awaiting a credit manager</td>" in _cells(page, "pack-limit-changes")
    assert "<td>In force</td>" in _cells(page, "pack-policies")
    assert "<td>Escalated to a credit manager</td>" in _cells(page, "pack-calls")
    assert "<td>Monthly report</td>" in _cells(page, "pack-stress")
    for code in ("proposed", "approved", "escalated", "monthly"):
        assert f"<td>{code}</td>" not in page

    client.force_login(make_user("compliance", email="wing@example.com", language="zh-hant"))
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    assert "<td>待信貸經理核准</td>" in _cells(page, "pack-limit-changes")
    assert "<td>生效中</td>" in _cells(page, "pack-policies")
    assert "<td>已上報信貸經理</td>" in _cells(page, "pack-calls")
    assert "<td>每月報告</td>" in _cells(page, "pack-stress")

    words = pdf_text(bytes(pack.pdf)).split()  # a table cell may wrap
    for english, chinese in (("Awaiting a credit manager", "待信貸經理核准"), ("Escalated to a credit manager", "已上報信貸經理"),
                             ("Monthly report", "每月報告")):
        assert english in " ".join(words) and chinese in "".join(words)


def test_pack_xlsx_names_states_kinds_and_collateral_by_their_labels_in_both_languages(pack):
    """The XLSX is bilingual (it is stored, read by whoever downloads it), each label as the page names it."""
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(bytes(pack.xlsx)))

    def column(sheet, n):
        return [row[n] for row in book[sheet].iter_rows(min_row=2, values_only=True)]

    assert column("Limit changes", 1) == ["Awaiting a credit manager / 待信貸經理核准"]
    assert column("Margin calls", 2) == ["Escalated to a credit manager / 已上報信貸經理"]
    assert column("Stress", 1) == ["Monthly report / 每月報告"]
    assert set(column("Haircuts", 1)) == {"In force / 生效中"}
    assert all(isinstance(v, (int, float)) for v in column("Margin calls", 4)), "money stays a number"

    summary = {row[0]: row[1] for row in book["SMF"].iter_rows(min_row=2, values_only=True)}
    for code, label in (("securities", "Securities / 證券"), ("BTC", "Bitcoin / 比特幣"), ("ETH", "Ether / 以太幣")):
        assert code not in summary and isinstance(summary[label], (int, float))
    assert pack.data["book_source"]["kind"] == "live"  # no end-of-day valuation stored for today yet
    assert summary["Book valued from / 賬冊估值來源"] == (
        "Book valued live (today's end-of-day valuation is not stored yet). / 賬冊按即時估值（今天的日終估值尚未儲存）。")


def test_pack_page_names_the_book_source_and_the_collateral_as_the_xlsx_does(client, pack, compliance_user):
    from tests.helpers import make_user

    client.force_login(compliance_user)
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    chart = page[page.index('data-testid="asset-chart"'):page.index("</svg>", page.index('data-testid="asset-chart"'))]
    assert "Book valued live (today&#x27;s end-of-day valuation is not stored yet)." in page
    assert all(f">{label}</text>" in chart for label in ("Securities", "Bitcoin", "Ether"))

    client.force_login(make_user("compliance", email="wing@example.com", language="zh-hant"))
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    chart = page[page.index('data-testid="asset-chart"'):page.index("</svg>", page.index('data-testid="asset-chart"'))]
    assert "賬冊按即時估值（今天的日終估值尚未儲存）。" in page
    assert all(f">{label}</text>" in chart for label in ("證券", "比特幣", "以太幣"))


def test_pack_shows_stress_shocks_as_the_stress_pages_do_on_the_page_and_in_the_xlsx(client, frozen, book, alice, compliance_user):
    """Through risk_tags.shock, the stress pages' one way: to the places a shock needs, a rise with its sign."""
    import io

    from openpyxl import load_workbook

    from lending.reporting import services
    from lending.risk.models import StressReport

    make_facility(alice, drawn="1000000")
    StressReport.objects.create(kind=StressReport.Kind.AD_HOC, btc_shock=Decimal("-0.125"), eth_shock=Decimal("0.1"),
                                securities_shock=Decimal("-0.2"), result={}, created_at=NOW - timedelta(hours=2))
    pack = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    assert pack.data["stress_testing"]["reports"][0]["btc_shock"] == "-0.1250"  # the stored figures keep the ratios

    client.force_login(compliance_user)
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    assert "<td>-12.5% / +10% / -20%</td>" in _cells(page, "pack-stress")

    (shocks,) = [row[2] for row in load_workbook(io.BytesIO(bytes(pack.xlsx)))["Stress"].iter_rows(min_row=2, values_only=True)]
    assert shocks.lstrip("'") == "-12.5% / +10% / -20%"  # a cell starting with "-" is kept as text (portal.exports.cell)
