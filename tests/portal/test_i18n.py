"""English and Traditional Chinese: the switch, the remembered choice, no open redirect."""

from __future__ import annotations

import pytest

from portal.models import User

pytestmark = pytest.mark.django_db


def test_switching_to_chinese_sets_the_cookie_and_the_profile(client, alice):
    client.force_login(alice)
    response = client.post("/language/", {"language": "zh-hant", "next": "/dashboard/"})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert response.cookies["django_language"].value == "zh-hant"
    assert User.objects.get(pk=alice.pk).preferred_language == "zh-hant"
    page = client.get("/dashboard/").content.decode()
    assert '<html lang="zh-hant">' in page
    assert "通知" in page  # "Notifications" in the header
    assert "登出" in page  # "Sign out"


def test_the_saved_choice_follows_the_user_to_a_new_browser(client, alice):
    client.force_login(alice)
    client.post("/language/", {"language": "zh-hant", "next": "/dashboard/"})
    client.cookies.clear()
    client.force_login(User.objects.get(pk=alice.pk))
    assert '<html lang="zh-hant">' in client.get("/dashboard/").content.decode()


def test_switching_back_to_english(client, alice):
    client.force_login(alice)
    client.post("/language/", {"language": "zh-hant"})
    client.post("/language/", {"language": "en"})
    assert User.objects.get(pk=alice.pk).preferred_language == "en"
    assert '<html lang="en">' in client.get("/dashboard/").content.decode()


def test_staff_workbench_renders_in_chinese(client, bob):
    client.force_login(bob)
    client.post("/language/", {"language": "zh-hant"})
    page = client.get("/workbench/").content.decode()
    assert '<html lang="zh-hant">' in page
    assert "<h1>工作台</h1>" in page  # "Workbench"


def test_anonymous_visitor_can_switch_too(client):
    response = client.post("/language/", {"language": "zh-hant", "next": "/accounts/login/"})
    assert response.cookies["django_language"].value == "zh-hant"
    assert '<html lang="zh-hant">' in client.get("/accounts/login/").content.decode()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "http://evil.example/dashboard/", "javascript:alert(1)"]
)
def test_an_off_site_next_is_refused(client, next_url):
    response = client.post("/language/", {"language": "zh-hant", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_an_unknown_language_changes_nothing(client, alice):
    client.force_login(alice)
    response = client.post("/language/", {"language": "klingon", "next": "/dashboard/"})
    assert "django_language" not in response.cookies
    assert User.objects.get(pk=alice.pk).preferred_language == "en"


def test_the_switch_only_accepts_post(client):
    assert client.get("/language/?language=zh-hant").status_code == 405


def test_chinese_formats_keep_iso_date_inputs_and_comma_thousands():
    """Django's zh_Hant formats render <input type=date> values as 2026/01/31 (which the browser drops) and
    amounts as 8000000; the portal's zh_Hant formats keep ISO dates and HK$8,000,000."""
    from datetime import date
    from decimal import Decimal

    from django import forms
    from django.template.defaultfilters import floatformat
    from django.utils import translation

    with translation.override("zh-hant"):
        widget = forms.DateInput(attrs={"type": "date"})
        assert 'value="2026-01-31"' in widget.render("d", date(2026, 1, 31))
        assert floatformat(Decimal("8000000"), "0g") == "8,000,000"
        assert forms.DateField().clean("2026-01-31") == date(2026, 1, 31)


def test_pages_declare_no_favicon_so_browsers_do_not_request_a_missing_one(client, alice):
    client.force_login(alice)
    assert '<link rel="icon" href="data:,">' in client.get("/dashboard/").content.decode()
