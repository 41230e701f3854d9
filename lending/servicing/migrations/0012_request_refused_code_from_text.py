"""Codes for the refusals stored before they had them: each English sentence the portal is known to write
is matched to its code and parameters; any other reason (a member of staff's own words) stays as written."""

from django.db import migrations


def codes_from_text(apps, schema_editor):
    from lending.servicing.reasons import refusal_from_text

    ServicingRequest = apps.get_model("servicing", "ServicingRequest")
    batch = []
    for req in ServicingRequest.objects.filter(refused_code="").exclude(refused_reason="").only("id", "refused_reason").iterator(chunk_size=2000):
        found = refusal_from_text(req.refused_reason)
        if found:
            req.refused_code, req.refused_params = found
            batch.append(req)
        if len(batch) >= 2000:
            ServicingRequest.objects.bulk_update(batch, ["refused_code", "refused_params"])
            batch = []
    if batch:
        ServicingRequest.objects.bulk_update(batch, ["refused_code", "refused_params"])


class Migration(migrations.Migration):
    dependencies = [("servicing", "0011_request_refused_code")]

    operations = [migrations.RunPython(codes_from_text, migrations.RunPython.noop)]
