"""Emptying a dedicated benchmark database: the one way every ``manage.py benchmark`` clears the tables it rebuilds.

The facility ledger and the audit trail refuse TRUNCATE (statement-level append-only triggers, as in production). A
benchmark database is emptied on purpose, so inside the caller's transaction user triggers are switched off for the
TRUNCATE alone (``session_replication_role = replica``; the benchmark's database user owns the tables) and back on
before anything else runs.
"""

from __future__ import annotations

from django.db import connection


def truncate(tables: str) -> None:
    """``TRUNCATE tables RESTART IDENTITY CASCADE`` (a comma-separated list of constant table names), in the caller's
    transaction, past the append-only tables' TRUNCATE guard."""
    if not connection.in_atomic_block:
        raise RuntimeError("portal.bench_db.truncate runs inside a transaction (its SET LOCAL would otherwise not hold)")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # noqa: S608 - constant table names from the benchmarks
        cursor.execute("SET LOCAL session_replication_role = origin")


def text_defaults(tables: tuple[str, ...]) -> None:
    """Give the NOT NULL text columns of ``tables`` that have no default an empty one (on the benchmark database only):
    a builder's INSERT … SELECT names the columns it knew, and a column added since would otherwise fail it."""
    with connection.cursor() as cursor:
        cursor.execute("""SELECT table_name, column_name FROM information_schema.columns
                          WHERE table_name = ANY(%s) AND is_nullable = 'NO' AND column_default IS NULL
                            AND data_type IN ('text', 'character varying')""", [list(tables)])
        for table, column in cursor.fetchall():
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET DEFAULT \'\'')
