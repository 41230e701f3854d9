"""Every lock lending and the risk engine take, in one order.

    book  →  price rows  →  application rows  →  facility rows  →  margin-call rows  →  recovery rows  →  audit chain

* **book**: one transaction-scoped advisory lock for the whole book (PostgreSQL). Whole-book
  revaluations and reference-price changes hold it; so does anything that changes a facility it will
  then revalue (drawdown, repayment, top-up, opening, suspension). It is re-entrant.
* **price rows**: reference prices, overrides and price sources (only under the book lock).
* **application / facility / margin-call rows**: ``SELECT … FOR NO KEY UPDATE``, several in id order. Facility
  rows are locked only under the book lock, so every writer of a facility is serialised with the
  whole-book revaluation; margin-call rows may be locked without it (an officer chasing a call).
* **recovery rows**: liquidation plans, their amendments and debts after sale (``lending.recovery``),
  locked after the facility (and the margin call a close-out decides) they belong to.
* **audit chain**: ``portal.audit`` takes it for every audit row; it is always last, so a service writes
  its audit rows only after it has every other lock it will need.

Row locks are ``FOR NO KEY UPDATE`` everywhere (``select_for_update(no_key=True)``), never ``FOR UPDATE``:
a transaction that holds the audit chain checks its deferred foreign keys at commit, each with a KEY SHARE
lock on the row referred to (the audit row's actor, a ledger row's facility). ``FOR UPDATE`` would block
that check while its holder waits for the chain: a deadlock. ``FOR NO KEY UPDATE`` serialises the
writers the same way and lets the check through (``tests/portal/test_audit.py``).

A transaction may skip levels but never go back to an earlier one: that is what rules out deadlocks
between, say, a client accepting a facility letter (application → facility → audit) and a whole-book
revaluation (book → facility → margin call → audit). Asking for an earlier level than one already held
raises ``LockOrderError`` (on SQLite too, where the locks themselves are no-ops because
``transaction_mode=IMMEDIATE`` serialises writers), so a path that inverts the order fails its tests.
Every function refuses to run outside a transaction.
"""

from __future__ import annotations

from enum import IntEnum

from django.db import connection

_BOOK_KEY = 0x5249_534B_5245_56  # "RISKREV"


class Level(IntEnum):
    BOOK = 10
    PRICES = 20
    APPLICATION = 30
    FACILITY = 40
    MARGIN_CALL = 50
    RECOVERY = 60
    AUDIT = 90


class LockOrderError(RuntimeError):
    """A lock was asked for after a later one in the order was taken in the same transaction."""


class LockOutsideTransaction(RuntimeError):
    """A lock only means something inside the transaction that makes the change."""


def _transaction_key():
    """Identify the current transaction (not the test case's wrapper around it).

    ``TestCase`` wraps each test in atomic blocks marked ``_from_testcase``; the service's own
    outermost block is the first unmarked one. Nested in a wrapper it is a savepoint with a unique
    id; at the top level its life is tracked by a marker in the connection's on-commit list, which
    Django empties on both commit and rollback.
    """
    if not connection.in_atomic_block:
        raise LockOutsideTransaction("locks are taken inside the transaction that makes the change")
    blocks = connection.atomic_blocks
    depth = next((i for i, b in enumerate(blocks) if not getattr(b, "_from_testcase", False)), len(blocks) - 1)
    if depth > 0:
        return ("savepoint", connection.savepoint_ids[depth - 1]), None
    return ("top", id(blocks[0])), True


ALL = "*"


def _state() -> dict:
    key, top_level = _transaction_key()
    state = getattr(connection, "_lending_locks", None)
    alive = state is not None and state["key"] == key and (
        not top_level or any(func is state["marker"] for _sids, func, _robust in connection.run_on_commit)
    )
    if alive:
        return state
    marker = (lambda: None) if top_level else None  # a new function object: unique to this transaction
    state = {"key": key, "held": {}, "marker": marker}
    if top_level:
        connection.on_commit(marker)
    connection._lending_locks = state
    return state


def _enter(level: Level, ids=ALL) -> bool:
    """Record ``level`` (and, for rows, which ids) as held. False when all of it already was.

    Asking again for what is already held never waits, so it is allowed whatever was taken since;
    anything new at an earlier level than one already held is refused.
    """
    held = _state()["held"]
    have = held.get(level)
    if have is not None and (have == ALL or (ids != ALL and set(ids) <= have)):
        return False
    later = [h for h in held if h > level]
    if later:
        raise LockOrderError(
            f"{level.name} lock asked for after {max(later).name}: the order is book → prices → application → facility → "
            "margin call → recovery → audit chain (see lending.locks)"
        )
    if level in (Level.PRICES, Level.FACILITY) and Level.BOOK not in held:
        raise LockOrderError(f"{level.name.lower()} rows are locked only under the book lock: call lending.locks.book() first")
    held[level] = ALL if ids == ALL else (set(have or ()) | set(ids))
    return True


def book() -> None:
    """The whole-book lock, for the rest of the transaction (re-entrant)."""
    if _enter(Level.BOOK) and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_BOOK_KEY])


def rows(level: Level, queryset, ids) -> list:
    """The rows of ``queryset`` with these ids, locked FOR NO KEY UPDATE at ``level`` in id order (so two
    transactions locking several rows agree on the order). Missing ids are simply not returned."""
    if level in (Level.BOOK, Level.AUDIT):
        raise ValueError("rows() locks table rows; use book() for the book")
    ids = sorted({int(i) for i in ids})
    _enter(level, ids)
    locked = queryset.filter(pk__in=ids).order_by("pk")
    locked = locked.select_for_update(no_key=True, of=("self",)) if locked.query.select_related else locked.select_for_update(no_key=True)
    return list(locked)


def one(level: Level, queryset, pk):
    """One row locked at ``level``; ``queryset.model.DoesNotExist`` when there is none."""
    found = rows(level, queryset, [pk])
    if not found:
        raise queryset.model.DoesNotExist
    return found[0]


def facility(pk, queryset=None):
    from lending.models import Facility

    return one(Level.FACILITY, queryset if queryset is not None else Facility.objects.all(), pk)


def application(pk, queryset=None):
    from lending.models import FacilityApplication

    return one(Level.APPLICATION, queryset if queryset is not None else FacilityApplication.objects.all(), pk)


def margin_call(pk, queryset=None):
    from lending.risk.models import MarginCall

    return one(Level.MARGIN_CALL, queryset if queryset is not None else MarginCall.objects.all(), pk)


def writes(level: Level, ids=ALL) -> None:
    """Record that an UPDATE is about to write rows at ``level`` (``ids``, or any): the UPDATE takes the row locks."""
    _enter(level, ids if ids == ALL else sorted({int(i) for i in ids}))


def audit_chain_taken() -> None:
    """``portal.audit`` calls this before it takes the audit-chain lock."""
    _enter(Level.AUDIT)


def held() -> frozenset[Level]:
    """The levels held in this transaction (for tests and assertions)."""
    return frozenset(_state()["held"])
