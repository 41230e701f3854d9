"""Servicing fixtures: lending's policy (with the servicing policy) in force, prices, facilities with ledger entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.lending.conftest import big_officer, eligible_client, facts, policy, prices  # noqa: F401 (fixtures)
from tests.risk.conftest import make_facility as _risk_make_facility
from tests.risk.conftest import set_prices
from tests.servicing.helpers import fixing


@pytest.fixture
def book(db, officer, credit_manager):
    from tests.lending.conftest import approved_policy

    policy = approved_policy(officer=officer, credit_manager=credit_manager)  # noqa: F811
    set_prices()
    return policy


@pytest.fixture
def prime(book, officer, officer2):
    """HKD Prime 5.25% from 1 Jan 2025 (so the standard tier pays 8.25%)."""
    return fixing(rate="0.052500", effective=date(2025, 1, 1), maker=officer, checker=officer2)


def post(facility, kind, amount, day, sign=None):
    """A ledger entry with a value date, as the services write it (facility locked, balance moved)."""
    from django.db import transaction

    from lending.ledger import ledger_post
    from lending.models import Facility

    with transaction.atomic():
        f = Facility.objects.select_for_update().get(pk=facility.pk)
        entry = ledger_post(facility=f, kind=kind, amount=Decimal(amount), value_date=day, sign=sign, reference="test")
        f.save(update_fields=["drawn_balance"])
    return entry


@pytest.fixture
def opened(db, eligible_client, officer, officer2, django_capture_on_commit_callbacks):  # noqa: F811
    """alice's facility opened through the lending services: reviewed, approved, letter accepted."""
    from lending import services
    from tests.lending.conftest import submitted

    fixing(rate="0.052500", effective=date(2025, 1, 1), maker=officer, checker=officer2)
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="3000000")
    return services.application_accept(user=eligible_client, application_id=app.pk, letter_sha256=app.letter_sha256)


def make_facility(client, **kwargs):
    """A facility (risk's factory) opened on 1 January 2025, so past periods' entries, accruals and statements concern it."""
    from django.utils import timezone

    from lending.models import Facility

    facility = _risk_make_facility(client, **kwargs)
    Facility.objects.filter(pk=facility.pk).update(opened_at=timezone.make_aware(timezone.datetime(2025, 1, 1)))
    return Facility.objects.get(pk=facility.pk)


old_facility = make_facility


@pytest.fixture
def alice(alice):
    """The owner, enrolled in TOTP: drawdowns and releases need an authenticator (``portal.mfa``)."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(alice, secret)
    alice.totp_secret = secret
    return alice
