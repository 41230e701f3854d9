"""Every route in the portal refuses an anonymous visitor, except the few meant to be public."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# Public on purpose: signing in and up, the language switch, the health check, the API schema and docs.
PUBLIC = re.compile(r"^/(accounts/|language/|healthz|api/schema/|api/docs/|api/redoc/|api/v1/auth/token/|admin/(login|logout)/|i18n/)")


def _routes(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str | None:
    if route.startswith("^") or "(?P" in route:  # regex routes come from Django's admin internals
        return None
    path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "x" if m.group(1) in ("str", "slug") else "1", route)
    return "/" + path


def test_every_non_public_route_refuses_an_anonymous_visitor(client):
    checked = []
    for route in _routes():
        path = _concrete(route)
        if path is None or PUBLIC.match(path) or path.startswith("/admin/"):
            continue
        response = client.get(path)
        if response.status_code in (301, 302):
            assert "/accounts/login/" in response["Location"] or "/admin/login/" in response["Location"], path
        else:
            assert response.status_code in (401, 403, 404, 405), f"{path} answered {response.status_code} to an anonymous visitor"
        checked.append(path)
    assert len(checked) > 100  # the sweep really walked the apps' routes


def test_django_admin_refuses_a_client(client, alice):
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
