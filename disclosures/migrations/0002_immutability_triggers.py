"""The database itself refuses to change disclosure text that has been published.

Once a version leaves draft (published, superseded or withdrawn) its text, hashes,
rendered HTML, number, summary, material flag and effective date are frozen, and it
cannot move back to draft. Acknowledgements and servings cannot be updated at all.
The ORM and the service refuse first; these triggers stop raw SQL and bugs.
(DELETE is refused by the ORM and by PROTECT foreign keys; a DELETE trigger would
also block the test-database flush.)
"""

from django.db import migrations

FROZEN = [
    "document_id",
    "number",
    "body_en",
    "body_zh",
    "hash_en",
    "hash_zh",
    "html_en",
    "html_zh",
    "change_summary",
    "material",
    "effective_date",
]

PG_FORWARD = """
CREATE OR REPLACE FUNCTION disclosures_version_frozen() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' AND (NEW.status = 'draft' OR {changed}) THEN
        RAISE EXCEPTION 'disclosure version % is %: its text is immutable', OLD.id, OLD.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER disclosures_version_frozen
    BEFORE UPDATE ON disclosures_documentversion
    FOR EACH ROW EXECUTE FUNCTION disclosures_version_frozen();

CREATE OR REPLACE FUNCTION disclosures_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER disclosures_acknowledgement_no_update
    BEFORE UPDATE ON disclosures_acknowledgement
    FOR EACH ROW EXECUTE FUNCTION disclosures_append_only();

CREATE TRIGGER disclosures_serving_no_update
    BEFORE UPDATE ON disclosures_serving
    FOR EACH ROW EXECUTE FUNCTION disclosures_append_only();
""".format(changed=" OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN))

PG_BACKWARD = """
DROP TRIGGER IF EXISTS disclosures_serving_no_update ON disclosures_serving;
DROP TRIGGER IF EXISTS disclosures_acknowledgement_no_update ON disclosures_acknowledgement;
DROP FUNCTION IF EXISTS disclosures_append_only();
DROP TRIGGER IF EXISTS disclosures_version_frozen ON disclosures_documentversion;
DROP FUNCTION IF EXISTS disclosures_version_frozen();
"""

SQLITE_FORWARD = [
    """
    CREATE TRIGGER disclosures_version_frozen
    BEFORE UPDATE ON disclosures_documentversion
    FOR EACH ROW WHEN OLD.status <> 'draft' AND (NEW.status = 'draft' OR {changed})
    BEGIN
        SELECT RAISE(ABORT, 'disclosure version is no longer a draft: its text is immutable');
    END;
    """.format(changed=" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN)),
    """
    CREATE TRIGGER disclosures_acknowledgement_no_update
    BEFORE UPDATE ON disclosures_acknowledgement
    BEGIN
        SELECT RAISE(ABORT, 'disclosures_acknowledgement is append-only: UPDATE refused');
    END;
    """,
    """
    CREATE TRIGGER disclosures_serving_no_update
    BEFORE UPDATE ON disclosures_serving
    BEGIN
        SELECT RAISE(ABORT, 'disclosures_serving is append-only: UPDATE refused');
    END;
    """,
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS disclosures_serving_no_update;",
    "DROP TRIGGER IF EXISTS disclosures_acknowledgement_no_update;",
    "DROP TRIGGER IF EXISTS disclosures_version_frozen;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # No parameters: psycopg would read RAISE's % placeholders as its own.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("disclosures", "0001_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
