"""Query counts pinned on the lending pages and list APIs, each measured at two data sizes in one test."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lending import services
from lending.models import FacilityApplication, FacilityTransaction, TxnKind
from tests.helpers import make_user

pytestmark = pytest.mark.django_db
MIXED = {"securities": (("10000000", "0.30"),), "btc": "2", "eth": "10"}
_seq = iter(range(1, 10**6))


def _facility(client_user, positions=1):
    from tests.risk.conftest import make_facility

    return make_facility(client_user, drawn="1000000", securities=tuple(("1000000", "0.30") for _ in range(positions)), btc="1", eth="2")


def _count(client, url) -> int:
    assert client.get(url).status_code == 200, url  # warm: session, caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def _grow(kind, ctx, n):
    officer, alice = ctx["officer"], ctx["alice"]
    for _ in range(n):
        i = next(_seq)
        if kind == "client":
            FacilityApplication.objects.create(client=alice, requested_limit=Decimal("1000000"), purpose="x")
            _facility(alice)
        elif kind == "facility":
            from lending.models import CollateralPosition

            f = ctx["facility"]
            CollateralPosition.objects.create(facility=f, kind="securities", haircut_class="A", market_value=Decimal("1000"), haircut=Decimal("0.3"))
            FacilityTransaction.objects.create(facility=f, kind=TxnKind.DRAWDOWN, amount=Decimal("1"), balance_after=f.drawn_balance, recorded_by=officer)
        elif kind == "facilities":
            _facility(make_user("client", email=f"f{i}@example.com"))
        elif kind == "prices":
            from lending.risk import services as risk_services
            from portal.audit import SYSTEM

            risk_services.price_source_create(actor=SYSTEM, code=f"desk{i}", name=f"Desk {i}", kind="desk")
            risk_services.quote_record(actor=officer, source_code=f"desk{i}", asset="BTC", price_hkd=str(760000 + i))
        elif kind == "policy":
            from .conftest import POLICY_NUMBERS

            services.policy_propose(actor=officer, numbers=POLICY_NUMBERS, reason=f"Proposal {i}")
        elif kind == "watchlist":
            services.watchlist_add(actor=officer, name=f"Listed Person {i}", aliases=f"Alias {i}")
        elif kind == "queue":
            app = FacilityApplication.objects.create(client=make_user("client", email=f"q{i}@example.com"), requested_limit=Decimal("1000000"),
                                                     purpose="x", submitted_at=timezone.now())
            FacilityApplication.objects.filter(pk=app.pk).update(state="awaiting_decision", screening_status="pending", review_run=1)


@pytest.fixture
def ctx(client, facts, policy, prices, officer, alice, credit_manager, compliance_user):
    return {"officer": officer, "alice": alice, "manager": credit_manager, "compliance": compliance_user, "facility": _facility(alice)}


# (who, url, what grows, queries)
PAGES = [
    ("alice", "/lending/", "client", 7),
    # The facility with its application, deciders and positions (with their instruments) in two queries; the policy and
    # prices read once for the page (portal.context.read_once) though the valuation and the risk panel both use them;
    # + the credit-limit history (its changes: the opening entry comes with the facility); + the accrued days that can
    # hold the facility's accruals (servicing.interest.accrual_days, one query).
    ("alice", "/lending/facilities/{facility}/", "facility", 17),
    ("manager", "/lending/staff/facilities/{facility}/", "facility", 21),
    ("manager", "/lending/staff/facilities/", "facilities", 9),
    ("manager", "/lending/staff/prices/", "prices", 11),
    # + the newest proposal's preview (haircuts, prices, one whole-book SELECT); + the classes without a haircut in the version in
    # force and in the previewed proposal (one query each); + the marginable lists of the version in force and the proposals, with
    # their entries (two queries; their instruments a third once a list has entries)
    ("manager", "/lending/staff/policy/", "policy", 16),
    ("manager", "/lending/staff/watchlist/", "watchlist", 9),
    ("compliance", "/lending/staff/screening/", "queue", 10),
    ("alice", "/api/v1/lending/applications/", "client", 6),
    ("alice", "/api/v1/lending/facilities/", "client", 8),  # + the policy and prices: valued at current prices, as the page
    ("manager", "/api/v1/lending/staff/applications/", "queue", 8),
    ("manager", "/api/v1/lending/staff/facilities/", "facilities", 8),
    ("manager", "/api/v1/lending/staff/prices/", "prices", 8),
    ("manager", "/api/v1/lending/staff/policies/", "policy", 9),  # + each version's marginable entries (one prefetch)
    ("manager", "/api/v1/lending/staff/watchlist/", "watchlist", 8),
    ("compliance", "/api/v1/lending/staff/screening/", "queue", 9),
    ("manager", "/api/v1/risk/staff/prices/sources/", "prices", 8),
]


@pytest.mark.parametrize(("who", "url", "kind", "expected"), PAGES, ids=[p[1] for p in PAGES])
def test_query_count_does_not_grow_with_the_data(client, ctx, who, url, kind, expected):
    user = {"alice": ctx["alice"], "manager": ctx["manager"], "compliance": ctx["compliance"]}[who]
    client.force_login(user)
    url = url.format(facility=ctx["facility"].pk)
    _grow(kind, ctx, 2)
    small = _count(client, url)
    _grow(kind, ctx, 10)
    large = _count(client, url)
    assert small == large, (url, small, large)
    assert small == expected, (url, small)
