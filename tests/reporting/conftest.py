"""Reporting fixtures: lending's policy and prices (shared with the risk suite) and a book of facilities."""

from __future__ import annotations

import pytest

from tests.risk.conftest import book, make_facility, policy, prices, set_prices  # noqa: F401

__all__ = ["make_facility", "set_prices"]


@pytest.fixture
def compliance2(db):
    from tests.helpers import make_user

    return make_user("compliance", email="cora@example.com", full_name="Cora Compliance")


@pytest.fixture
def credit_manager2(db):
    from tests.helpers import make_user

    return make_user("credit_manager", email="mark@example.com", full_name="Mark Manager")
