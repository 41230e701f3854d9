"""The audit trail: written with the change, rolled back with it, append-only, hash-chained."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from portal.audit import SYSTEM, audit_chain_verify, audit_log, audit_log_many
from portal.models import AuditEvent, User
from portal.permissions import Role
from portal.services import user_assign_role
from tests.helpers import make_user, need_postgres

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_role_change_writes_its_audit_row(alice, compliance_user):
    before = AuditEvent.objects.count()
    user_assign_role(user=alice, role=Role.ACCOUNT_OFFICER, actor=compliance_user)
    event = AuditEvent.objects.get(id=AuditEvent.objects.order_by("-id").first().id)
    assert AuditEvent.objects.count() == before + 1
    assert event.action == "user.role_assigned"
    assert event.actor_id == compliance_user.id
    assert event.actor_label == compliance_user.email
    assert (event.object_type, event.object_id) == ("portal.user", str(alice.pk))
    assert event.before == {"roles": ["client"]}
    assert event.after == {"roles": ["account_officer"], "is_staff": False}


def test_audit_row_rolls_back_with_the_change(alice, compliance_user):
    before = AuditEvent.objects.count()
    with pytest.raises(Boom), transaction.atomic():
        user_assign_role(user=alice, role=Role.ADMIN, actor=compliance_user)
        assert AuditEvent.objects.count() == before + 1
        raise Boom
    assert AuditEvent.objects.count() == before
    assert User.objects.get(pk=alice.pk).role_names == {"client"}


def test_audit_log_outside_a_transaction_is_refused(transactional_db):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_log(actor=SYSTEM, action="test.thing.done", object_type="test.thing", object_id=1)
    assert not AuditEvent.objects.filter(action="test.thing.done").exists()


def test_the_request_ip_and_user_agent_are_recorded(client, alice):
    client.post(
        "/accounts/signup/",
        {"email": "dora@example.com", "password1": "Sturdy-Passphrase-77", "password2": "Sturdy-Passphrase-77"},
        REMOTE_ADDR="198.51.100.23",
        HTTP_USER_AGENT="PortalTest/1.0",
    )
    event = AuditEvent.objects.filter(action="user.role_assigned", actor_label="dora@example.com").get()
    assert event.ip_address == "198.51.100.23"
    assert event.user_agent == "PortalTest/1.0"


def test_each_row_chains_to_the_previous(alice, charlie):
    rows = list(AuditEvent.objects.order_by("id"))
    assert rows[0].prev_hash == "0" * 64
    for prev, row in zip(rows, rows[1:], strict=False):
        assert row.prev_hash == prev.hash
        assert row.hash == row.compute_hash()


def test_many_rows_at_once_are_the_rows_one_at_a_time_would_be_and_chain_in_order(alice, charlie):
    """A set-based change (a revaluation meeting hundreds of calls) writes its rows in one statement; each carries
    its own history exactly as audit_log would write it, in order on the chain, and the chain verifies."""
    from decimal import Decimal

    rows = [{"action": "test.call.met", "object_type": "risk.margincall", "object_id": i, "object_repr": f"MC-{i:06d}" + "x" * 300,
             "before": {"state": "open"} if i % 2 else None, "after": {"state": "met", "shortfall": Decimal("12.50"), "note": "雙 \"quoted\""}}
            for i in range(1, 6)]
    first = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    with transaction.atomic():
        assert audit_log_many(actor=alice, rows=rows) == 5
        single = audit_log(actor=alice, action="test.call.met", object_type="risk.margincall", object_id=1,
                           after={"state": "met", "shortfall": Decimal("12.50")})
    written = list(AuditEvent.objects.filter(id__gt=first, action="test.call.met").order_by("id"))
    assert [e.object_id for e in written] == ["1", "2", "3", "4", "5", "1"]
    assert written[-1].pk == single.pk
    for event, row in zip(written, rows, strict=False):  # the last, written one at a time, compared by the chain below
        assert (event.actor_id, event.actor_label) == (alice.pk, alice.email)
        assert event.object_repr == row["object_repr"][:200]
        assert event.before == ({"state": "open"} if int(event.object_id) % 2 else None)
        assert event.after == {"state": "met", "shortfall": "12.50", "note": '雙 "quoted"'}
    assert AuditEvent.objects.filter(id__gt=first, before__isnull=True).count() == 3  # SQL NULL, as one at a time, not JSON null
    for prev, row in zip(written, written[1:], strict=False):
        assert row.prev_hash == prev.hash and row.hash == row.compute_hash()
    assert audit_chain_verify().ok


class TestAppendOnlyInTheOrm:
    def test_a_saved_row_cannot_be_saved_again(self, alice):
        event = AuditEvent.objects.order_by("-id").first()
        event.action = "user.tampered"
        with pytest.raises(PermissionError):
            event.save()
        assert AuditEvent.objects.get(pk=event.pk).action != "user.tampered"

    def test_a_row_cannot_be_deleted(self, alice):
        event = AuditEvent.objects.order_by("-id").first()
        with pytest.raises(PermissionError):
            event.delete()
        assert AuditEvent.objects.filter(pk=event.pk).exists()

    def test_querysets_cannot_update_or_delete(self, alice):
        count = AuditEvent.objects.count()
        with pytest.raises(PermissionError):
            AuditEvent.objects.all().update(action="user.tampered")
        with pytest.raises(PermissionError):
            AuditEvent.objects.filter(object_id=str(alice.pk)).delete()
        # bulk_update runs its updates inside atomic(savepoint=False): give it its own block.
        with pytest.raises(PermissionError), transaction.atomic():
            AuditEvent.objects.bulk_update(list(AuditEvent.objects.all()), ["action"])
        assert AuditEvent.objects.count() == count
        assert not AuditEvent.objects.filter(action="user.tampered").exists()

    def test_rows_cannot_be_bulk_created_around_the_chain(self, alice):
        count = AuditEvent.objects.count()
        forged = AuditEvent(actor_label="x", action="forged", object_type="t", prev_hash="0" * 64, hash="f" * 64)
        with pytest.raises(PermissionError):
            AuditEvent.objects.bulk_create([forged])
        assert AuditEvent.objects.count() == count


class TestAppendOnlyInSql:
    """On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE from anyone's SQL."""

    @pytest.mark.parametrize(
        "sql",
        [
            "UPDATE portal_auditevent SET action = 'user.tampered'",
            "DELETE FROM portal_auditevent",
            "TRUNCATE portal_auditevent CASCADE",
        ],
    )
    def test_raw_sql_is_refused(self, alice, sql):
        need_postgres()
        count = AuditEvent.objects.count()
        with connection.cursor() as cursor:
            # The test's own inserts leave deferred FK checks pending; TRUNCATE/ALTER need none.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # tests/conftest.py switches the TRUNCATE trigger off so Django can flush between
            # transactional tests; switch it back on here (rolled back with the test).
            cursor.execute("ALTER TABLE portal_auditevent ENABLE TRIGGER portal_auditevent_no_truncate")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
        assert AuditEvent.objects.count() == count
        assert not AuditEvent.objects.filter(action="user.tampered").exists()

    def test_inserting_still_works(self, alice):
        need_postgres()
        with transaction.atomic():
            audit_log(actor=SYSTEM, action="test.thing.done", object_type="test.thing", object_id=1)
        assert AuditEvent.objects.filter(action="test.thing.done").count() == 1


