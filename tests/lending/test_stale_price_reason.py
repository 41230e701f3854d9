"""A credit review that finds a stale price says whose price it was in the reader's language: the price authority stores
the source in English ('median of 3 sources'), and the reason carried it into Chinese sentences as it was."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.lending.conftest import submitted

pytestmark = pytest.mark.django_db


def test_a_stale_price_reason_names_its_source_in_the_readers_language(eligible_client, django_capture_on_commit_callbacks):
    from lending.models import CurrentPrice, ReviewStep
    from lending.review import reason_render

    stale_at = timezone.now() - timedelta(days=3)
    CurrentPrice.objects.filter(asset="BTC").update(as_of=stale_at, source="median of 3 sources")
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    step = ReviewStep.objects.get(application=app, run=app.review_run, code="valuation")
    stale = [r for r in step.reason_codes if r["code"] == "valuation.stale_price"]
    assert stale, step.reason_codes
    assert "3 個來源的中位數" in reason_render(stale[0], language="zh-hant")
    assert "median of 3 sources" in reason_render(stale[0], language="en")
    assert f"{timezone.localtime(stale_at):%Y-%m-%d %H:%M}" in reason_render(stale[0], language="en")  # Hong Kong time, as every page
