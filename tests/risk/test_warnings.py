"""Early warnings below the margin-call level: once per crossing, re-armed on the way down, in the
client's language, with the distance to the call in BTC/ETH price terms; a bulk fan-out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.models import Facility
from lending.risk.models import RevaluationRun, WarningCrossing
from lending.risk.warnings import KIND, warnings_notify
from portal.models import Notification
from tests.helpers import make_user

from .conftest import ETH, make_facility, reload, set_prices

pytestmark = pytest.mark.django_db

# Securities 10,000,000 at 30% → 7,000,000; 10 BTC at 60% → 4 × price. Drawn 7,900,000.
#   BTC 760,000: LV 10,040,000 → 78.69%    BTC 700,000: LV 9,800,000 → 80.61%
#   BTC 600,000: LV 9,400,000 → 84.04%     BTC 440,000: LV 8,760,000 → 90.18%
#   BTC 300,000: LV 8,200,000 → 96.34%     BTC 200,000: LV 7,800,000 → 101.28% (margin call)
SHAPE = {"drawn": "7900000", "securities": (("10000000", "0.30"),), "btc": "10"}


def _tick(btc, *, eth=ETH):
    set_prices(btc=Decimal(btc), eth=eth)
    run = RevaluationRun.objects.order_by("-id").first()
    warnings_notify(run_id=run.pk)
    return run


def _warnings(user):
    return list(Notification.objects.filter(user=user, kind=KIND).order_by("id"))


def test_each_level_warns_once_per_crossing_not_on_every_tick(book, alice):
    facility = make_facility(alice, **SHAPE)
    _tick(760000)
    assert reload(facility).warned_level == 0 and _warnings(alice) == []
    _tick(700000)
    assert reload(facility).warned_level == Decimal("0.8000")
    assert len(_warnings(alice)) == 1
    for price in (690000, 650000, 600000, 600000):  # still between 80% and 90%: repeated ticks say nothing
        _tick(price)
    assert len(_warnings(alice)) == 1
    _tick(440000)
    assert reload(facility).warned_level == Decimal("0.9000")
    titles = [n.title for n in _warnings(alice)]
    assert len(titles) == 2 and "90.2%" in titles[1]
    _tick(440000)
    assert len(_warnings(alice)) == 2


def test_falling_back_below_a_level_re_arms_it(book, alice):
    facility = make_facility(alice, **SHAPE)
    _tick(440000)  # straight past both levels: one warning, at the higher level
    assert len(_warnings(alice)) == 1 and reload(facility).warned_level == Decimal("0.9000")
    _tick(700000)  # back under 90%, still over 80%: 90% re-armed, nothing sent
    assert reload(facility).warned_level == Decimal("0.8000") and len(_warnings(alice)) == 1
    _tick(440000)  # over 90% again: warned again
    assert len(_warnings(alice)) == 2
    _tick(760000)  # under every level
    assert reload(facility).warned_level == 0
    _tick(700000)
    assert len(_warnings(alice)) == 3
    rearmed = WarningCrossing.objects.filter(facility_id=facility.pk, notify=False)
    assert sorted(rearmed.values_list("to_level", flat=True)) == [Decimal("0"), Decimal("0.8000")]


def test_straight_into_margin_call_sends_no_warning_and_coming_back_sends_none(book, alice):
    facility = make_facility(alice, **SHAPE)
    _tick(200000)  # 101% — the margin call's own notice speaks
    assert reload(facility).band == "margin_call" and reload(facility).warned_level == Decimal("0.9000")
    assert _warnings(alice) == []
    _tick(300000)  # 96%: the call is still open, the level was never left
    assert _warnings(alice) == []


def test_the_warning_states_the_distance_to_the_call_in_btc_price_terms(book, alice):
    make_facility(alice, **SHAPE)
    _tick(700000)
    note = _warnings(alice)[0]
    # Call above 100%: LV must stay ≥ 7,900,000, so BTC's 4 × P ≥ 900,000 → P ≥ 225,000; 1 − 900,000/2,800,000 = 67.86%.
    assert "80.6%" in note.title
    assert "67.9% in bitcoin (to HK$224,980.00)" in note.body
    assert "past the early-warning level of 80%" in note.body and "above 100%" in note.body
    assert note.link == f"/lending/facilities/{Facility.objects.get().pk}/"
    assert note.category == "warning"


def test_the_warning_is_in_the_clients_language_and_read_in_the_readers(book):
    from django.utils import translation

    from portal.notifications import notification_text

    mei = make_user("client", email="mei.warn@example.com", language="zh-hant")
    make_facility(mei, **SHAPE)
    _tick(700000)
    note = _warnings(mei)[0]
    assert "預警" in note.title and "FAC-" in note.title
    assert "比特幣" in note.body
    with translation.override("en"):
        title, body = notification_text(note)
    assert title.startswith("Early warning") and "bitcoin" in body


def test_a_warning_task_run_twice_sends_each_warning_once(book, alice):
    make_facility(alice, **SHAPE)
    run = _tick(700000)
    assert warnings_notify(run_id=run.pk) == 0
    assert warnings_notify() == 0
    assert len(_warnings(alice)) == 1


def test_the_warning_is_emailed_once_after_commit(book, alice, django_capture_on_commit_callbacks):
    from django.core import mail

    make_facility(alice, **SHAPE)
    with django_capture_on_commit_callbacks(execute=True):
        set_prices(btc=Decimal("700000"), eth=ETH)
    assert len(_warnings(alice)) == 1
    emails = [m for m in mail.outbox if "Early warning" in m.subject]
    assert len(emails) == 1 and emails[0].to == [alice.email]


def _fan_out_queries(n: int, policy) -> int:
    from django.db import transaction

    sid = transaction.savepoint()
    try:
        clients = [make_user("client", email=f"fan{n}-{i}@example.com") for i in range(n)]
        for c in clients:
            make_facility(c, **SHAPE)
        set_prices(btc=Decimal("760000"), eth=ETH)
        set_prices(btc=Decimal("700000"), eth=ETH)
        run = RevaluationRun.objects.order_by("-id").first()
        assert run.warnings == n
        with CaptureQueriesContext(connection) as ctx:
            assert warnings_notify(run_id=run.pk) == n
        return len(ctx.captured_queries)
    finally:
        transaction.savepoint_rollback(sid)


def test_fan_out_query_count_is_constant_in_the_number_of_facilities(book):
    assert _fan_out_queries(2, book) == _fan_out_queries(12, book)


def test_warning_levels_must_lie_below_the_margin_call_level(officer):
    from lending import services
    from portal.errors import PortalError
    from tests.lending.conftest import POLICY_NUMBERS

    for bad in (["0.80", "1.00"], "0.8, 1.2", ["0.1", "0.2", "0.3", "0.4", "0.5"], ["abc"]):
        with pytest.raises(PortalError):
            services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"warning_levels": bad}, reason="bad")
    ok = services.policy_propose(actor=officer, numbers=POLICY_NUMBERS | {"warning_levels": "0.85, 0.75"}, reason="ok")
    assert ok.warning_levels == ["0.7500", "0.8500"]
