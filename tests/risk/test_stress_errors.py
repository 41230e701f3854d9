"""A stress run refused for a bad shock says why in the reader's language: the messages were English-only text."""

import pytest
from django.utils import translation

from lending.risk import selectors
from portal.errors import PortalError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("shocks", "field"), [({"btc": "x", "eth": 0, "securities": 0}, "btc"),
                                               ({"btc": 0, "eth": 0, "securities": "-50"}, "securities")])
def test_a_bad_shock_is_refused_in_the_readers_language(shocks, field):
    with translation.override("en"), pytest.raises(PortalError) as english:
        selectors.stress_shocks_clean(**shocks)
    with translation.override("zh-hant"), pytest.raises(PortalError) as chinese:
        selectors.stress_shocks_clean(**shocks)
    assert english.value.code == chinese.value.code == "validation_error" and field in chinese.value.fields
    assert "shock" in english.value.message
    assert "shock" not in chinese.value.message and chinese.value.message != english.value.message
    assert chinese.value.fields[field] != english.value.fields[field]
