"""The collateral API's schema says what the endpoints answer and take."""

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    with django_db_blocker.unblock():
        call_command("spectacular", "--file", str(path), "--format", "openapi-json")
    return json.loads(path.read_text())


def test_the_import_endpoint_documents_its_refusals_and_names_prices(schema):
    """POST /imports/{kind}/ documented only 200 and 201, and its summary left out the price files."""
    post = schema["paths"]["/api/v1/collateral/imports/{kind}/"]["post"]
    assert {"200", "201", "400", "409", "422"} <= set(post["responses"])
    assert "prices" in post["summary"]


def test_the_instrument_patch_offers_only_what_it_accepts(schema):
    """The PATCH schema offered code, kind and suspended_since, which are refused, and board_lot from 0, which is refused."""
    body = schema["paths"]["/api/v1/collateral/staff/instruments/{code}/"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][name]["properties"]
    assert not {"code", "kind", "suspended_since", "id", "updated_at"} & set(fields)
    assert fields["board_lot"]["minimum"] == 1
    assert {"suspended", "active", "name_en", "board_lot"} <= set(fields)
