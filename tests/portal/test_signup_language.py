"""The language a client signs up in becomes their profile language; the sign-in message reads cleanly in Chinese."""

from __future__ import annotations

import pytest
from django.utils import translation

from portal.models import User

SIGNUP = {"email": "dora@example.com", "password1": "Sturdy-Passphrase-77", "password2": "Sturdy-Passphrase-77"}


@pytest.mark.django_db
def test_signing_up_in_chinese_makes_chinese_the_profile_language(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hant"
    client.post("/accounts/signup/", SIGNUP)
    assert User.objects.get(email="dora@example.com").preferred_language == "zh-hant"


@pytest.mark.django_db
def test_signing_up_in_english_keeps_english(client):
    client.post("/accounts/signup/", SIGNUP, HTTP_ACCEPT_LANGUAGE="en")
    assert User.objects.get(email="dora@example.com").preferred_language == "en"


@pytest.mark.django_db
def test_first_sign_in_in_a_fresh_browser_lands_in_chinese_with_one_full_stop(client, alice):
    alice.preferred_language = "zh-hant"
    alice.save(update_fields=["preferred_language"])
    response = client.post("/accounts/login/", {"login": alice.email, "password": "Correct-Horse-42!"}, follow=True)
    body = response.content.decode()
    assert '<html lang="zh-hant">' in body
    flash = next(str(m) for m in response.context["messages"])
    assert "。" in flash and ".." not in flash and "。。" not in flash
    translation.activate("en")
