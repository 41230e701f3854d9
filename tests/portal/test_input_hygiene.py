"""A NUL byte or another control character in any parameter is a 400 with a clear message, on every
route, before any view runs; page numbers that are not whole numbers are a 400 on every paginated API."""

from __future__ import annotations

import pytest

from tests.portal.test_url_sweep import _concrete, _routes

pytestmark = pytest.mark.django_db


def _all_paths():
    for route in _routes():
        path = _concrete(route)
        if path is not None:
            yield path


@pytest.mark.parametrize("query", ["search=%00", "state=abc%00", "band=%01x", "%00=1", "page=%00", "min=%7F"])
def test_every_route_refuses_a_control_character_in_the_query(client, admin_user, query):
    client.force_login(admin_user)
    answered = {}
    for path in _all_paths():
        response = client.get(f"{path}?{query}")
        answered[path] = response.status_code
        if response.status_code == 400 and path.startswith("/api/"):
            body = response.json()
            assert body["error"]["code"] == "invalid_input" and "control character" in body["error"]["message"]
    wrong = {p: s for p, s in answered.items() if s != 400}
    assert not wrong
    assert len(answered) > 100


def test_the_page_says_what_was_wrong(client, alice):
    client.force_login(alice)
    response = client.get("/dashboard/?search=%00")
    assert response.status_code == 400
    assert "The parameter “search” contains a control character" in response.content.decode()
    assert "base.html" in [t.name for t in response.templates]  # the portal layout


def test_a_form_field_with_a_nul_byte_is_refused_and_changes_nothing(client, alice):
    client.force_login(alice)
    response = client.post("/language/", {"language": "zh-hant\x00", "next": "/"})
    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.preferred_language == "en"


def test_line_breaks_and_tabs_in_a_form_are_not_control_characters(client, alice):
    client.force_login(alice)
    assert client.post("/language/", {"language": "en", "next": "/\tx\r\ny"}).status_code == 302


def test_a_nul_in_the_path_is_refused(client):
    assert client.get("/api/v1/lending/%00/").status_code == 400


@pytest.mark.parametrize("page", ["abc", "%00", "0", "-1", "1.5", "1e3", "９"])
def test_a_page_number_that_is_not_a_whole_number_is_a_400(client, alice, page):
    client.force_login(alice)
    response = client.get(f"/api/v1/notifications/?page={page}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("validation_error", "invalid_input")
    if error["code"] == "validation_error":
        assert error["fields"] == {"page": ["A page number is a whole number, 1 or more."]}


@pytest.mark.parametrize("size", ["abc", "0", "201"])
def test_a_page_size_out_of_bounds_is_a_400(client, alice, size):
    client.force_login(alice)
    response = client.get(f"/api/v1/notifications/?page_size={size}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"page_size": ["A page size is a whole number from 1 to 200."]}


def test_good_pages_still_work(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/notifications/?page=1&page_size=10").status_code == 200
    assert client.get("/api/v1/notifications/?page=last").status_code == 200
