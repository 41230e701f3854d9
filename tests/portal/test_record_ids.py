"""A record id in a URL beyond what a database stores is a 404, like any id that names nothing.

Django's ``int`` path converter takes digits of any length; an id past the signed 64-bit range then failed in
the database (on SQLite, the demo's: ``OverflowError``, a 500) on the disclosure report's acknowledgements and
the risk engine's facility API, found by fuzzing the API. Every URL takes its ids through one bounded converter.
"""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from django.urls.resolvers import URLPattern, URLResolver

from portal.converters import MAX_RECORD_ID, RecordIdConverter

pytestmark = pytest.mark.django_db

TOO_BIG = "249157475294112379788339018813407232"


def _patterns(resolver, prefix=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.pattern.converters


def test_no_url_of_the_portal_takes_an_unbounded_integer():
    unbounded = [path for path, converters in _patterns(get_resolver())
                 if any(not isinstance(c, RecordIdConverter) and c.regex.startswith("[0-9]") for c in converters.values())]
    assert not unbounded, unbounded


@pytest.mark.parametrize("path", [
    f"/api/v1/disclosures/reports/versions/{TOO_BIG}/acknowledgements/",
    f"/api/v1/risk/staff/facilities/{TOO_BIG}/",
    f"/lending/staff/facilities/{TOO_BIG}/",
    f"/api/v1/risk/staff/facilities/{MAX_RECORD_ID + 1}/",
])
def test_an_id_beyond_the_databases_range_is_not_found(client, compliance_user, credit_manager, path):
    client.force_login(credit_manager if "risk" in path or "lending" in path else compliance_user)
    assert client.get(path).status_code == 404


def test_the_largest_id_is_looked_up_and_not_found(client, credit_manager):
    client.force_login(credit_manager)
    assert client.get(f"/api/v1/risk/staff/facilities/{MAX_RECORD_ID}/").status_code == 404


def test_the_converter_bounds():
    converter = RecordIdConverter()
    assert converter.to_python("0") == 0 and converter.to_python(str(MAX_RECORD_ID)) == MAX_RECORD_ID == 2**63 - 1
    with pytest.raises(ValueError):
        converter.to_python(str(MAX_RECORD_ID + 1))
    assert converter.to_url(42) == "42"
