"""Reads for disclosures. The first three functions are the contract other apps use.

A document counts as acknowledged by a client when they acknowledged its current
version, or an earlier one with only non-material versions published since
("the last material version" is the latest published or superseded version
marked material). Otherwise it is outstanding; it is *stale* when the client
acknowledged an earlier version and a material update has been published since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from portal.models import User
from portal.permissions import Role
from portal.products import Product

from .models import Acknowledgement, DocumentVersion, ReacknowledgementFanout, Serving, VersionStatus

LIVE_STATUSES = (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)


@dataclass(frozen=True)
class DocumentStatus:
    code: str
    title: str  # in the user's (active) language
    version_id: int
    version_number: int
    acknowledged: bool
    stale: bool  # acknowledged an earlier version but a material newer one is current
    reason: str  # translated sentence
    url: str  # the page to read and acknowledge it


def _last_material(field: str) -> Subquery:
    return Subquery(
        DocumentVersion.objects.filter(document_id=OuterRef("document_id"), material=True, status__in=LIVE_STATUSES)
        .order_by("-number")
        .values(field)[:1]
    )


def _last_ack(user, field: str) -> Subquery:
    return Subquery(
        Acknowledgement.objects.filter(client_id=user.pk, version__document_id=OuterRef("document_id"))
        .order_by("-version__number")
        .values(field)[:1]
    )


def _current_versions(products) -> QuerySet[DocumentVersion]:
    return (
        DocumentVersion.objects.filter(status=VersionStatus.PUBLISHED, document__requirements__product__in=products)
        .select_related("document")
        .annotate(
            material_number=Coalesce(_last_material("number"), Value(0), output_field=IntegerField()),
            material_published_at=_last_material("published_at"),
        )
    )


def _date(value: datetime | None) -> str:
    return formats.date_format(timezone.localtime(value), "DATE_FORMAT") if value else ""


def _status(version: DocumentVersion) -> DocumentStatus:
    acked = version.acked_number
    if acked is None:
        acknowledged, stale, reason = False, False, _("Not yet acknowledged.")
    elif acked >= version.material_number:
        acknowledged, stale = True, False
        if acked == version.number:
            reason = _("Acknowledged on %(date)s.") % {"date": _date(version.acked_at)}
        else:
            reason = _("You acknowledged version %(acked)s; the changes since then are not material.") % {"acked": acked}
    else:
        acknowledged, stale = False, True
        reason = _("A material update was published on %(date)s (you acknowledged version %(acked)s).") % {
            "date": _date(version.material_published_at),
            "acked": acked,
        }
    return DocumentStatus(
        code=version.document.code,
        title=version.document.title_in(translation.get_language()),
        version_id=version.pk,
        version_number=version.number,
        acknowledged=acknowledged,
        stale=stale,
        reason=reason,
        url=reverse("disclosures:read", args=[version.document.code]),
    )


def statuses_by_product(*, user, products=None) -> dict[str, list[DocumentStatus]]:
    """Each product's required documents with their status for ``user``: one query for all products."""
    return _statuses_query(user=user, products=[Product(p) for p in (products or Product.values)])


_TEXTS = ("body_en", "body_zh", "html_en", "html_zh", "change_summary", "change_summary_zh", "withdrawn_reason")


def _statuses_query(*, user, products) -> dict[str, list[DocumentStatus]]:
    versions = (
        _current_versions(products)
        # A status needs the number and the title, not the texts: each version's Markdown and rendered
        # HTML in two languages is most of the row, fetched on every dashboard otherwise.
        .defer(*_TEXTS)
        .annotate(
            required_for=F("document__requirements__product"),
            acked_number=_last_ack(user, "version__number"),
            acked_at=_last_ack(user, "acknowledged_at"),
        )
        .order_by("document__code")
    )
    result: dict[str, list[DocumentStatus]] = {p.value: [] for p in products}
    for version in versions:
        result[version.required_for].append(_status(version))
    return result


def required_documents(*, user, product) -> list[DocumentStatus]:
    """All documents ``product`` requires (that have a current version), with ``user``'s status. One query."""
    return _statuses_query(user=user, products=[Product(product)])[Product(product).value]


def outstanding_documents(*, user, product) -> list[DocumentStatus]:
    """The required documents not acknowledged at the current version (non-material updates excepted). One query."""
    return [s for s in required_documents(user=user, product=product) if not s.acknowledged]


def clients_with_outstanding(*, product, user_ids=None) -> set[int]:
    """Ids of the given users (or of all clients) with any document outstanding for ``product``. Two queries."""
    current = list(_current_versions([Product(product)]).values_list("document_id", "material_number"))
    if not current:
        return set()
    if user_ids is not None:
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        users = User.objects.filter(id__in=user_ids)
    else:
        users = User.objects.filter(groups__name=Role.CLIENT.value)
    covered = Q()
    for document_id, material_number in current:
        covered |= Q(
            disclosure_acknowledgements__version__document_id=document_id,
            disclosure_acknowledgements__version__number__gte=material_number,
        )
    return set(
        users.annotate(
            covered=Count("disclosure_acknowledgements__version__document_id", filter=covered, distinct=True)
        )
        .filter(covered__lt=len(current))
        .values_list("id", flat=True)
    )


