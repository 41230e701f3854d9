"""Errors name a field as its reader knows it, in the reader's language, and write bounds as numbers are written:
"amount 不得少於 0.01。", "quantity must be at least 1E-8." and "btc_haircut must be at most 1." were shown."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from lending.inputs import decimal_input, quantity_input
from portal.errors import PortalError


def _message(fn, *args, **kwargs) -> PortalError:
    with pytest.raises(PortalError) as exc:
        fn(*args, **kwargs)
    return exc.value


def test_a_client_reads_the_field_and_the_bound_in_words_and_plain_numbers():
    assert _message(decimal_input, "0", "amount", minimum=Decimal("0.01")).message == "Amount must be at least 0.01."
    error = _message(quantity_input, "0", "quantity", asset="BTC")
    assert error.message == "Quantity must be at least 0.00000001." and "quantity" in error.fields
    with translation.override("zh-hant"):
        assert _message(decimal_input, "0", "amount", minimum=Decimal("0.01")).message == "金額 不得少於 0.01。"


def test_a_policy_number_is_named_by_its_label_and_an_application_line_by_its_number():
    assert _message(decimal_input, "2", "btc_haircut", maximum=Decimal("1")).message.startswith("Bitcoin haircut must be at most 1")
    error = _message(decimal_input, "0", "lines[1]", minimum=Decimal("1"), label="Line 1 quantity")
    assert error.message == "Line 1 quantity must be at least 1." and "lines[1]" in error.fields
    assert _message(decimal_input, "1e16", "amount", maximum=Decimal("1e15")).message == "Amount must be at most 1,000,000,000,000,000."
