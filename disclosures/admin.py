"""Admin for disclosure documents and versions.

Every write goes through ``disclosures.services``. A version that has left draft is
read-only here (no change permission), and publishing is a separate page: a
preview of both languages with a diff against the current version, then an
explicit confirmation.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdmin
from portal.errors import PortalError
from portal.permissions import Perm

from . import services, text
from .forms import DocumentAdminForm, PublishForm, VersionAdminForm, WithdrawForm
from .models import Acknowledgement, Document, DocumentVersion, ReacknowledgementFanout, Serving, VersionStatus


def _can_manage(request) -> bool:
    return request.user.has_perm(Perm.DISCLOSURE_MANAGE)


class _ServiceErrorMixin:
    """Show a refused service call as a form error instead of a server error."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PortalError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return redirect(request.get_full_path())


@admin.register(Document)
class DocumentAdmin(_ServiceErrorMixin, admin.ModelAdmin):
    form = DocumentAdminForm
    list_display = ["code", "title_en", "title_zh", "products", "current_version"]
    search_fields = ["code", "title_en", "title_zh"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("requirements", "versions")

    @admin.display(description=_("Required for"))
    def products(self, obj):
        return ", ".join(sorted(r.get_product_display() for r in obj.requirements.all()))

    @admin.display(description=_("Current version"))
    def current_version(self, obj):
        current = [v.number for v in obj.versions.all() if v.status == VersionStatus.PUBLISHED]
        return current[0] if current else "-"

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _can_manage(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _can_manage(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = services.document_update(
                actor=request.user, document_id=obj.pk, title_en=data["title_en"], title_zh=data["title_zh"], products=data["products"]
            )
        else:
            saved = services.document_create(
                actor=request.user, code=data["code"], title_en=data["title_en"], title_zh=data["title_zh"], products=data["products"]
            )
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        pass  # requirements are saved by the service


@admin.register(DocumentVersion)
class DocumentVersionAdmin(_ServiceErrorMixin, admin.ModelAdmin):
    form = VersionAdminForm
    list_display = ["document", "number", "status", "material", "effective_date", "published_at", "actions_link"]
    list_filter = ["status", "material", "document"]
    search_fields = ["document__code", "change_summary"]
    actions = ["preview_and_publish"]
    change_form_template = "admin/disclosures/documentversion/change_form.html"
    readonly_fields = ["number", "status", "hash_en", "hash_zh", "published_at", "published_by", "superseded_at", "withdrawn_at", "withdrawn_reason"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("document")

    def get_fields(self, request, obj=None):
        editable = ["document", "body_en", "body_zh", "change_summary", "change_summary_zh", "material", "effective_date"]
        if obj is None:
            return editable
        return [*editable, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != VersionStatus.DRAFT:
            return ["document", "body_en", "body_zh", "change_summary", "change_summary_zh", "material", "effective_date", *self.readonly_fields]
        return self.readonly_fields

    @admin.display(description=_("Next step"))
    def actions_link(self, obj):
        if obj.status == VersionStatus.DRAFT:
            return format_html('<a href="{}">{}</a>', reverse("admin:disclosures_documentversion_publish", args=[obj.pk]), _("Preview and publish"))
        return "-"

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _can_manage(request)

    def has_change_permission(self, request, obj=None):
        # Published, superseded and withdrawn versions are shown read-only; a POST is refused.
        if obj is not None and obj.status != VersionStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj) and _can_manage(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {k: data[k] for k in ("body_en", "body_zh", "change_summary", "change_summary_zh", "material", "effective_date")}
        if change:
            saved = services.version_update_draft(actor=request.user, version_id=obj.pk, **fields)
        else:
            saved = services.version_create_draft(actor=request.user, document_id=data["document"].pk, **fields)
        obj.pk = saved.pk
        obj.id = saved.pk

    def response_add(self, request, obj, post_url_continue=None):
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            return redirect("admin:disclosures_documentversion_publish", obj.pk)
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<id:version_id>/publish/", view(self.publish_view), name="disclosures_documentversion_publish"),
            path("<id:version_id>/withdraw/", view(self.withdraw_view), name="disclosures_documentversion_withdraw"),
            *super().get_urls(),
        ]

    @admin.action(description=_("Preview and publish the selected draft"))
    def preview_and_publish(self, request, queryset):
        drafts = list(queryset.filter(status=VersionStatus.DRAFT)[:2])
        if len(drafts) != 1:
            self.message_user(request, _("Select exactly one draft version to publish."), level=messages.WARNING)
            return None
        return redirect("admin:disclosures_documentversion_publish", drafts[0].pk)

    def publish_view(self, request, version_id: int):
        if not _can_manage(request):
            raise PermissionDenied
        version = get_object_or_404(DocumentVersion.objects.select_related("document"), pk=version_id)
        current = services.current_version_of(version.document_id)
        fingerprint = services.preview_fingerprint(version=version, current=current)
        form = PublishForm(request.POST or None, initial={"fingerprint": fingerprint})
        if request.method == "POST" and form.is_valid():
            try:
                services.version_publish(actor=request.user, version_id=version.pk, fingerprint=form.cleaned_data["fingerprint"])
            except PortalError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
                return redirect("admin:disclosures_documentversion_publish", version.pk)
            self.message_user(
                request,
                _("Version %(n)s of “%(doc)s” is published.") % {"n": version.number, "doc": version.document.title_en}
                + (" " + str(_("Clients who acknowledged an earlier version are being asked to acknowledge again.")) if version.material and current else ""),
                level=messages.SUCCESS,
            )
            return redirect("admin:disclosures_documentversion_change", version.pk)
        diffs = []
        if current is not None:
            for language, label in (("en", "English"), ("zh-hant", "繁體中文")):
                diffs.append(
                    {
                        "label": label,
                        "table": mark_safe(  # noqa: S308 - difflib escapes the text it tabulates
                            text.diff_html(
                                current.body_in(language),
                                version.body_in(language),
                                old_label=f"v{current.number}",
                                new_label=f"v{version.number}",
                            )
                        ),
                    }
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Preview and publish %(v)s") % {"v": version},
            "version": version,
            "current": current,
            "form": form,
            "can_publish": version.status == VersionStatus.DRAFT and bool(version.body_en.strip() and version.body_zh.strip()),
            "missing_language": not (version.body_en.strip() and version.body_zh.strip()),
            "html_en": mark_safe(text.render(version.body_en)),  # noqa: S308 - sanitised by nh3
            "html_zh": mark_safe(text.render(version.body_zh)),  # noqa: S308 - sanitised by nh3
            "hash_en": text.content_hash(version.body_en) if version.body_en else "",
            "hash_zh": text.content_hash(version.body_zh) if version.body_zh else "",
            "diffs": diffs,
        }
        return TemplateResponse(request, "admin/disclosures/documentversion/publish.html", context)

    def withdraw_view(self, request, version_id: int):
        if not _can_manage(request):
            raise PermissionDenied
        version = get_object_or_404(DocumentVersion.objects.select_related("document"), pk=version_id)
        form = WithdrawForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.version_withdraw(actor=request.user, version_id=version.pk, reason=form.cleaned_data["reason"])
            except PortalError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                self.message_user(request, _("Version withdrawn."), level=messages.SUCCESS)
            return redirect("admin:disclosures_documentversion_change", version.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Withdraw %(v)s") % {"v": version},
            "version": version,
            "form": form,
        }
        return TemplateResponse(request, "admin/disclosures/documentversion/withdraw.html", context)


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadOnlyAdmin):
    list_display = ["acknowledged_at", "client", "version", "language", "content_hash", "ip_address"]
    list_filter = ["language", "version__document"]
    search_fields = ["client__email", "content_hash"]
    list_select_related = ["client", "version__document"]
    show_full_result_count = False


@admin.register(Serving)
class ServingAdmin(ReadOnlyAdmin):
    list_display = ["served_at", "client", "version", "language", "channel"]
    list_select_related = ["client", "version__document"]
    search_fields = ["client__email"]
    show_full_result_count = False


@admin.register(ReacknowledgementFanout)
class FanoutAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "batches", "notified", "created_at", "finished_at"]
    list_select_related = ["version__document"]
