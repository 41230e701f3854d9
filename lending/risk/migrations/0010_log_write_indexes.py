"""Fewer indexes written per row the revaluation appends: the band-change and warning logs' own indexes on run
and facility (their composite indexes lead with each), the margin calls' own index on client (the (client,
state) index leads with it) and the LIKE pattern index beside a call's state (see ``portal.migration_indexes``)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from portal.migration_indexes import pattern_indexes_drop, single_column_indexes_drop


def _fk(to, *, null=False):
    return models.ForeignKey(db_index=False, null=null, on_delete=django.db.models.deletion.PROTECT, related_name="+", to=to)


class Migration(migrations.Migration):

    dependencies = [
        ("lending", "0013_facility_pattern_indexes"),
        ("risk", "0009_coefficients_fillfactor"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="bandchange", name="facility", field=_fk("lending.facility")),
                migrations.AlterField(model_name="bandchange", name="run", field=_fk("risk.revaluationrun", null=True)),
                migrations.AlterField(model_name="margincall", name="client", field=_fk(settings.AUTH_USER_MODEL)),
                migrations.AlterField(model_name="warningcrossing", name="facility", field=_fk("lending.facility")),
                migrations.AlterField(model_name="warningcrossing", name="run", field=_fk("risk.revaluationrun", null=True)),
            ],
            database_operations=[
                single_column_indexes_drop(
                    ("risk_bandchange", "facility_id"), ("risk_bandchange", "run_id"), ("risk_warningcrossing", "facility_id"),
                    ("risk_warningcrossing", "run_id"), ("risk_margincall", "client_id"),
                ),
            ],
        ),
        pattern_indexes_drop(("risk_margincall", "state")),
    ]
