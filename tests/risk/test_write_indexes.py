"""The tables every revaluation tick writes carry no index that serves no query: each index is one more write
per row, and an end-of-day tick writes thousands of rows into each (risk 0010, lending 0013, portal 0008)."""

from __future__ import annotations

import pytest
from django.db import connection

# Written by every tick that changes bands: the facilities, the band-change and warning logs, the calls, the trail.
TICK_TABLES = ("lending_facility", "risk_bandchange", "risk_warningcrossing", "risk_margincall", "portal_auditevent")


def _indexes(table: str) -> dict[str, dict]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {name: c for name, c in constraints.items() if c["index"] and not c["primary_key"]}


@pytest.mark.django_db
@pytest.mark.parametrize("table", TICK_TABLES)
def test_no_single_column_index_beside_a_composite_leading_with_it(table):
    indexes = _indexes(table)
    leading = {c["columns"][0] for c in indexes.values() if len(c["columns"]) > 1}
    redundant = sorted(name for name, c in indexes.items() if len(c["columns"]) == 1 and not c["unique"] and c["columns"][0] in leading
                       and not name.endswith("_like"))
    assert redundant == []


@pytest.mark.django_db
@pytest.mark.parametrize("table", TICK_TABLES)
def test_no_like_pattern_indexes_on_postgresql(table):
    if connection.vendor != "postgresql":
        pytest.skip("pattern indexes exist on PostgreSQL only")
    assert sorted(name for name in _indexes(table) if name.endswith("_like")) == []


@pytest.mark.django_db
def test_the_indexes_the_pages_and_the_engine_read_are_kept():
    """What the lists and the engine look rows up by is still indexed (the drops above are only of duplicates)."""
    def columns(table):
        return {tuple(c["columns"]) for c in _indexes(table).values()}

    assert {("run_id", "to_band"), ("facility_id", "at")} <= columns("risk_bandchange")
    assert {("run_id", "notify"), ("facility_id", "at")} <= columns("risk_warningcrossing")
    assert {("client_id", "state"), ("facility_id",), ("state",)} <= columns("risk_margincall")
    assert {("object_type", "object_id", "id"), ("object_id",), ("action",), ("created_at",)} <= columns("portal_auditevent")
    assert {("state",), ("band",)} <= columns("lending_facility")
