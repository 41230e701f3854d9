"""``manage.py benchmark revaluation`` runs the risk engine's benchmark (one code path)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_benchmark_revaluation_dispatches_to_the_risk_engine_benchmark():
    with mock.patch("lending.risk.benchmark.run") as run:
        call_command("benchmark", "revaluation", "--facilities", "1234", "--ticks", "3", "--naive-sample", "50", "--statements-at", "100")
    assert run.call_count == 1
    assert run.call_args.kwargs == {"facilities": 1234, "ticks": 3, "naive_sample": 50, "statements_at": 100, "holders": 1000,
                                    "reuse": False, "baseline_database": "", "cases": ("btc", "one", "eod")}


@pytest.mark.django_db
def test_benchmark_revaluation_refuses_anything_but_postgresql():
    from django.db import connection

    # Pretend to be SQLite whatever the suite runs on, so the refusal is checked in CI too.
    with mock.patch.object(connection, "vendor", "sqlite"), pytest.raises(CommandError, match="PostgreSQL"):
        call_command("benchmark", "revaluation", "--facilities", "10")


@pytest.mark.django_db
def test_a_benchmark_refuses_a_database_with_unapplied_migrations():
    """The book is built with the current schema: an old benchmark database says what to run, not a column error."""
    with mock.patch("django.db.migrations.executor.MigrationExecutor.migration_plan", return_value=[("risk", "0006")]), \
            mock.patch("lending.risk.benchmark.run") as run, pytest.raises(CommandError, match="unapplied migrations.*migrate"):
        call_command("benchmark", "revaluation", "--facilities", "10")
    assert not run.called


def test_the_growth_baseline_is_only_read_from_a_benchmark_database():
    """The baseline book's database is named by the user: a production database name is refused before it is touched."""
    from lending.risk.benchmark import _database

    with pytest.raises(CommandError, match="benchmark database"), _database("portal"):
        pass


@pytest.mark.django_db
def test_benchmark_revaluation_times_only_the_cases_asked_for_and_refuses_an_unknown_one():
    with mock.patch("lending.risk.benchmark.run") as run:
        call_command("benchmark", "revaluation", "--facilities", "10", "--cases", "one")
    assert run.call_args.kwargs["cases"] == ("one",)
    with pytest.raises(CommandError, match="--cases"):
        call_command("benchmark", "revaluation", "--facilities", "10", "--cases", "one,tuesday")


def test_statement_counts_are_compared_only_between_ticks_that_changed_the_same_things():
    """A tick that changes bands runs the statements that record them; one that changes nothing does not. A larger
    book whose tick happened to move one facility's band is not "more statements because larger"."""
    from lending.risk.benchmark import statements_by_size

    lines, same = statements_by_size({"one": {10_000: {"nothing": 15}, 1_000_000: {"nothing": 15, "bands": 22}}})
    assert same is True
    assert lines == ["SQL statements per one tick (most in any tick), by what the tick changed: "
                     "bands changed: 22 at 1,000,000 facilities; nothing changed: 15 at 10,000 facilities, 15 at 1,000,000 facilities"]
    assert statements_by_size({"one": {10_000: {"bands": 22}, 1_000_000: {"bands": 23}}})[1] is False
    # Nothing done alike at two sizes: not measured, never reported as met.
    assert statements_by_size({"one": {10_000: {"nothing": 15}, 1_000_000: {"bands": 22}}})[1] is None


def _report_of(facilities: int) -> str:
    import io

    from lending.risk import benchmark

    tick = {"times": [1.5, 1.6, 1.7], "median": 1.6, "floor": 3.8, "affected": 200_000, "changes": [4000], "statements": {}}
    out = {"btc": tick, "one": tick | {"times": [0.018], "median": 0.018, "floor": 0.009, "affected": 1000},
           "eod": tick | {"median": 1.2, "floor": 0.4, "sums": 0.7, "write_floor": 0.34}, "naive_per": 0.0008, "baseline_one": 0.027, "peak_mb": 272,
           "load": "1", "load_end": "2", "statements": {}}
    stream = io.StringIO()

    class Out:
        def write(self, text):
            stream.write(text + "\n")

    with mock.patch.object(benchmark, "_count", return_value=0):
        benchmark._report(Out(), out, facilities=facilities, holders=1000)
    return stream.getvalue()


def test_the_time_targets_set_for_a_100000_facility_book_judge_only_that_book():
    """At 1,000,000 facilities the BTC and end-of-day ticks touch ten times the facilities: their figures are printed
    as information, and the verdict is about the targets that apply there (growth, the single security, memory, …)."""
    large = _report_of(1_000_000)
    assert "set for a 100,000-facility book: information at this size" in large
    verdict = large.strip().splitlines()[-1]
    assert "BTC" not in verdict and "end of day" not in verdict and "growth ≤ 1.5×" in verdict
    at_size = _report_of(100_000)
    assert "information at this size" not in at_size
    assert "missed BTC < 0.5 s and ≤ 2× floor; end of day < 2 s and ≤ 2× floor" in at_size.strip().splitlines()[-1]
    # What is left for valuing the book within 2× the floor once the tick has recorded what changed.
    assert ("banding the candidates and recording what changed take 500.0 ms, 1.25× the floor: within 2× the floor, the update "
            "of the sums (valuing every affected facility and writing its sums) would have 300.0 ms, 0.75× the floor's bare SELECT") in at_size
