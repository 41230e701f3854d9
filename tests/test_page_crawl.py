"""Pages as their readers follow them: every link a page shows opens for its reader, and every inline
style and script a page sends carries that response's nonce.

The template check in ``test_csp.py`` sees that each ``<style>``/``<script>`` is written with
``nonce="{{ csp_nonce }}"``; it cannot see a fragment rendered without the request's context (an
inclusion tag without ``takes_context``), where the nonce comes out empty and the browser drops
the style. Here the demo is crawled as a client and as each staff role, following the pages' own
links: a link that answers 403 is a page offering what its reader may not do, one that answers 404
(or matches no route) a broken link, and every inline element of every page is compared with the
nonce in its policy header.
"""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import Resolver404, resolve

from portal.models import User

pytestmark = pytest.mark.django_db

_INLINE = re.compile(r"<(style|script)\b([^>]*)>", re.IGNORECASE)
_HREF = re.compile(r'href="(/[^"#?]*)')
# Not pages to crawl: signing out, the admin (its own templates, checked in the browser test), files.
_SKIP = re.compile(r"^/(accounts/logout|admin/|static/|media/|api/|language/|i18n/)|\.(pdf|csv|xlsx|zip|png|jpg)$|/(pdf|csv|xlsx|download)/$")
PAGES_PER_ROLE, PER_ROUTE = 200, 2


def _crawl(client: Client, start: str) -> list[tuple[str, str]]:
    """(path, problem) for every link refused to the reader and every inline element whose nonce is not the response's."""
    seen, per_route, queue, problems, linked_from = set(), Counter(), [start], [], {}
    while queue and len(seen) < PAGES_PER_ROLE:
        path = queue.pop(0)
        if path in seen or _SKIP.search(path):
            continue
        try:
            route = resolve(path).route
        except Resolver404:
            problems.append((path, f"no such page, linked from {linked_from.get(path)}"))
            continue
        if per_route[route] >= PER_ROUTE:
            continue
        seen.add(path)
        per_route[route] += 1
        response = client.get(path)
        if response.status_code in (403, 404):
            problems.append((path, f"answers {response.status_code}, linked from {linked_from.get(path)}"))
        if response.status_code != 200 or response.streaming or "text/html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        header = re.search(r"'nonce-([^']+)'", response.get("Content-Security-Policy", ""))
        for tag, attrs in _INLINE.findall(html):
            if tag.lower() == "script" and ("src=" in attrs or "application/json" in attrs):
                continue
            nonce = re.search(r'nonce="([^"]*)"', attrs)
            if not header or not nonce or nonce.group(1) != header.group(1):
                problems.append((path, f"<{tag}{attrs}>"))
        for href in _HREF.findall(html):
            if href not in seen:
                queue.append(href)
                linked_from.setdefault(href, path)
    assert len(seen) > 10, f"the crawl from {start} reached only {sorted(seen)}"
    return problems


def test_every_link_opens_for_its_reader_and_every_inline_element_carries_the_nonce():
    call_command("seed_demo", stdout=io.StringIO())
    problems = []
    for email, start in [("lee.kaying@demo.vamargin.hk", "/dashboard/"), ("officer@demo.vamargin.hk", "/workbench/"),
                         ("manager@demo.vamargin.hk", "/workbench/"), ("compliance@demo.vamargin.hk", "/workbench/"),
                         ("admin@demo.vamargin.hk", "/workbench/")]:
        client = Client()
        client.force_login(User.objects.get(email=email))
        problems += _crawl(client, start)
    assert not problems, "\n".join(f"{path}: {element}" for path, element in problems)
