"""Writes for disclosures: documents, versions and their publication, servings, acknowledgements, fan-outs."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from portal.audit import SYSTEM, System, audit_log, snapshot
from portal.context import current_request_meta
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import User
from portal.notifications import notify_many
from portal.permissions import Perm
from portal.products import Product

from . import text
from .models import (
    Acknowledgement,
    Channel,
    DisclosureLanguage,
    Document,
    DocumentRequirement,
    DocumentVersion,
    FanoutStatus,
    ReacknowledgementFanout,
    Serving,
    VersionStatus,
)

VERSION_AUDIT_FIELDS = (
    "document",
    "number",
    "status",
    "hash_en",
    "hash_zh",
    "change_summary",
    "material",
    "effective_date",
    "published_at",
    "published_by",
    "superseded_at",
    "withdrawn_at",
    "withdrawn_reason",
)
FANOUT_BATCH_SIZE = 500


def _ensure_manager(actor) -> None:
    if isinstance(actor, System):
        return
    if not (actor is not None and actor.is_authenticated and actor.has_perm(Perm.DISCLOSURE_MANAGE)):
        raise ForbiddenError("forbidden", _("Only administrators who maintain disclosures can do this."))


def _clean_products(products) -> list[str]:
    cleaned = sorted(set(products or []))
    unknown = [p for p in cleaned if p not in Product.values]
    if unknown:
        raise PortalError("invalid_product", _("Unknown product: %(p)s") % {"p": ", ".join(unknown)}, {"products": unknown})
    return cleaned


def _document_snapshot(document: Document) -> dict:
    data = snapshot(document, ["code", "title_en", "title_zh"])
    data["products"] = sorted(document.requirements.values_list("product", flat=True))
    return data


# --- Documents -----------------------------------------------------------------


@transaction.atomic
def document_create(*, actor, code: str, title_en: str, title_zh: str, products: list[str]) -> Document:
    _ensure_manager(actor)
    products = _clean_products(products)
    if not (code and title_en.strip() and title_zh.strip()):
        raise PortalError("validation_error", _("A document needs a code and a title in both languages."))
    if Document.objects.filter(code=code).exists():
        raise ConflictError("duplicate_code", _("A document with this code already exists."), {"code": [code]})
    document = Document.objects.create(code=code, title_en=title_en.strip(), title_zh=title_zh.strip())
    DocumentRequirement.objects.bulk_create([DocumentRequirement(document=document, product=p) for p in products])
    audit_log(actor=actor, action="disclosures.document.created", obj=document, after=_document_snapshot(document))
    return document


@transaction.atomic
def document_update(*, actor, document_id: int, title_en: str, title_zh: str, products: list[str]) -> Document:
    """Change titles and which products require the document (the code never changes)."""
    _ensure_manager(actor)
    products = _clean_products(products)
    if not (title_en.strip() and title_zh.strip()):
        raise PortalError("validation_error", _("A document needs a title in both languages."))
    document = Document.objects.select_for_update(no_key=True).get(id=document_id)
    before = _document_snapshot(document)
    document.title_en, document.title_zh = title_en.strip(), title_zh.strip()
    document.save(update_fields=["title_en", "title_zh"])
    document.requirements.exclude(product__in=products).delete()
    existing = set(document.requirements.values_list("product", flat=True))
    DocumentRequirement.objects.bulk_create(
        [DocumentRequirement(document=document, product=p) for p in products if p not in existing]
    )
    after = _document_snapshot(document)
    if after != before:
        audit_log(actor=actor, action="disclosures.document.updated", obj=document, before=before, after=after)
    return document


# --- Versions ------------------------------------------------------------------


def _fill_text(version: DocumentVersion, *, body_en: str, body_zh: str) -> None:
    version.body_en = text.canonicalize(body_en)
    version.body_zh = text.canonicalize(body_zh)
    version.hash_en = text.content_hash(version.body_en) if version.body_en else ""
    version.hash_zh = text.content_hash(version.body_zh) if version.body_zh else ""


@transaction.atomic
def version_create_draft(
    *,
    actor,
    document_id: int,
    body_en: str,
    body_zh: str,
    change_summary: str = "",
    change_summary_zh: str = "",
    material: bool = True,
    effective_date: date | None = None,
) -> DocumentVersion:
    _ensure_manager(actor)
    # Lock the document: version numbers are handed out one at a time.
    document = Document.objects.select_for_update(no_key=True).get(id=document_id)
    if document.versions.filter(status=VersionStatus.DRAFT).exists():
        raise ConflictError(
            "draft_exists", _("This document already has a draft version. Edit or withdraw it first.")
        )
    last = document.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = DocumentVersion(
        document=document,
        number=last + 1,
        change_summary=change_summary.strip(),
        change_summary_zh=change_summary_zh.strip(),
        material=material,
        effective_date=effective_date or timezone.localdate(),
        created_by=None if isinstance(actor, System) else actor,
    )
    _fill_text(version, body_en=body_en, body_zh=body_zh)
    version.save()
    audit_log(actor=actor, action="disclosures.version.drafted", obj=version, after=snapshot(version, VERSION_AUDIT_FIELDS))
    return version


@transaction.atomic
def version_update_draft(
    *,
    actor,
    version_id: int,
    body_en: str,
    body_zh: str,
    change_summary: str,
    material: bool,
    effective_date: date,
    change_summary_zh: str = "",
) -> DocumentVersion:
    _ensure_manager(actor)
    version = DocumentVersion.objects.select_for_update(no_key=True).select_related("document").get(id=version_id)
    if version.status != VersionStatus.DRAFT:
        raise ConflictError(
            "immutable", _("Version %(n)s is %(status)s: its text can never change. Create a new version instead.")
            % {"n": version.number, "status": version.get_status_display()},
        )
    before = snapshot(version, VERSION_AUDIT_FIELDS)
    _fill_text(version, body_en=body_en, body_zh=body_zh)
    version.change_summary = change_summary.strip()
    version.change_summary_zh = change_summary_zh.strip()
    version.material = material
    version.effective_date = effective_date
    version.save()
    after = snapshot(version, VERSION_AUDIT_FIELDS)
    if after != before:
        audit_log(actor=actor, action="disclosures.version.draft_updated", obj=version, before=before, after=after)
    return version


def current_version_of(document_id: int) -> DocumentVersion | None:
    return DocumentVersion.objects.filter(document_id=document_id, status=VersionStatus.PUBLISHED).first()


def preview_fingerprint(*, version: DocumentVersion, current: DocumentVersion | None) -> str:
    """What the publisher saw in the preview: the draft's text and flags and the version it replaces.

    Publishing with a fingerprint refuses if any of that changed in between.
    """
    raw = "|".join(
        [
            str(version.pk),
            text.content_hash(version.body_en),
            text.content_hash(version.body_zh),
            str(version.material),
            str(version.effective_date),
            version.change_summary,
            version.change_summary_zh,
            str(current.pk if current else 0),
        ]
    )
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def version_publish(*, actor, version_id: int, fingerprint: str | None = None) -> DocumentVersion:
    """Publish a draft: it becomes current, the previous current version is superseded.

    A material version starts the re-acknowledgement fan-out (after commit).
    """
    _ensure_manager(actor)
    version = DocumentVersion.objects.select_related("document").get(id=version_id)
    # Lock the document first, then its versions, in the same order as every other
    # writer: two publishers of one document run one after the other.
    Document.objects.select_for_update(no_key=True).get(id=version.document_id)
    version = DocumentVersion.objects.select_for_update(no_key=True).select_related("document").get(id=version_id)
    if version.status != VersionStatus.DRAFT:
        raise ConflictError("invalid_state", _("Only a draft can be published; this version is %(s)s.") % {"s": version.get_status_display()})
    if not (version.body_en.strip() and version.body_zh.strip()):
        raise PortalError(
            "both_languages_required",
            _("Publishing needs the text in both English and Traditional Chinese."),
            {"body_en" if not version.body_en.strip() else "body_zh": [_("This language is empty.")]},
        )
    current = DocumentVersion.objects.select_for_update(no_key=True).filter(document_id=version.document_id, status=VersionStatus.PUBLISHED).first()
    if fingerprint is not None and fingerprint != preview_fingerprint(version=version, current=current):
        raise ConflictError(
            "preview_outdated", _("The draft or the current version changed after your preview. Review the preview again.")
        )
    if current is not None and current.number > version.number:
        raise ConflictError("out_of_order", _("A later version is already published."))
    now = timezone.now()
    # Re-derive the hashes and freeze the rendered HTML at the moment of publication.
    _fill_text(version, body_en=version.body_en, body_zh=version.body_zh)
    version.html_en = text.render(version.body_en)
    version.html_zh = text.render(version.body_zh)
    if current is not None:
        before = snapshot(current, VERSION_AUDIT_FIELDS)
        current.supersede(at=now)
        current.save()
        audit_log(actor=actor, action="disclosures.version.superseded", obj=current, before=before, after=snapshot(current, VERSION_AUDIT_FIELDS))
    before = snapshot(version, VERSION_AUDIT_FIELDS)
    version.publish(by=None if isinstance(actor, System) else actor, at=now)
    version.save()
    audit_log(
        actor=actor,
        action="disclosures.version.published",
        obj=version,
        before=before,
        after={**snapshot(version, VERSION_AUDIT_FIELDS), "replaces": current.pk if current else None},
    )
    if version.material and current is not None:
        _fanout_start(version=version)
    return version


@transaction.atomic
def version_withdraw(*, actor, version_id: int, reason: str) -> DocumentVersion:
    """Withdraw a draft or the current version. A withdrawn current version leaves the document with none."""
    _ensure_manager(actor)
    if not reason.strip():
        raise PortalError("reason_required", _("Give the reason for withdrawing this version."), {"reason": [_("Required.")]})
    version = DocumentVersion.objects.select_related("document").get(id=version_id)
    Document.objects.select_for_update(no_key=True).get(id=version.document_id)
    version = DocumentVersion.objects.select_for_update(no_key=True).select_related("document").get(id=version_id)
    if version.status not in (VersionStatus.DRAFT, VersionStatus.PUBLISHED):
        raise ConflictError("invalid_state", _("Only a draft or the current version can be withdrawn."))
    before = snapshot(version, VERSION_AUDIT_FIELDS)
    version.withdraw(at=timezone.now(), reason=reason.strip())
    version.save()
    audit_log(actor=actor, action="disclosures.version.withdrawn", obj=version, before=before, after=snapshot(version, VERSION_AUDIT_FIELDS))
    return version


# --- Serving and acknowledgement ----------------------------------------------------


def _require_client(user) -> None:
    if not (user is not None and user.is_authenticated and user.is_client):
        raise ForbiddenError("forbidden", _("Only clients acknowledge risk disclosures."))


@transaction.atomic
def version_serve(*, user, version: DocumentVersion, language: str, channel: str = Channel.WEB) -> Serving:
    """Record that ``user`` was given the full text of the current ``version`` in ``language``."""
    _require_client(user)
    if version.status != VersionStatus.PUBLISHED:
        raise ConflictError("version_not_current", _("Only the current version can be served for acknowledgement."))
    if language not in DisclosureLanguage.values:
        raise PortalError("invalid_language", _("Choose English or Traditional Chinese."), {"language": [language]})
    meta = current_request_meta()
    return Serving.objects.create(
        client=user,
        version=version,
        language=language,
        content_hash=version.hash_in(language),
        token=secrets.token_urlsafe(32),
        channel=channel,
        ip_address=meta.ip_address,
        user_agent=meta.user_agent,
    )


ACK_AUDIT_FIELDS = ("client", "version", "language", "content_hash", "serving", "channel", "acknowledged_at", "ip_address", "user_agent")


@transaction.atomic
def acknowledgement_record(
    *,
    user,
    version_id: int,
    language: str,
    content_hash: str,
    serving_token: str,
    confirmed_read_and_understood: bool,
    confirmed_invited_to_ask_and_seek_advice: bool,
    channel: str = Channel.WEB,
) -> tuple[Acknowledgement, bool]:
    """Record the client's acknowledgement of the version they were served. Returns (row, created).

    Acknowledging a version twice returns the first acknowledgement and creates nothing.
    """
    _require_client(user)
    existing = Acknowledgement.objects.filter(client=user, version_id=version_id).first()
    if existing is not None:
        return existing, False
    fields = {}
    if not confirmed_read_and_understood:
        fields["confirmed_read_and_understood"] = [_("Confirm that you have read and understood the statement.")]
    if not confirmed_invited_to_ask_and_seek_advice:
        fields["confirmed_invited_to_ask_and_seek_advice"] = [
            _("Confirm that you were invited to ask questions and to seek independent advice.")
        ]
    if fields:
        # One message that says what is missing: the single unticked statement, or both.
        message = next(iter(fields.values()))[0] if len(fields) == 1 else _("Please confirm both statements before acknowledging.")
        raise PortalError("confirmation_required", message, fields)
    if language not in DisclosureLanguage.values:
        raise PortalError("invalid_language", _("Choose English or Traditional Chinese."), {"language": [language]})
    version = (
        DocumentVersion.objects.select_for_update(no_key=True)
        .select_related("document")
        .filter(id=version_id)
        .exclude(status=VersionStatus.DRAFT)
        .first()
    )
    if version is None:
        raise PortalError("not_found", _("No such disclosure version."))
    if version.status != VersionStatus.PUBLISHED:
        raise ConflictError(
            "version_not_current",
            _("Version %(n)s of “%(title)s” is no longer current. Please open and read the current version.")
            % {"n": version.number, "title": version.document.title_in(translation.get_language())},
        )
    if content_hash != version.hash_in(language):
        raise ConflictError(
            "hash_mismatch",
            _("The text you were shown does not match the published text of this version. Please reload it and read it again."),
            {"content_hash": [_("Does not match.")]},
        )
    serving = Serving.objects.filter(token=serving_token or "-", client=user, version=version, language=language).first()
    if serving is None:
        raise PortalError(
            "not_served",
            _("Open and read the full text of this version, in the language you acknowledge, before acknowledging it."),
            {"serving_token": [_("No record that this text was shown to you.")]},
        )
    meta = current_request_meta()
    try:
        with transaction.atomic():
            ack = Acknowledgement.objects.create(
                client=user,
                version=version,
                language=language,
                content_hash=content_hash,
                serving=serving,
                confirmed_read_and_understood=True,
                confirmed_invited_to_ask_and_seek_advice=True,
                channel=channel,
                ip_address=meta.ip_address,
                user_agent=meta.user_agent,
            )
    except IntegrityError:
        # A concurrent duplicate submission won the race: that row is the acknowledgement.
        return Acknowledgement.objects.get(client=user, version=version), False
    audit_log(actor=user, action="disclosures.acknowledgement.recorded", obj=ack, after=snapshot(ack, ACK_AUDIT_FIELDS))
    from portal.notifications import notifications_resolve

    notifications_resolve(user=user, task_key=acknowledge_task_key(version.pk))
    return ack, True


# --- Re-acknowledgement fan-out --------------------------------------------------


class _Title:
    """A document title whose ``str()`` is in the active language (notifications render per recipient)."""

    def __init__(self, document: Document):
        self.document = document

    def __str__(self) -> str:
        return self.document.title_in(translation.get_language())


class _Summary:
    """A version's summary of changes whose ``str()`` is in the active language."""

    def __init__(self, version: DocumentVersion):
        self.version = version

    def __str__(self) -> str:
        return self.version.change_summary_in(translation.get_language()) or "-"


