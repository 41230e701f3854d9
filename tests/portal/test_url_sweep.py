"""Every route in the portal refuses an anonymous visitor, except the few meant to be public.

The database holds one object of each kind first (the demo seeders make them through the
services), and every detail route is tried with real ids and codes, so a route that forgot its
sign-in check cannot hide behind a 404: the answer must be a redirect to sign in, or 401/403.
"""

from __future__ import annotations

import io
import itertools
import re

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import models
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve

pytestmark = pytest.mark.django_db

# Public on purpose: signing in and up, the language switch, the health check, the API schema and docs.
PUBLIC = re.compile(r"^/(accounts/|language/|healthz|api/schema/|api/docs/|api/redoc/|api/v1/auth/token/|admin/(login|logout)/|i18n/)")
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _routes(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str | None:
    """The route with placeholder values (1 for numbers, x for text); None for the admin's regex routes."""
    if route.startswith("^") or "(?P" in route:  # regex routes come from Django's admin internals
        return None
    path = _PARAM.sub(lambda m: "x" if m.group(1) in ("str", "slug") else "1", route)
    return "/" + path


def _project_models():
    base = str(settings.BASE_DIR)
    for model in apps.get_models():
        if model.__module__.split(".")[0] in {"portal", "onboarding", "disclosures", "lending"} or model._meta.app_config.path.startswith(base):
            yield model


def _candidates():
    """Ids and codes that exist: the first row of every model, and every short code-like value."""
    ids, texts, kinds = set(), {"x", "csv", "pdf", "json", "zip", "va", "derivatives", "positions", "custody"}, 0
    for model in _project_models():
        pk = model._meta.pk
        if isinstance(pk, models.AutoField | models.BigAutoField):
            first = list(model._default_manager.order_by("pk").values_list("pk", flat=True)[:1])
            ids.update(first)
            kinds += bool(first)
        for field in model._meta.get_fields():
            if getattr(field, "name", None) in ("code", "slug", "kind", "batch_id", "module") and isinstance(field, models.CharField | models.SlugField):
                texts.update(v for v in model._default_manager.values_list(field.name, flat=True).distinct()[:20] if v and "/" not in v)
    return sorted(ids), sorted(texts), kinds


def _expansions(route: str, ids, texts, limit: int = 120):
    params = _PARAM.findall(route)
    if not params:
        yield "/" + route
        return
    choices = [texts if kind in ("str", "slug") else ids for kind, _name in params]
    for values in itertools.islice(itertools.product(*choices), limit):
        it = iter(values)
        yield "/" + _PARAM.sub(lambda m, it=it: str(next(it)), route)


@pytest.fixture
def world(db):
    """One object of each kind, made through the services by the demo seeders."""
    call_command("seed_demo", stdout=io.StringIO())
    return _candidates()


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _refused(response) -> bool:
    if response.status_code in (301, 302):
        location = response["Location"]
        return "/accounts/login/" in location or "/admin/login/" in location
    return response.status_code in (401, 403)


def test_every_non_public_route_refuses_an_anonymous_visitor(client, world):
    ids, texts, kinds = world
    assert kinds > 30  # the seeders really made objects of many kinds
    failures, checked = [], set()
    for route in _routes():
        if _concrete(route) is None:
            continue
        for path in _expansions(route, ids, texts):
            if PUBLIC.match(path) or path.startswith("/admin/") or not _resolves(path):
                continue
            response = client.get(path)
            if response.status_code == 405:
                response = client.post(path)
            if not _refused(response):
                failures.append(f"{path} answered {response.status_code}")
            checked.add(route)
    assert not failures, failures[:40]
    assert len(checked) > 100  # the sweep really walked the apps' routes


def test_django_admin_refuses_a_client(client, alice):
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get(response["Location"]).status_code == 403
