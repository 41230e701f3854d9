"""Half of each page of the per-facility sums left free, so an end-of-day file that rewrites every facility's sums
updates each row on its own page (a heap-only tuple): no new entry in the table's indexes and no page to find
elsewhere. Packed pages (PostgreSQL's default, 100%) made the same UPDATE about three times slower (590 ms against
170 ms for 100,000 facilities) whenever the table had just been rebuilt or vacuumed full. The table is rewritten
once so that its existing pages get the room too; it is a cache of lending's positions, small and quickly
rewritten. PostgreSQL only (SQLite has no fill factor)."""

from django.db import migrations

FILLFACTOR = 50


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE risk_facilitycoefficients SET (fillfactor = {FILLFACTOR})")
    schema_editor.execute("VACUUM FULL risk_facilitycoefficients")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE risk_facilitycoefficients RESET (fillfactor)")


class Migration(migrations.Migration):
    atomic = False  # VACUUM FULL runs outside a transaction

    dependencies = [("risk", "0008_prices_to_three_places")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
