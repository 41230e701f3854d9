"""Codes for the review reasons stored before reasons had them: each English sentence the review is known
to give is matched to its code and parameters; any other sentence stays as text (shown as written)."""

from django.db import migrations


def codes_from_text(apps, schema_editor):
    from lending.review import reason_from_text

    ReviewStep = apps.get_model("lending", "ReviewStep")
    batch = []
    for step in ReviewStep.objects.filter(reason_codes=[]).exclude(reasons=[]).only("id", "reasons").iterator(chunk_size=2000):
        step.reason_codes = [reason_from_text(str(text)) or {} for text in step.reasons or []]
        batch.append(step)
        if len(batch) >= 2000:
            ReviewStep.objects.bulk_update(batch, ["reason_codes"])
            batch = []
    if batch:
        ReviewStep.objects.bulk_update(batch, ["reason_codes"])


class Migration(migrations.Migration):
    dependencies = [("lending", "0007_reviewstep_reason_codes")]

    operations = [migrations.RunPython(codes_from_text, migrations.RunPython.noop)]
