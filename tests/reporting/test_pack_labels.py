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
