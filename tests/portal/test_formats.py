"""One date format in both languages, times in Hong Kong time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template
from django.utils import translation


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_dates_and_times_render_the_same_way_with_or_without_an_explicit_format(language):
    moment = dt.datetime(2026, 12, 1, 7, 5, tzinfo=dt.UTC)  # 15:05 in Hong Kong
    template = Template('{{ d }}|{{ d|date }}|{{ d|date:"Y-m-d" }}|{{ m }}|{{ m|date:"DATETIME_FORMAT" }}')
    with translation.override(language):
        out = template.render(Context({"d": dt.date(2026, 12, 1), "m": moment}))
    assert out == "2026-12-01|2026-12-01|2026-12-01|2026-12-01 15:05|2026-12-01 15:05"