# --- Client pages ---------------------------------------------------------------------


def current_version_by_code(*, code: str) -> DocumentVersion | None:
    return DocumentVersion.objects.select_related("document").filter(document__code=code, status=VersionStatus.PUBLISHED).first()


def visible_version(*, version_id: int) -> DocumentVersion | None:
    """A version a client may read: anything that was ever published (never drafts)."""
    return (
        DocumentVersion.objects.select_related("document")
        .filter(id=version_id, status__in=[*LIVE_STATUSES, VersionStatus.WITHDRAWN])
        .exclude(published_at__isnull=True)
        .first()
    )


def acknowledgement_of(*, user, version_id: int) -> Acknowledgement | None:
    return Acknowledgement.objects.filter(client_id=user.pk, version_id=version_id).first()


def acknowledgements_for(*, user) -> QuerySet[Acknowledgement]:
    """The client's own acknowledgements, newest first."""
    return (
        Acknowledgement.objects.filter(client_id=user.pk)
        .select_related("version__document", "serving")
        .order_by("-acknowledged_at", "-id")
    )


def acknowledgement_for(*, user, ack_id: int) -> Acknowledgement | None:
    return acknowledgements_for(user=user).filter(id=ack_id).first()


# --- Compliance ----------------------------------------------------------------------


def versions_report() -> QuerySet[DocumentVersion]:
    """Every version that was ever published, with how many clients acknowledged it."""
    return (
        DocumentVersion.objects.exclude(published_at__isnull=True)
        .select_related("document", "published_by")
        .annotate(ack_count=Count("acknowledgements"))
        .order_by("document__code", "-number")
    )


def version_for_report(*, version_id: int) -> DocumentVersion | None:
    return (
        DocumentVersion.objects.select_related("document", "published_by")
        .annotate(
            ack_count=Count("acknowledgements"),
            material_number=Coalesce(_last_material("number"), Value(0), output_field=IntegerField()),
        )
        .filter(id=version_id)
        .first()
    )


def version_acknowledgements(*, version_id: int) -> QuerySet[Acknowledgement]:
    return (
        Acknowledgement.objects.filter(version_id=version_id)
        .select_related("client", "serving", "version__document")
        .order_by("acknowledged_at", "id")
    )


def version_outstanding_clients(*, version: DocumentVersion, stale_only: bool = False) -> QuerySet[User]:
    """Clients without a valid acknowledgement of ``version``'s document, with the last version each acknowledged.

    Valid means at or after the document's last material version (``version`` must be annotated
    with ``material_number``, as ``version_for_report`` does).
    """
    last_acked = Subquery(
        Acknowledgement.objects.filter(client_id=OuterRef("pk"), version__document_id=version.document_id)
        .order_by("-version__number")
        .values("version__number")[:1]
    )
    qs = (
        User.objects.filter(groups__name=Role.CLIENT.value)
        .annotate(last_acked_number=last_acked)
        .filter(Q(last_acked_number__isnull=True) | Q(last_acked_number__lt=version.material_number))
    )
    if stale_only:
        qs = qs.filter(last_acked_number__isnull=False)
    return qs.order_by("email")


def stalled_fanout_ids(*, idle) -> list[int]:
    """Running fan-outs that made no progress for ``idle`` (their worker died)."""
    return list(
        ReacknowledgementFanout.objects.filter(status="running", updated_at__lt=timezone.now() - idle).values_list("id", flat=True)
    )


def fanout_of(*, version_id: int) -> ReacknowledgementFanout | None:
    return ReacknowledgementFanout.objects.filter(version_id=version_id).first()


def client_for_report(*, user_id: int) -> User | None:
    return User.objects.filter(id=user_id, groups__name=Role.CLIENT.value).first()


def client_acknowledgements(*, user_id: int) -> QuerySet[Acknowledgement]:
    return (
        Acknowledgement.objects.filter(client_id=user_id)
        .select_related("version__document", "serving")
        .order_by("-acknowledged_at", "-id")
    )


def acknowledgement_by_id(*, ack_id: int) -> Acknowledgement | None:
    return Acknowledgement.objects.select_related("version__document", "serving", "client").filter(id=ack_id).first()


def client_servings(*, user_id: int) -> QuerySet[Serving]:
    return Serving.objects.filter(client_id=user_id).select_related("version__document").order_by("-served_at", "-id")


def clients_search(*, query: str) -> QuerySet[User]:
    return (
        User.objects.filter(groups__name=Role.CLIENT.value)
        .filter(Q(email__icontains=query) | Q(full_name__icontains=query))
        .order_by("email")
    )
