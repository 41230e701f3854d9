"""An issued statement of account is kept exactly: UPDATE refused in SQL too (DELETE is refused by
PROTECT foreign keys and never done by the portal; the test flush needs DELETE on SQLite)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION servicing_statement_frozen() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'servicing_statement is kept exactly as issued: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER servicing_statement_no_update
    BEFORE UPDATE OR DELETE ON servicing_statement
    FOR EACH ROW EXECUTE FUNCTION servicing_statement_frozen();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS servicing_statement_no_update ON servicing_statement;
DROP FUNCTION IF EXISTS servicing_statement_frozen();
"""
SQLITE_FORWARD = """
CREATE TRIGGER servicing_statement_no_update BEFORE UPDATE ON servicing_statement
BEGIN SELECT RAISE(ABORT, 'servicing_statement is kept exactly as issued: UPDATE refused'); END;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PG_FORWARD)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(PG_BACKWARD)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS servicing_statement_no_update;")


class Migration(migrations.Migration):
    dependencies = [("servicing", "0001_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
