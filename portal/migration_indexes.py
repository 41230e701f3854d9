"""Dropping indexes that cost writes and serve no query, for migrations.

Two kinds, both found by introspection (so a migration names a column, not a generated index name):

* ``pattern_indexes_drop``: on PostgreSQL Django adds, beside a CharField's ``db_index`` (or ``unique``), a
  second index with ``varchar_pattern_ops`` for ``LIKE 'x%'`` queries. The portal never queries those
  columns by prefix (its searches are ``icontains``, which no b-tree serves), and each such index is one
  more write for every row a revaluation tick inserts or updates. The field keeps ``db_index``; Django
  drops a pattern index with ``DROP INDEX IF EXISTS``, so a later ``AlterField`` still works.
* ``single_column_indexes_drop``: a column whose own index is redundant with a composite index leading with
  it; the migration pairs it with ``AlterField(db_index=False)`` in the migration state only
  (``SeparateDatabaseAndState``), because an ``AlterField`` on SQLite rebuilds the table and a rebuilt table
  loses its triggers.
"""

from __future__ import annotations

from django.db import migrations


def _indexes(schema_editor, table: str, column: str) -> dict[str, dict]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    return {
        name: c for name, c in constraints.items()
        if c["index"] and not c["unique"] and not c["primary_key"] and c["columns"] == [column]
    }


def pattern_indexes_drop(*columns: tuple[str, str]) -> migrations.RunPython:
    """(table, column) pairs whose PostgreSQL ``_like`` pattern index is dropped. Backwards: nothing (the index
    is only an optimisation, and Django recreates it if the field is ever altered)."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table, column in columns:
            for name in _indexes(schema_editor, table, column):
                if name.endswith("_like"):
                    schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"', params=None)

    return migrations.RunPython(forward, migrations.RunPython.noop)


def single_column_indexes_drop(*columns: tuple[str, str]) -> migrations.RunPython:
    """(table, column) pairs whose own indexes (and pattern index) are dropped. Backwards: each recreated
    as a plain index."""

    def forward(apps, schema_editor):
        for table, column in columns:
            for name in _indexes(schema_editor, table, column):
                schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"', params=None)

    def backward(apps, schema_editor):
        for table, column in columns:
            if not _indexes(schema_editor, table, column):
                schema_editor.execute(f'CREATE INDEX "{table}_{column}_idx" ON "{table}" ("{column}")', params=None)

    return migrations.RunPython(forward, backward)
