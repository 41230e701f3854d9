"""Load the shipped instrument master (Hong Kong securities plus BTC and ETH)."""

from django.db import migrations


def load(apps, schema_editor):
    from lending.collateral.services import load_shipped_instruments

    load_shipped_instruments(apps)


class Migration(migrations.Migration):
    dependencies = [("collateral", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
