"""The risk board's oldest open margin calls, read in order from a partial index.

Recorded in ``MarginCall.Meta`` by risk 0007 (state only). Without it the planner merge-joins the whole facilities table to find the ten oldest calls: 243 ms at
100,000 facilities (13.5 ms at 10,000), against 2.4 ms with it. Created here, in SQL, rather than in
``MarginCall.Meta`` because the risk app's models and migrations were being changed at the same time
(issue 14's performance pass): to move it into the model later, a risk migration with
``SeparateDatabaseAndState`` (state: AddIndex of the same name; database: nothing) and this one left as is.
"""

from django.db import migrations

CREATE = ("CREATE INDEX IF NOT EXISTS risk_open_calls_by_age ON risk_margincall (opened_at, id) "
          "WHERE state IN ('open', 'escalated')")
DROP = "DROP INDEX IF EXISTS risk_open_calls_by_age"


class Migration(migrations.Migration):

    dependencies = [
        ("lending", "0010_application_state_counts"),
        ("risk", "0005_booksummary_riskpolicy_effective_from_and_more"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP, elidable=False)]
