"""Risk-disclosure documents, their versions, what was served to whom, and acknowledgements.

A published version's text never changes: the service refuses, the admin shows it
read-only, and a database trigger (PostgreSQL and SQLite) refuses an UPDATE of
the text, hash or rendered HTML of any version that has left draft.
Acknowledgements and servings are append-only records.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from portal.products import Product


class DisclosureLanguage(models.TextChoices):
    ENGLISH = "en", _("English")
    TRADITIONAL_CHINESE = "zh-hant", _("Traditional Chinese")


def language_or_default(value: str | None) -> str:
    """``value`` if it is one of ours, else the active interface language (Chinese variants → zh-hant)."""
    if value in DisclosureLanguage.values:
        return value
    active = (value or translation.get_language() or "en").lower()
    return DisclosureLanguage.TRADITIONAL_CHINESE if active.startswith("zh") else DisclosureLanguage.ENGLISH


class Document(models.Model):
    """A risk disclosure statement, identified by a stable code, required by some products."""

    code = models.SlugField(_("code"), max_length=60, unique=True)
    title_en = models.CharField(_("title (English)"), max_length=200)
    title_zh = models.CharField(_("title (Traditional Chinese)"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["code"]
        verbose_name = _("disclosure document")
        verbose_name_plural = _("disclosure documents")

    def __str__(self) -> str:
        return self.title_en

    def title_in(self, language: str | None = None) -> str:
        return self.title_zh if language_or_default(language) == DisclosureLanguage.TRADITIONAL_CHINESE else self.title_en


class DocumentRequirement(models.Model):
    """``product`` requires the client to have acknowledged ``document`` at its current version."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="requirements", verbose_name=_("document"))
    product = models.CharField(_("product"), max_length=40, choices=Product.choices)

    class Meta:
        verbose_name = _("document requirement")
        verbose_name_plural = _("document requirements")
        constraints = [models.UniqueConstraint(fields=["document", "product"], name="uniq_disclosure_requirement")]
        indexes = [models.Index(fields=["product", "document"])]

    def __str__(self) -> str:
        return f"{self.product} → {self.document.code}"


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    SUPERSEDED = "superseded", _("Superseded")
    WITHDRAWN = "withdrawn", _("Withdrawn")


# The columns a trigger protects once a version leaves draft (see migration 0002).
FROZEN_COLUMNS = (
    "document_id",
    "number",
    "body_en",
    "body_zh",
    "hash_en",
    "hash_zh",
    "html_en",
    "html_zh",
    "change_summary",
    "change_summary_zh",
    "material",
    "effective_date",
)


class DocumentVersion(ConcurrentTransitionMixin, models.Model):
    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="versions", verbose_name=_("document"))
    number = models.PositiveIntegerField(_("version"))
    status = FSMField(_("status"), default=VersionStatus.DRAFT, choices=VersionStatus.choices, protected=True)
    body_en = models.TextField(_("text (English, Markdown)"), blank=True)
    body_zh = models.TextField(_("text (Traditional Chinese, Markdown)"), blank=True)
    # SHA-256 of the canonical body (disclosures.text.canonicalize); "" while that language is empty.
    hash_en = models.CharField(_("SHA-256 (English)"), max_length=64, blank=True)
    hash_zh = models.CharField(_("SHA-256 (Chinese)"), max_length=64, blank=True)
    # Rendered and sanitised once at publication, so what a client was shown never
    # depends on a later Markdown or sanitiser upgrade.
    html_en = models.TextField(_("published text (English, HTML)"), blank=True, editable=False)
    html_zh = models.TextField(_("published text (Traditional Chinese, HTML)"), blank=True, editable=False)
    change_summary = models.TextField(_("summary of changes (English)"), blank=True)
    change_summary_zh = models.TextField(_("summary of changes (Traditional Chinese)"), blank=True)
    material = models.BooleanField(
        _("material change"),
        default=True,
        help_text=_("A material change makes earlier acknowledgements stale: clients must acknowledge again."),
    )
    effective_date = models.DateField(_("effective date"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("published by")
    )
    superseded_at = models.DateTimeField(_("superseded at"), null=True, blank=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawn_reason = models.TextField(_("reason for withdrawal"), blank=True)

    class Meta:
        ordering = ["document__code", "-number"]
        verbose_name = _("disclosure version")
        verbose_name_plural = _("disclosure versions")
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="uniq_disclosure_version_number"),
            models.UniqueConstraint(
                fields=["document"], condition=models.Q(status="published"), name="one_published_version_per_document"
            ),
            models.UniqueConstraint(
                fields=["document"], condition=models.Q(status="draft"), name="one_draft_version_per_document"
            ),
        ]
        indexes = [models.Index(fields=["document", "status"])]

    def __str__(self) -> str:
        return f"{self.document.code} v{self.number}"

    def change_summary_in(self, language: str | None = None) -> str:
        """The summary of changes in ``language`` (the active one by default); English where no Chinese was written."""
        if language_or_default(language) == DisclosureLanguage.TRADITIONAL_CHINESE and self.change_summary_zh:
            return self.change_summary_zh
        return self.change_summary

    @property
    def change_summary_current(self) -> str:
        return self.change_summary_in()

    def body_in(self, language: str) -> str:
        return self.body_zh if language == DisclosureLanguage.TRADITIONAL_CHINESE else self.body_en

    def hash_in(self, language: str) -> str:
        return self.hash_zh if language == DisclosureLanguage.TRADITIONAL_CHINESE else self.hash_en

    def html_in(self, language: str) -> str:
        return self.html_zh if language == DisclosureLanguage.TRADITIONAL_CHINESE else self.html_en

    @property
    def is_current(self) -> bool:
        return self.status == VersionStatus.PUBLISHED

    # Transitions are pure: the services lock, save, audit and fan out.
    def _has_both_languages(self) -> bool:
        return bool(self.body_en.strip() and self.body_zh.strip())

    @transition(field=status, source=VersionStatus.DRAFT, target=VersionStatus.PUBLISHED, conditions=[_has_both_languages])
    def publish(self, *, by, at) -> None:
        self.published_by = by
        self.published_at = at

    @transition(field=status, source=VersionStatus.PUBLISHED, target=VersionStatus.SUPERSEDED)
    def supersede(self, *, at) -> None:
        self.superseded_at = at

    @transition(field=status, source=[VersionStatus.DRAFT, VersionStatus.PUBLISHED], target=VersionStatus.WITHDRAWN)
    def withdraw(self, *, at, reason: str) -> None:
        self.withdrawn_at = at
        self.withdrawn_reason = reason


