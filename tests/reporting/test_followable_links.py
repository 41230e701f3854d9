"""Every link a compliance officer is shown leads to a page they may open: none answers 403.

The officer reads the risk board, the workbench's risk panel, the SMF pack and the reporting registers; every
same-site link on those pages is followed as the same user. A link to a page their role may not open (a margin
call, which needs the margin-call permission) is shown as its text instead.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pprint import pformat
from urllib.parse import urlsplit

import pytest

from tests.reporting import test_smf_pack

# The SMF pack tests' book: two facilities, margin calls in every state, a stress report, capital and a deviation.
frozen, smf_book, AS_OF = test_smf_pack.frozen, test_smf_pack.smf_book, test_smf_pack.AS_OF

pytestmark = pytest.mark.django_db

# Not pages: signing out and the language switch act on the session.
NOT_PAGES = ("/accounts/logout/", "/language/", "/static/", "/media/")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.hrefs.append(href)


def internal_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    out = []
    for href in parser.hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith(NOT_PAGES):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


def refused_links(client, pages: list[str]) -> dict[str, list[str]]:
    """``{page: [links on it that answer 403]}`` for the signed-in user, each link followed once."""
    answers: dict[str, int] = {}
    refused: dict[str, list[str]] = {}
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        for link in internal_links(response.content.decode()):
            if link not in answers:
                answers[link] = client.get(link).status_code
            if answers[link] == 403:
                refused.setdefault(page, []).append(link)
    return refused


@pytest.fixture
def band_change(smf_book):
    from django.utils import timezone

    from lending.risk.models import BandChange

    f1, _f2 = smf_book
    return BandChange.objects.create(facility=f1, client=f1.client, from_band="margin_call", to_band="close_out", drawn_balance=f1.drawn_balance,
                                     market_value=0, va_market_value=0, lending_value=0, utilisation="1.20", at=timezone.now())


def test_compliance_is_shown_no_link_it_may_not_follow(client, smf_book, band_change, compliance_user):
    from lending.reporting import services
    from lending.reporting.models import Deviation

    pack = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    deviation = Deviation.objects.get()
    client.force_login(compliance_user)
    pages = [
        "/workbench/", "/risk/board/", f"/reporting/packs/{pack.pk}/", "/reporting/packs/", "/reporting/band-changes/",
        "/reporting/snapshots/", "/reporting/deviations/", f"/reporting/deviations/{deviation.pk}/", "/reporting/capital/",
        "/reporting/groups/", "/reporting/complaints/", "/reporting/retention/", "/reporting/record-requests/",
    ]
    refused = refused_links(client, pages)
    assert not refused, pformat(refused)


@pytest.mark.parametrize("register", ["/reporting/band-changes/", "/reporting/snapshots/"])
def test_registers_link_a_facility_by_the_facility_pages_own_rule(client, smf_book, band_change, officer, compliance_user, monkeypatch,
                                                                  register):
    """The link follows ``portal.access.may_open`` (the facility page's declared permission), not a copy of it in the template."""
    from django.urls import resolve

    from lending.risk import services as risk_services
    from portal.permissions import Perm

    risk_services.snapshots_take(day=AS_OF)
    f1, _f2 = smf_book
    href = f'href="/lending/staff/facilities/{f1.pk}/"'
    client.force_login(officer)
    assert href in client.get(register).content.decode()
    client.force_login(compliance_user)
    page = client.get(register).content.decode()
    assert href not in page and f"FAC-{f1.pk:06d}" in page

    # Were the facility page to ask for another permission, the registers would stop linking it for the officer.
    monkeypatch.setattr(resolve(f"/lending/staff/facilities/{f1.pk}/").func, "staff_perm", Perm.CAPITAL_APPROVE)
    client.force_login(officer)
    page = client.get(register).content.decode()
    assert href not in page and f"FAC-{f1.pk:06d}" in page
