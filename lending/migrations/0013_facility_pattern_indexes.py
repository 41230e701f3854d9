"""No LIKE pattern indexes beside a facility's state and band (see ``portal.migration_indexes``): the revaluation
rewrites the band of thousands of facilities a tick, and each index is written for each of them."""

from django.db import migrations

from portal.migration_indexes import pattern_indexes_drop


class Migration(migrations.Migration):

    dependencies = [
        ("lending", "0012_prices_to_three_places"),
    ]

    operations = [
        pattern_indexes_drop(("lending_facility", "state"), ("lending_facility", "band")),
    ]
