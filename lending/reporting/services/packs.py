"""Generating and storing the SMF control pack (immutable, with the SHA-256 of its figures and files)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from lending.risk.revaluation import HK
from portal.access import ensure_staff_permission
from portal.audit import SYSTEM, audit_log
from portal.errors import PortalError
from portal.permissions import Perm

from .. import render, smf
from ..models import SmfPack


def canonical(data: dict) -> str:
    """The exact text the pack's SHA-256 covers."""
    return json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store(*, actor, as_of: date, kind: str, now: datetime) -> SmfPack:
    data = json.loads(canonical(smf.compute(as_of=as_of, now=now)))
    text = canonical(data)
    xlsx = render.pack_xlsx(data)
    pdf = render.pack_pdf(data)
    version = (SmfPack.objects.filter(as_of=as_of).aggregate(v=Max("version"))["v"] or 0) + 1
    pack = SmfPack.objects.create(
        kind=kind, period_start=date.fromisoformat(data["period_start"]), as_of=as_of, version=version, generated_at=now,
        generated_by=None if actor is SYSTEM else actor, data=data, data_sha256=_sha(text.encode()),
        xlsx=xlsx, xlsx_sha256=_sha(xlsx), pdf=pdf, pdf_sha256=_sha(pdf) if pdf else "",
    )
    audit_log(actor=actor, action="reporting.smf_pack.generated", obj=pack,
              after={"as_of": as_of, "version": version, "kind": kind, "data_sha256": pack.data_sha256,
                     "xlsx_sha256": pack.xlsx_sha256, "pdf_sha256": pack.pdf_sha256})
    return pack


@transaction.atomic
def smf_pack_generate(*, actor, as_of: date, now: datetime | None = None) -> SmfPack:
    """On demand: the pack as at any past date (or today), stored as a new version."""
    ensure_staff_permission(actor=actor, perm=Perm.REPORT_VIEW)
    now = now or timezone.now()
    if not isinstance(as_of, date) or as_of > now.astimezone(HK).date():
        raise PortalError("validation_error", _("Choose a date up to today."), {"as_of": [_("Choose a date up to today.")]})
    return _store(actor=actor, as_of=as_of, kind=SmfPack.Kind.ON_DEMAND, now=now)


def smf_pack_monthly(*, now: datetime | None = None) -> SmfPack | None:
    """Beat (daily): last month's pack, stored once; a second run, or a concurrent one, stores nothing."""
    now = now or timezone.now()
    as_of = smf.last_month_end(now.astimezone(HK).date())
    if SmfPack.objects.filter(kind=SmfPack.Kind.MONTHLY, period_start=as_of.replace(day=1)).exists():
        return None
    try:
        with transaction.atomic():
            return _store(actor=SYSTEM, as_of=as_of, kind=SmfPack.Kind.MONTHLY, now=now)
    except IntegrityError:
        return None  # the other run stored it (one monthly pack per month is a unique constraint)
