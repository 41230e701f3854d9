"""Bulk exports are reads, but personal data leaving the portal in bulk is recorded: who, which list, which filters."""

from __future__ import annotations

from django.db import transaction

from portal.audit import audit_log


@transaction.atomic
def export_record(*, actor, list_name: str, fmt: str, filters: dict) -> None:
    audit_log(actor=actor, action="reporting.export.downloaded", object_type="export", object_id=list_name,
              after={"format": fmt, "filters": {k: v for k, v in filters.items() if v not in ("", None, [])}})
