"""The audit trail's one choke point.

Every regulated change in every app calls ``audit_log`` inside the transaction
that makes the change, so the row commits or rolls back with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from .context import current_request_meta
from .models import AuditEvent, audit_canonical

GENESIS_HASH = "0" * 64
# Any fixed 64-bit key: every audit writer takes this transaction-scoped lock so
# rows are chained in commit order and two writers never share a prev_hash.
_CHAIN_LOCK_KEY = 0x5641_4155_4449_54  # "VAAUDIT"


def jsonable(value: Any) -> Any:
    """Decimals, dates and UUIDs as strings, exactly as they will be stored."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: Model, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The named fields of ``obj`` as a JSON-safe dict (foreign keys by id)."""
    data = {}
    for name in fields:
        field = obj._meta.get_field(name)
        data[name] = getattr(obj, field.attname)
    return jsonable(data)


# Called before the chain lock is taken: lending.locks registers itself here, so the audit chain is
# recorded as the last lock of the transaction and a later book or row lock is refused.
CHAIN_LOCK_LISTENERS: list = []


def _lock_chain() -> None:
    for listener in CHAIN_LOCK_LISTENERS:
        listener()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite: transaction_mode=IMMEDIATE already serialises writers.


@dataclass(frozen=True)
class System:
    """The actor for changes made by Celery tasks and management commands."""

    label: str = "system"


SYSTEM = System()


def _event(*, actor, action, object_type, object_id, object_repr, before, after, meta) -> AuditEvent:
    is_user = actor is not None and not isinstance(actor, System)
    return AuditEvent(
        actor=actor if is_user else None,
        actor_label=actor.email if is_user else (actor or SYSTEM).label,
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        object_repr=object_repr[:200],
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        ip_address=meta.ip_address,
        user_agent=meta.user_agent,
    )


def _chain(events: list[AuditEvent]) -> list[AuditEvent]:
    """Hash ``events`` onto the end of the chain and store them (three statements for any number)."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_log must be called inside the transaction that makes the change")
    _lock_chain()
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    for event in events:
        event.prev_hash = last
        event.hash = last = event.compute_hash()
    if len(events) == 1:
        events[0].save()
        return events
    # The queryset refuses bulk_create because it would skip the chain; this is the chain, so it
    # calls the plain QuerySet method (the only place that may).
    return QuerySet.bulk_create(AuditEvent.objects.all(), events)


def audit_log(
    *,
    actor,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one row to the audit trail. Must run inside the change's transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    if not object_type:
        raise ValueError("audit_log needs obj or object_type")
    event = _event(actor=actor, action=action, object_type=object_type, object_id=object_id,
                   object_repr=str(obj) if obj is not None else "", before=before, after=after, meta=current_request_meta())
    return _chain([event])[0]


def audit_log_many(*, actor, rows: list[dict]) -> int:
    """Append one row per changed record in one INSERT: for set-based changes (a revaluation that opens,
    escalates or meets many margin calls at once) whose rows must each carry their own history.

    Each of ``rows`` has ``action``, ``object_type``, ``object_id`` and optionally ``object_repr``,
    ``before``, ``after``. Must run inside the change's transaction. Returns the number of rows written.
    """
    if not rows:
        return 0
    meta = current_request_meta()
    if connection.vendor == "postgresql" and len(rows) > 1:
        return _chain_many(actor=actor, rows=rows, meta=meta)
    events = [
        _event(actor=actor, action=r["action"], object_type=r["object_type"], object_id=r["object_id"], object_repr=r.get("object_repr", ""),
               before=r.get("before"), after=r.get("after"), meta=meta)
        for r in rows
    ]
    return len(_chain(events))


# The audit row's columns as ``_chain_many`` hands them to PostgreSQL.
_MANY_COLUMNS = (("created_at", "timestamptz"), ("actor_id", "bigint"), ("actor_label", "text"), ("action", "text"), ("object_type", "text"),
                 ("object_id", "text"), ("object_repr", "text"), ("before", "jsonb"), ("after", "jsonb"), ("ip_address", "inet"),
                 ("user_agent", "text"), ("prev_hash", "text"), ("hash", "text"))


def _chain_many(*, actor, rows: list[dict], meta) -> int:
    """PostgreSQL: the same rows as ``_event`` and ``_chain`` make, hashed onto the chain (``audit_canonical``) and stored
    by one INSERT from one JSON document (``jsonb_to_recordset``). A model instance per row and every field bound on its
    own cost about 50 µs a row in Python, and one end-of-day revaluation writes thousands of rows."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_log must be called inside the transaction that makes the change")
    is_user = actor is not None and not isinstance(actor, System)
    actor_id, actor_label = (actor.pk, actor.email) if is_user else (None, (actor or SYSTEM).label)
    created_at = timezone.now().isoformat()
    _lock_chain()
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    values = []
    for n, r in enumerate(rows):
        before, after = r.get("before"), r.get("after")
        row = {"created_at": created_at, "actor_id": actor_id, "actor_label": actor_label, "action": r["action"], "object_type": r["object_type"],
               "object_id": str(r["object_id"] or ""), "object_repr": r.get("object_repr", "")[:200],
               "before": jsonable(before) if before is not None else None, "after": jsonable(after) if after is not None else None,
               "ip_address": meta.ip_address, "user_agent": meta.user_agent, "prev_hash": last, "n": n}
        row["hash"] = last = hashlib.sha256(audit_canonical(row).encode()).hexdigest()
        values.append(row)
    names = ", ".join(name for name, _ in _MANY_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO portal_auditevent ({names}) SELECT {names} FROM jsonb_to_recordset(%s::jsonb) "  # noqa: S608 - constant column names
            f"AS r({', '.join(f'{name} {kind}' for name, kind in _MANY_COLUMNS)}, n int) ORDER BY n",  # ids in chain order
            [json.dumps(values, ensure_ascii=False)],
        )
    return len(values)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def audit_chain_verify(*, batch_size: int = 5000) -> ChainReport:
    """Recompute every row's hash in order; report the first row that does not match."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    with transaction.atomic():
        while True:
            batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
            if not batch:
                return ChainReport(checked=checked)
            for event in batch:
                if event.prev_hash != expected_prev:
                    return ChainReport(checked, event.id, "prev_hash does not match the previous row's hash")
                if event.compute_hash() != event.hash:
                    return ChainReport(checked, event.id, "content does not match its hash")
                expected_prev = event.hash
                checked += 1
                last_id = event.id
