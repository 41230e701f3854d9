"""The export benchmark refuses anything but a dedicated PostgreSQL benchmark database (it empties tables)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

pytestmark = pytest.mark.django_db


def test_export_benchmark_refuses_the_test_database():
    with pytest.raises(CommandError) as err:
        call_command("benchmark", "export", "--rows", "10")
    if connection.vendor == "postgresql":
        assert "Refusing" in str(err.value)
    else:
        assert "PostgreSQL" in str(err.value)


def test_a_benchmark_empties_its_database_past_the_ledgers_truncate_guard():
    """The facility ledger refuses TRUNCATE, as in production (the test set-up switches that guard off to flush; it is
    switched back on here). The export benchmark emptied its tables with a bare TRUNCATE and failed on a fresh
    benchmark database: 'lending_facilitytransaction is an immutable ledger: TRUNCATE refused'."""
    import io

    from django.db import transaction

    from lending.reporting.benchmark import build
    from tests.helpers import need_postgres

    need_postgres()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE lending_facilitytransaction ENABLE TRIGGER lending_ledger_no_truncate")
    with pytest.raises(Exception, match="TRUNCATE refused"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE lending_facilitytransaction CASCADE")  # the guard is on
    build(io.StringIO(), 40)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM risk_valuationsnapshot")
        assert cursor.fetchone()[0] >= 40
