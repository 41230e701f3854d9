"""Refusals and missing pages speak the user's language inside the portal's own layout."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_client_refused_a_staff_page_sees_the_portal_403_page(client, alice):
    client.force_login(alice)
    response = client.get("/workbench/")
    assert response.status_code == 403
    assert "You cannot open this page" in response.content.decode()


def test_403_page_in_traditional_chinese(client, alice):
    client.force_login(alice)
    client.post("/language/", {"language": "zh-hant", "next": "/"})
    response = client.get("/workbench/")
    assert response.status_code == 403
    assert "您無法開啟此頁面" in response.content.decode()


def test_unknown_page_uses_the_portal_404_page(client, alice):
    client.force_login(alice)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
