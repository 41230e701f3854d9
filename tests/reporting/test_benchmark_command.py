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
