"""Data-access requests: compliance produces a client's record archive and downloads it, each step audited."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from portal.access import ensure_staff_permission
from portal.audit import audit_log
from portal.errors import PortalError
from portal.permissions import Perm

from .. import archive
from ..models import RecordRequest


@transaction.atomic
def record_request_create(*, actor, client, basis: str, reference: str) -> RecordRequest:
    ensure_staff_permission(actor=actor, perm=Perm.RECORD_REQUEST)
    errors = {}
    if client is None or not client.is_client:
        errors["client"] = [_("Choose a client.")]
    if basis not in RecordRequest.Basis.values:
        errors["basis"] = [_("Say whose request this is.")]
    if not (reference or "").strip():
        errors["reference"] = [_("Enter the request's reference (letter, email or ticket).")]
    if errors:
        raise PortalError("validation_error", _("The record request is incomplete."), errors)
    data, manifest_sha, files = archive.build(client=client, generated_by=actor)
    request = RecordRequest.objects.create(
        client=client, basis=basis, reference=reference.strip(), requested_by=actor, archive=data,
        archive_sha256=hashlib.sha256(data).hexdigest(), manifest_sha256=manifest_sha, files=files,
    )
    audit_log(actor=actor, action="reporting.record_request.created", obj=request,
              after={"client": client.pk, "basis": basis, "reference": request.reference, "files": files,
                     "archive_sha256": request.archive_sha256, "manifest_sha256": manifest_sha})
    return request


@transaction.atomic
def record_request_download(*, actor, request_id: int) -> RecordRequest:
    """Each download is an audit row (who took the client's records out, when, from where)."""
    ensure_staff_permission(actor=actor, perm=Perm.RECORD_REQUEST)
    updated = RecordRequest.objects.filter(pk=request_id).update(downloads=F("downloads") + 1)
    if not updated:
        raise PortalError("not_found", _("No such record request."))
    request = RecordRequest.objects.get(pk=request_id)
    audit_log(actor=actor, action="reporting.record_request.downloaded", obj=request,
              after={"downloads": request.downloads, "archive_sha256": request.archive_sha256})
    return request
