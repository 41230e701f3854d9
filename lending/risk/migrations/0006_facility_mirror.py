"""The facility columns the revaluation's prefilter reads, copied into its sums and kept equal by the database.

A trigger on ``lending_facility`` copies drawn balance, band, early-warning level and whether the facility is
active into its row of ``risk_facilitycoefficients`` whenever one of them changes, whoever writes it (a
service, a set-based posting, a data fix); ``book.coefficients_refresh`` creates the rows with them.
"""

from django.db import migrations, models

# SQLite: row by row (NEW is the facility row just written).
_COPY = """
    UPDATE risk_facilitycoefficients SET drawn_f = CAST(NEW.drawn_balance AS DOUBLE PRECISION), band = NEW.band,
           warned_level_f = CAST(NEW.warned_level AS DOUBLE PRECISION), active = (NEW.state = 'active')
    WHERE facility_id = NEW.id;
"""
_CHANGED = ("OLD.drawn_balance IS DISTINCT FROM NEW.drawn_balance OR OLD.band IS DISTINCT FROM NEW.band "
            "OR OLD.warned_level IS DISTINCT FROM NEW.warned_level OR OLD.state IS DISTINCT FROM NEW.state")
_COLUMNS = "drawn_balance, band, warned_level, state"

# PostgreSQL: once per statement, over the rows it changed (transition tables), so a set-based write of the
# whole book (a monthly interest posting, a tick's band changes) copies in one join, not row by row.
POSTGRESQL = [
    # The ids first: most writes of a facility change none of the four (a valuation, a flag) and stop there;
    # the copy then probes the sums' primary key for just those ids (a join with the transition tables, which
    # have no statistics, would scan every facility's sums).
    """CREATE OR REPLACE FUNCTION risk_facility_mirror() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE changed bigint[];
    BEGIN
        SELECT array_agg(n.id) INTO changed FROM facility_new n JOIN facility_old o ON o.id = n.id
        WHERE """ + _CHANGED.replace("OLD.", "o.").replace("NEW.", "n.") + """;
        IF changed IS NULL THEN RETURN NULL; END IF;
        UPDATE risk_facilitycoefficients SET drawn_f = CAST(n.drawn_balance AS DOUBLE PRECISION), band = n.band,
               warned_level_f = CAST(n.warned_level AS DOUBLE PRECISION), active = (n.state = 'active')
        FROM facility_new n
        WHERE risk_facilitycoefficients.facility_id = n.id AND risk_facilitycoefficients.facility_id = ANY(changed);
        RETURN NULL;
    END $$""",
    "DROP TRIGGER IF EXISTS risk_facility_mirror ON lending_facility",
    "CREATE TRIGGER risk_facility_mirror AFTER UPDATE ON lending_facility REFERENCING OLD TABLE AS facility_old "
    "NEW TABLE AS facility_new FOR EACH STATEMENT EXECUTE FUNCTION risk_facility_mirror()",
]
POSTGRESQL_DROP = ["DROP TRIGGER IF EXISTS risk_facility_mirror ON lending_facility", "DROP FUNCTION IF EXISTS risk_facility_mirror()"]
SQLITE = [
    "DROP TRIGGER IF EXISTS risk_facility_mirror",
    f"CREATE TRIGGER risk_facility_mirror AFTER UPDATE OF {_COLUMNS} ON lending_facility FOR EACH ROW WHEN {_CHANGED} BEGIN {_COPY} END",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS risk_facility_mirror"]
BACKFILL = """
    UPDATE risk_facilitycoefficients SET
        drawn_f = (SELECT CAST(f.drawn_balance AS DOUBLE PRECISION) FROM lending_facility f WHERE f.id = risk_facilitycoefficients.facility_id),
        band = (SELECT f.band FROM lending_facility f WHERE f.id = risk_facilitycoefficients.facility_id),
        warned_level_f = (SELECT CAST(f.warned_level AS DOUBLE PRECISION) FROM lending_facility f WHERE f.id = risk_facilitycoefficients.facility_id),
        active = (SELECT f.state = 'active' FROM lending_facility f WHERE f.id = risk_facilitycoefficients.facility_id)
"""


def install(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in [*statements, BACKFILL]:
        schema_editor.execute(sql)


def uninstall(apps, schema_editor):
    for sql in POSTGRESQL_DROP if schema_editor.connection.vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('risk', '0005_booksummary_riskpolicy_effective_from_and_more'),
        ('lending', '0008_reviewstep_reason_codes_from_text'),
    ]

    operations = [
        migrations.AddField(
            model_name='facilitycoefficients',
            name='active',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='facilitycoefficients',
            name='band',
            field=models.CharField(default='healthy', max_length=12),
        ),
        migrations.AddField(
            model_name='facilitycoefficients',
            name='drawn_f',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='facilitycoefficients',
            name='warned_level_f',
            field=models.FloatField(default=0),
        ),
        migrations.RunPython(install, uninstall),
    ]
