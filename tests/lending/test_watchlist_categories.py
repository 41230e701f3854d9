"""A watch list's category (sanctions, politically exposed person, internal) reads as a word in the reader's
language wherever it is shown: the watch list, the screening queue and the credit review's reason. It was a bare
code ("pep") on every page and in the Chinese review ("可能吻合：… (pep，100.0%)"), and any other text was kept."""

from __future__ import annotations

import pytest
from django.utils import translation

from lending import services
from lending.models import WatchListCategory, WatchListEntry
from lending.review import step_reasons
from portal.errors import PortalError

from .conftest import submitted

pytestmark = pytest.mark.django_db


def test_a_review_reason_names_the_category_in_the_readers_language(eligible_client, officer, django_capture_on_commit_callbacks):
    services.watchlist_add(actor=officer, name="WONG, Alice", category=WatchListCategory.PEP)
    step = submitted(eligible_client, django_capture_on_commit_callbacks).steps.get(code="screening")
    with translation.override("zh-hant"):
        chinese = " ".join(step_reasons(step))
    with translation.override("en"):
        english = " ".join(step_reasons(step))
    assert "politically exposed person" in english and "pep" not in english
    assert "政治人物" in chinese and "pep" not in chinese


def test_the_watch_list_page_offers_and_shows_the_categories_in_words(client, officer, admin_user):
    services.watchlist_add(actor=officer, name="HO, Wing Kei", category="pep")
    client.force_login(officer)
    client.cookies["django_language"] = "zh-hant"
    page = client.get("/lending/staff/watchlist/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert '<option value="pep">政治人物</option>' in page and "<td>政治人物</td>" in page
    assert "<option>pep</option>" not in page


def test_an_unknown_category_is_refused_and_nothing_is_added(officer, api_client):
    with pytest.raises(PortalError) as refused:
        services.watchlist_add(actor=officer, name="SOMEONE", category="friends")
    assert refused.value.code == "validation_error" and "category" in refused.value.fields
    assert not WatchListEntry.objects.exists()


def test_the_api_refuses_an_unknown_category(client, officer):
    client.force_login(officer)
    response = client.post("/api/v1/lending/staff/watchlist/", {"name": "SOMEONE", "category": "friends"}, content_type="application/json")
    assert response.status_code == 400 and "category" in response.json()["error"]["fields"]
    assert not WatchListEntry.objects.exists()
    assert client.post("/api/v1/lending/staff/watchlist/", {"name": "SOMEONE", "category": "internal"},
                       content_type="application/json").status_code == 201


def test_a_second_approval_against_the_recommendation_names_it_in_the_readers_language():
    """The reason is stored in English with the recommendation's English name ("refer to officer"), which the
    Chinese sentence carried as it was."""
    from lending.views import second_approval_reasons

    stored = ["overrides the review's recommendation to refer to officer"]
    with translation.override("zh-hant"):
        chinese = second_approval_reasons(stored)[0]
    with translation.override("en"):
        english = second_approval_reasons(stored)[0]
    assert "轉交客戶主任" in chinese and "refer" not in chinese
    assert "Refer to officer" in english or "refer to officer" in english
    with translation.override("zh-hant"):
        assert "something else" in second_approval_reasons(["overrides the review's recommendation to something else"])[0]
