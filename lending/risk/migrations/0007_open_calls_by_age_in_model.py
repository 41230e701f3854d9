"""The risk board's open-calls index recorded in ``MarginCall.Meta``, its owner. Lending 0011 created it in the
database (in SQL, while the risk migrations were changing); this records the same index in the model's state
and changes nothing in the database."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lending', '0011_open_calls_by_age'),
        ('risk', '0006_facility_mirror'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name='margincall',
                    index=models.Index(condition=models.Q(('state__in', ['open', 'escalated'])), fields=['opened_at', 'id'],
                                       name='risk_open_calls_by_age'),
                ),
            ],
            database_operations=[],
        ),
    ]
