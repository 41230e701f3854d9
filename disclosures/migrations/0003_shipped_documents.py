"""Publish the portal's risk disclosure statements (version 1) in a fresh database."""

from django.db import migrations


def forward(apps, schema_editor):
    from disclosures.loader import load_shipped_documents

    load_shipped_documents(apps)


class Migration(migrations.Migration):
    dependencies = [("disclosures", "0002_immutability_triggers")]
    # Reversing leaves the documents: published disclosures are regulated records.
    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
