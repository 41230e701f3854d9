"""Fewer indexes written per audit row (every revaluation tick appends thousands): the object type's own index
(the composite index on object type, id leads with it) and the LIKE pattern indexes beside action, object id
and hash (see ``portal.migration_indexes``)."""

from django.db import migrations, models

from portal.migration_indexes import pattern_indexes_drop, single_column_indexes_drop


class Migration(migrations.Migration):

    dependencies = [
        ("portal", "0007_client_group_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="auditevent", name="object_type", field=models.CharField(max_length=100)),
            ],
            database_operations=[single_column_indexes_drop(("portal_auditevent", "object_type"))],
        ),
        pattern_indexes_drop(("portal_auditevent", "action"), ("portal_auditevent", "object_id"), ("portal_auditevent", "hash")),
    ]