def _fanout_start(*, version: DocumentVersion) -> ReacknowledgementFanout:
    from .tasks import reacknowledgement_fanout

    fanout, created = ReacknowledgementFanout.objects.get_or_create(version=version)
    if created:
        audit_log(actor=SYSTEM, action="disclosures.fanout.started", obj=fanout, after={"version": version.pk})
    reacknowledgement_fanout.delay_on_commit(fanout.pk)
    return fanout


def fanout_targets(*, version: DocumentVersion, after_id: int, limit: int) -> list[User]:
    """Clients who acknowledged an earlier version of the document and not this one, in id order."""
    return list(
        User.objects.filter(
            id__gt=after_id,
            disclosure_acknowledgements__version__document_id=version.document_id,
            disclosure_acknowledgements__version__number__lt=version.number,
        )
        .exclude(Exists(Acknowledgement.objects.filter(client=OuterRef("pk"), version=version)))
        .distinct()
        .order_by("id")
        .only("id", "email", "preferred_language")[:limit]
    )


@transaction.atomic
def fanout_process_batch(*, fanout_id: int, batch_size: int = FANOUT_BATCH_SIZE) -> bool:
    """Notify the next batch of affected clients. Returns True while there is more to do.

    The batch is claimed by moving the cursor with a conditional UPDATE inside
    this transaction: if another worker moved it first, this one does nothing.
    A fixed number of queries per batch, whatever its size.
    """
    fanout = ReacknowledgementFanout.objects.select_related("version__document").get(id=fanout_id)
    if fanout.status == FanoutStatus.DONE:
        return False
    version = fanout.version
    users = fanout_targets(version=version, after_id=fanout.cursor, limit=batch_size)
    now = timezone.now()
    claim = ReacknowledgementFanout.objects.filter(id=fanout.pk, cursor=fanout.cursor, status=FanoutStatus.RUNNING)
    if not users:
        if claim.update(status=FanoutStatus.DONE, finished_at=now, updated_at=now):
            audit_log(
                actor=SYSTEM,
                action="disclosures.fanout.completed",
                obj=fanout,
                after={"version": version.pk, "notified": fanout.notified, "batches": fanout.batches},
            )
        return False
    if not claim.update(cursor=users[-1].pk, batches=F("batches") + 1, notified=F("notified") + len(users), updated_at=now):
        return True  # another worker took this batch; the caller reloads and carries on
    notify_many(
        users=users,
        kind="disclosures.reacknowledge",
        title=_("Please acknowledge the updated “%(title)s”"),
        body=_(
            "We have published version %(number)s of the risk disclosure statement “%(title)s” with material changes, "
            "effective %(effective)s. Your earlier acknowledgement no longer covers it: please read the new version "
            "and acknowledge it. Until you do, products that require it may be restricted. Summary of changes: %(summary)s"
        ),
        params={
            "title": _Title(version.document),
            "number": version.number,
            "effective": version.effective_date.isoformat(),
            "summary": _Summary(version),
        },
        link=reverse("disclosures:read", args=[version.document.code]),
        task_key=acknowledge_task_key(version.pk),
    )
    return True


def acknowledge_task_key(version_id: int) -> str:
    """The client's task after a material change: acknowledge the new version."""
    return f"disclosures.acknowledge.{version_id}"


def fanout_run(*, fanout_id: int, max_batches: int = 20, batch_size: int = FANOUT_BATCH_SIZE) -> bool:
    """Process up to ``max_batches`` batches (each its own transaction). True if work remains."""
    # all() stops at the first batch that reports nothing left.
    return all(fanout_process_batch(fanout_id=fanout_id, batch_size=batch_size) for _i in range(max_batches))
