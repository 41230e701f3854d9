"""The book's per-facility sums are rewritten in place by every price tick: leave room in each page so
those updates are HOT (no index entries rewritten). PostgreSQL only."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE risk_facilitycoefficients SET (fillfactor = 50)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE risk_facilitycoefficients RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("collateral", "0004_price_import_kinds"), ("risk", "0003_price_authority")]
    operations = [migrations.RunPython(forwards, backwards)]
