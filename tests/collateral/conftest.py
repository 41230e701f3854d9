"""Collateral fixtures: clients with confirmed securities margin accounts, a back-office key, holdings."""

from __future__ import annotations

import pytest

from tests.lending.conftest import approved_policy, draft, eligible_client, facts, outsider, policy, prices  # noqa: F401


def margin_client(user, *, account: str, officer):
    from onboarding import services as onboarding

    profile = onboarding.profile_get_or_create(user=user)
    onboarding.profile_update(user=user, data={"margin_account_number": account})
    onboarding.profile_confirm_margin_account(profile_id=profile.pk, actor=officer)
    return user


@pytest.fixture
def accounts(alice, charlie, officer):
    """alice holds margin account M-1001, charlie M-2002 (both confirmed by an officer)."""
    margin_client(alice, account="M-1001", officer=officer)
    margin_client(charlie, account="M-2002", officer=officer)
    return {"alice": "M-1001", "charlie": "M-2002"}


@pytest.fixture
def machine_key(credit_manager):
    from lending.collateral import services

    key, token = services.machine_key_create(actor=credit_manager, name="Back office")
    key.token = token
    return key


def positions_csv(batch_id: str, lines, *, as_of="2026-03-02") -> str:
    rows = ["batch_id,as_of,account,instrument,quantity"] + [f"{batch_id},{as_of},{a},{i},{q}" for a, i, q in lines]
    return "\n".join(rows) + "\n"


def statement_csv(batch_id: str, lines, *, as_of="2026-03-02") -> str:
    rows = ["batch_id,as_of,account,instrument,held,pledged"] + [f"{batch_id},{as_of},{a},{i},{h},{p}" for a, i, h, p in lines]
    return "\n".join(rows) + "\n"


@pytest.fixture
def holdings(accounts, db):
    """alice: 2,000 HSBC (00005), 500 Tencent (00700); 2 BTC, 10 ETH in custody. charlie: 1,000 HSBC."""
    from lending.collateral import services
    from portal.audit import SYSTEM

    services.batch_import(kind="positions_eod", actor=SYSTEM, channel="command", content=positions_csv(
        "EOD-1", [("M-1001", "00005", 2000), ("M-1001", "700", 500), ("M-2002", "00005", 1000)]))
    services.batch_import(kind="custody_statement", actor=SYSTEM, channel="command", content=statement_csv(
        "CS-1", [("M-1001", "BTC", "2", "0"), ("M-1001", "ETH", "10", "0")]))
    return accounts