class Channel(models.TextChoices):
    WEB = "web", _("Web page")
    API = "api", _("API")


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError(f"{self.model._meta.label} rows are append-only: they cannot be updated.")

    def delete(self):
        raise PermissionError(f"{self.model._meta.label} rows are append-only: they cannot be deleted.")


class AppendOnlyModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise PermissionError(f"{self._meta.label} rows are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{self._meta.label} rows are append-only: they cannot be deleted.")


class Serving(AppendOnlyModel):
    """One delivery of a version's full text to a client, in one language.

    An acknowledgement must cite the token of a serving of that exact version and
    language to this client: proof the text was put in front of them first.
    """

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disclosure_servings", verbose_name=_("client"))
    version = models.ForeignKey(DocumentVersion, on_delete=models.PROTECT, related_name="servings", verbose_name=_("version"))
    language = models.CharField(_("language"), max_length=10, choices=DisclosureLanguage.choices)
    content_hash = models.CharField(_("SHA-256 of the text shown"), max_length=64)
    token = models.CharField(_("serving token"), max_length=64, unique=True)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    served_at = models.DateTimeField(_("served at"), default=timezone.now)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=400, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-served_at", "-id"]
        indexes = [models.Index(fields=["client", "version"])]
        verbose_name = _("served disclosure")
        verbose_name_plural = _("served disclosures")

    def __str__(self) -> str:
        return f"{self.version} served to {self.client_id} ({self.language})"


class Acknowledgement(AppendOnlyModel):
    """A client's acknowledgement of one version, with exactly what they were shown."""

    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disclosure_acknowledgements", verbose_name=_("client")
    )
    version = models.ForeignKey(DocumentVersion, on_delete=models.PROTECT, related_name="acknowledgements", verbose_name=_("version"))
    language = models.CharField(_("language"), max_length=10, choices=DisclosureLanguage.choices)
    content_hash = models.CharField(_("SHA-256 of the text shown"), max_length=64)
    serving = models.ForeignKey(Serving, on_delete=models.PROTECT, related_name="+", verbose_name=_("serving"))
    confirmed_read_and_understood = models.BooleanField(_("confirmed read and understood"))
    confirmed_invited_to_ask_and_seek_advice = models.BooleanField(_("confirmed invited to ask questions and seek advice"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), default=timezone.now)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=400, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-acknowledged_at", "-id"]
        verbose_name = _("acknowledgement")
        verbose_name_plural = _("acknowledgements")
        constraints = [models.UniqueConstraint(fields=["client", "version"], name="one_acknowledgement_per_version")]
        indexes = [models.Index(fields=["version", "client"])]

    def __str__(self) -> str:
        return f"{self.version} acknowledged by {self.client_id}"


class FanoutStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")


class ReacknowledgementFanout(models.Model):
    """The job of telling every client who acknowledged an earlier version that a material update needs them.

    Work is claimed one batch at a time by a conditional UPDATE of ``cursor``
    (the last client id handled), so a rerun or a second worker never notifies
    a client twice, and a crashed run resumes where it stopped.
    """

    version = models.OneToOneField(DocumentVersion, on_delete=models.PROTECT, related_name="fanout", verbose_name=_("version"))
    status = models.CharField(_("status"), max_length=10, choices=FanoutStatus.choices, default=FanoutStatus.RUNNING)
    cursor = models.BigIntegerField(_("last client handled"), default=0)
    batches = models.PositiveIntegerField(_("batches"), default=0)
    notified = models.PositiveIntegerField(_("clients notified"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("re-acknowledgement fan-out")
        verbose_name_plural = _("re-acknowledgement fan-outs")

    def __str__(self) -> str:
        return f"fan-out for {self.version_id} ({self.status}, {self.notified} notified)"
