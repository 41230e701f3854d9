"""Dates and times typed or sent to lending: a well-formed but impossible one (30 February, hour 25) is a
clear validation error, never a 500 (Django's parse_date/parse_datetime raise on them; found by fuzzing)."""

from __future__ import annotations

import pytest

from lending.inputs import date_text, datetime_text
from portal.errors import PortalError


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "", None, "yesterday", "2026-03-02\x00"])
def test_an_impossible_or_missing_date_is_none(text):
    assert date_text(text) is None


@pytest.mark.parametrize("text", ["2026-12-02T25:00", "2026-02-30T10:00", "2026-12-02T10:61", "", None, "now"])
def test_an_impossible_or_missing_date_time_is_none(text):
    assert datetime_text(text) is None


def test_a_real_date_and_date_time_parse():
    assert date_text(" 2026-03-02 ").isoformat() == "2026-03-02"
    assert datetime_text("2026-03-02T16:10:00+08:00").isoformat() == "2026-03-02T16:10:00+08:00"


@pytest.mark.django_db
def test_a_price_quote_at_an_impossible_time_is_a_validation_error():
    from lending.risk.services import quote_record
    from portal.audit import SYSTEM

    with pytest.raises(PortalError) as exc:
        quote_record(actor=SYSTEM, source_code="desk", asset="BTC", price_hkd="760000", as_of="2026-12-02T25:00")
    assert exc.value.code == "validation_error" and "as_of" in exc.value.fields


def test_a_disposal_at_an_impossible_time_and_a_policy_from_an_impossible_day_are_validation_errors():
    from lending.recovery.services import _when
    from lending.services import effective_from_input

    with pytest.raises(PortalError) as exc:
        _when("2026-12-02T25:00")
    assert "executed_at" in exc.value.fields
    with pytest.raises(PortalError) as exc:
        effective_from_input("2027-02-30")
    assert "effective_from" in exc.value.fields
