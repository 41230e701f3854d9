"""Applications per state, kept by the database: the credit queue's counts without counting the book.

Triggers on ``lending_facilityapplication`` add one to the new state and take one from the old on every
insert, state change and delete, whatever issues it (an FSM transition, a bulk insert, a cascade). On
PostgreSQL they are statement-level (transition tables): a bulk insert of 5,000 rows is one upsert per state,
an update that changes no state touches no count, and counts are upserted in state order (no deadlock between
two transactions moving applications in opposite directions). The triggers are created before the counts
are filled: the table is locked against writers from CREATE TRIGGER to the migration's commit.
"""

from django.db import migrations, models

PG_FORWARD = """
CREATE OR REPLACE FUNCTION lending_application_state_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO lending_applicationstatecount (state, n)
            SELECT state, count(*) FROM new_rows GROUP BY state ORDER BY state
            ON CONFLICT (state) DO UPDATE SET n = lending_applicationstatecount.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO lending_applicationstatecount (state, n)
            SELECT state, -count(*) FROM old_rows GROUP BY state ORDER BY state
            ON CONFLICT (state) DO UPDATE SET n = lending_applicationstatecount.n + EXCLUDED.n;
    ELSE
        INSERT INTO lending_applicationstatecount (state, n)
            SELECT state, sum(k) FROM (SELECT state, 1 AS k FROM new_rows UNION ALL SELECT state, -1 FROM old_rows) moved
            GROUP BY state HAVING sum(k) <> 0 ORDER BY state
            ON CONFLICT (state) DO UPDATE SET n = lending_applicationstatecount.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER lending_application_state_count_insert AFTER INSERT ON lending_facilityapplication
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lending_application_state_count();
CREATE TRIGGER lending_application_state_count_update AFTER UPDATE ON lending_facilityapplication
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lending_application_state_count();
CREATE TRIGGER lending_application_state_count_delete AFTER DELETE ON lending_facilityapplication
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION lending_application_state_count();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS lending_application_state_count_insert ON lending_facilityapplication;
DROP TRIGGER IF EXISTS lending_application_state_count_update ON lending_facilityapplication;
DROP TRIGGER IF EXISTS lending_application_state_count_delete ON lending_facilityapplication;
DROP FUNCTION IF EXISTS lending_application_state_count();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER lending_application_state_count_insert AFTER INSERT ON lending_facilityapplication BEGIN
        INSERT OR IGNORE INTO lending_applicationstatecount (state, n) VALUES (NEW.state, 0);
        UPDATE lending_applicationstatecount SET n = n + 1 WHERE state = NEW.state;
    END""",
    """CREATE TRIGGER lending_application_state_count_update AFTER UPDATE OF state ON lending_facilityapplication
    WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE lending_applicationstatecount SET n = n - 1 WHERE state = OLD.state;
        INSERT OR IGNORE INTO lending_applicationstatecount (state, n) VALUES (NEW.state, 0);
        UPDATE lending_applicationstatecount SET n = n + 1 WHERE state = NEW.state;
    END""",
    """CREATE TRIGGER lending_application_state_count_delete AFTER DELETE ON lending_facilityapplication BEGIN
        UPDATE lending_applicationstatecount SET n = n - 1 WHERE state = OLD.state;
    END""",
]

SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS lending_application_state_count_{op}" for op in ("insert", "update", "delete")]

FILL = """INSERT INTO lending_applicationstatecount (state, n)
    SELECT state, COUNT(*) FROM lending_facilityapplication GROUP BY state"""


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for sql in SQLITE_FORWARD:
            schema_editor.execute(sql, params=None)
    else:
        raise NotImplementedError(f"Application state counts need triggers written for {vendor}.")
    schema_editor.execute("DELETE FROM lending_applicationstatecount", params=None)
    schema_editor.execute(FILL, params=None)


def backward(apps, schema_editor):
    for sql in [PG_BACKWARD] if schema_editor.connection.vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("lending", "0009_queue_by_age"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApplicationStateCount",
            fields=[
                ("state", models.CharField(max_length=50, primary_key=True, serialize=False)),
                ("n", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