def _sql_tamper(sql: str, params: list) -> None:
    """Edit audit rows behind the ORM's back, as someone with a SQL prompt would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events before ALTER TABLE
            # Only the table owner can do this; the test's transaction rolls it back.
            cursor.execute("ALTER TABLE portal_auditevent DISABLE TRIGGER portal_auditevent_no_update_delete")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE portal_auditevent ENABLE TRIGGER portal_auditevent_no_update_delete")


@pytest.fixture
def trail(alice, charlie, bob):
    """Six audit rows from creating three users (created + role assigned each)."""
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) == 6
    return ids


class TestAuditVerify:
    def test_an_intact_chain_passes(self, trail, capsys):
        call_command("audit_verify")
        assert f"Audit chain intact: {len(trail)} rows verified." in capsys.readouterr().out

    def test_an_empty_trail_passes(self, db, capsys):
        AuditEvent.objects.all().count()  # nothing written yet
        report = audit_chain_verify()
        assert report.ok

    def test_an_altered_row_is_named(self, trail):
        victim = trail[4]
        _sql_tamper("UPDATE portal_auditevent SET after = %s WHERE id = %s", ['{"roles": ["admin"]}', victim])
        with pytest.raises(
            CommandError, match=rf"broken at row {victim}: content does not match its hash \(4 rows verified"
        ):
            call_command("audit_verify")

    def test_an_altered_actor_is_caught(self, trail):
        victim = trail[2]
        _sql_tamper("UPDATE portal_auditevent SET actor_label = %s WHERE id = %s", ["someone@else.example", victim])
        with pytest.raises(CommandError, match=rf"broken at row {victim}"):
            call_command("audit_verify")

    def test_a_re_hashed_row_breaks_the_next_link(self, trail):
        # Someone who edits a row and recomputes its hash still breaks the chain.
        victim = AuditEvent.objects.get(id=trail[3])
        victim.action = "user.tampered"
        _sql_tamper(
            "UPDATE portal_auditevent SET action = %s, hash = %s WHERE id = %s",
            [victim.action, victim.compute_hash(), victim.id],
        )
        with pytest.raises(CommandError, match=rf"broken at row {trail[4]}: prev_hash"):
            call_command("audit_verify")

    def test_a_deleted_row_leaves_a_gap_that_is_named(self, trail):
        _sql_tamper("DELETE FROM portal_auditevent WHERE id = %s", [trail[3]])
        with pytest.raises(CommandError, match=rf"broken at row {trail[4]}: prev_hash"):
            call_command("audit_verify")

    def test_rows_written_later_extend_the_chain(self, trail):
        make_user("client", email="late@example.com")
        assert audit_chain_verify().checked > len(trail)
        assert audit_chain_verify().ok


@pytest.mark.django_db(transaction=True)
def test_a_request_waiting_for_the_chain_with_its_client_locked_lets_an_audited_commit_through(alice):
    """Two requests of one client at once (found by fuzzing the API: a 500, "deadlock detected").

    The first has audited (it holds the chain lock) and commits: its audit row's actor key is checked
    then, with a KEY SHARE lock on the client's row. The second has locked the client's row to serialise
    the client's requests (``assessment_start``) and waits for the chain. A FOR UPDATE row lock blocks
    that check and PostgreSQL kills one of them; FOR NO KEY UPDATE, which still serialises the requests,
    does not.
    """
    import threading
    import time

    from django.db import connections

    from onboarding import services as onboarding_services

    need_postgres()
    audited, started = threading.Event(), threading.Event()
    errors: list = []

    def first():
        try:
            with transaction.atomic():
                audit_log(actor=alice, action="portal.test.first", object_type="portal.user", object_id=alice.pk)
                audited.set()
                started.wait(10)
                time.sleep(0.5)  # the second request is now waiting for the chain, with the client's row locked
        except Exception as exc:  # noqa: BLE001 - the failure is what the test reports
            errors.append(exc)
        finally:
            connections.close_all()

    def second():
        try:
            audited.wait(10)
            started.set()
            onboarding_services.assessment_start(client=alice)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True))[-2:] == [
        "portal.test.first", "onboarding.assessment.started"]
    assert audit_chain_verify().ok


def test_no_row_lock_is_taken_for_update_only_for_no_key_update():
    """Every row lock in the portal's code is FOR NO KEY UPDATE (see the test above and lending.locks):
    each ``select_for_update`` call says ``no_key=True`` and no SQL string says ``FOR UPDATE``."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for app in ("portal", "onboarding", "disclosures", "lending"):
        for path in sorted((root / app).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "select_for_update"
                        and not any(k.arg == "no_key" and getattr(k.value, "value", False) is True for k in node.keywords)):
                    found.append(where)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    sql = node.value.upper()
                    if " FOR UPDATE" in sql.replace("NO KEY UPDATE", "") and (sql.lstrip().startswith(("SELECT", "WITH")) or "ORDER BY" in sql):
                        found.append(where)
    assert found == []
