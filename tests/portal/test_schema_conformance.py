"""Every GET endpoint answers what the OpenAPI schema says it answers.

With the demo data in place (every kind of record, made through the services), each list and
detail endpoint in the live schema is called as a user allowed to call it, and each answer is
validated against the schema's response for that status with jsonschema. Bounded: one call per
list, at most a few ids per detail route.
"""

from __future__ import annotations

import io
import re

import jsonschema
import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

DEMO_USERS = [
    "lee.kaying@demo.vamargin.hk",
    "harbourview.capital@demo.vamargin.hk",
    "wong.siuming@demo.vamargin.hk",
    "officer@demo.vamargin.hk",
    "manager@demo.vamargin.hk",
    "compliance@demo.vamargin.hk",
    "admin@demo.vamargin.hk",
]
IDS_PER_DETAIL_ROUTE = 3


def _openapi_30_to_jsonschema(node):
    """OpenAPI 3.0's ``nullable`` as JSON Schema's null type; the rest is the same vocabulary."""
    if isinstance(node, list):
        return [_openapi_30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _openapi_30_to_jsonschema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="module")
def schema():
    return _openapi_30_to_jsonschema(SchemaGenerator().get_schema(request=None, public=True))


def _validator(schema, response_schema):
    return jsonschema.Draft202012Validator({**response_schema, "components": schema["components"]}, format_checker=None)


def _response_schema(schema, path, status):
    responses = schema["paths"][path]["get"]["responses"]
    entry = responses.get(str(status))
    if entry is None:
        return None
    content = entry.get("content", {})
    return (content.get("application/json") or next(iter(content.values()), {})).get("schema")


def _required_query(schema, path) -> str | None:
    """A query string with every required parameter (the first value of its enum); None if one has no enum."""
    parts = []
    for param in schema["paths"][path]["get"].get("parameters", []):
        if param.get("in") == "query" and param.get("required"):
            values = param.get("schema", {}).get("enum")
            if not values:
                return None
            parts.append(f"{param['name']}={values[0]}")
    return "&".join(parts)


def _rows(body):
    rows = body.get("results", body) if isinstance(body, dict) else body
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


# A path parameter's values are found in list answers under these keys.
PARAM_KEYS = {"user_id": ("user_id", "client_id"), "module": ("module", "slug", "code"), "code": ("code",), "kind": ("kind",)}


def _client_ids():
    from portal.models import User

    return list(User.objects.filter(groups__name="client", email__endswith="@demo.vamargin.hk").order_by("pk").values_list("pk", flat=True))


def _document_codes():
    from disclosures.models import Document

    return list(Document.objects.order_by("pk").values_list("code", flat=True))


def _training_modules():
    from onboarding.training import MODULES

    return list(MODULES)


# Parameters whose values no list answer carries.
KNOWN = {"user_id": _client_ids, "code": _document_codes, "module": _training_modules}


def _candidates(path, param, lists: dict[str, list[dict]]) -> list:
    parent = path[: path.index("{")]
    if param in KNOWN:
        return KNOWN[param]()[:IDS_PER_DETAIL_ROUTE]
    if param in ("id", "pk") or (param.endswith("_id") and param not in PARAM_KEYS):
        rows = lists.get(parent) or next((r for p, r in lists.items() if p.rstrip("/").rsplit("/", 1)[-1] == parent.rstrip("/").rsplit("/", 1)[-1] and r), [])
        keys = ("id",)
    else:
        rows = [row for r in lists.values() for row in r]
        keys = PARAM_KEYS.get(param, (param,))
    values = []
    for row in rows:
        for key in keys:
            value = row.get(key)
            if isinstance(value, int | str) and value != "" and value not in values:
                values.append(value)
    return values[:IDS_PER_DETAIL_ROUTE]


def test_every_get_endpoint_answers_what_the_schema_says(client, schema):
    from portal.models import User

    call_command("seed_demo", stdout=io.StringIO())
    users = [User.objects.get(email=e) for e in DEMO_USERS]
    paths = sorted(p for p, ops in schema["paths"].items() if "get" in ops)
    lists: dict[str, list[dict]] = {}
    disagreements, validated = [], set()

    def check(path, url):
        query = _required_query(schema, path)
        if query is None:
            return None
        url = f"{url}?{query}" if query else url
        for user in users:
            client.force_login(user)
            response = client.get(url, HTTP_ACCEPT="application/json")
            if response.status_code in (401, 403, 404):
                continue
            if response.status_code >= 300:
                disagreements.append(f"GET {url} as {user.email}: {response.status_code} to a call the schema allows: {response.content[:200]!r}")
                return None
            body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
            response_schema = _response_schema(schema, path, response.status_code)
            if response_schema is None:
                disagreements.append(f"GET {url} as {user.email}: {response.status_code} is not documented")
                return None
            errors = sorted(_validator(schema, response_schema).iter_errors(body), key=lambda e: list(e.absolute_path))
            if errors:
                e = errors[0]
                disagreements.append(f"GET {url} as {user.email}: {'/'.join(map(str, e.absolute_path))}: {e.message[:200]}")
            validated.add(path)
            return body
        return None

    for path in (p for p in paths if "{" not in p):
        body = check(path, path)
        if body is not None:
            lists[path] = _rows(body)
    for path in (p for p in paths if "{" in p):
        params = re.findall(r"\{(\w+)\}", path)
        if len(params) != 1:
            continue
        for value in _candidates(path, params[0], lists):
            check(path, path.replace("{" + params[0] + "}", str(value)))
    assert not disagreements, "\n".join(disagreements)
    assert len(validated) > 40, sorted(validated)
