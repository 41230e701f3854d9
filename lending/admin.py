"""Django admin for lending: regulated records are read-only here.

Applications, review steps, facilities, positions, transactions, policies and prices change only
through ``lending.services`` (state machines, four-eyes, maker-checker, audit); the admin shows
them and never deletes them. The one thing an administrator maintains here is the screening
watch list, and even that goes through ``services.watchlist_add`` / ``watchlist_deactivate`` so
every change is audited.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdmin, ReadOnlyInline
from portal.permissions import Perm

from . import services
from .models import (
    CollateralLine,
    CollateralPolicy,
    CollateralPosition,
    CurrentPrice,
    Facility,
    FacilityApplication,
    FacilityTransaction,
    Price,
    ReviewStep,
    WatchListEntry,
)


class CollateralLineInline(ReadOnlyInline):
    model = CollateralLine
    fields = ["kind", "asset", "description", "haircut_class", "market_value", "quantity", "custody_reference"]
    readonly_fields = fields


class ReviewStepInline(ReadOnlyInline):
    model = ReviewStep
    fields = ["run", "position", "code", "status", "outcome", "attempts", "duration_ms", "finished_at"]
    readonly_fields = fields
    ordering = ["-run", "position"]


@admin.register(FacilityApplication)
class FacilityApplicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "client", "state", "requested_limit", "recommendation", "recommended_limit", "approved_limit", "submitted_at", "decided_by"]
    list_filter = ["state", "recommendation"]
    search_fields = ["client__email", "client__full_name", "=id"]
    date_hierarchy = "created_at"
    list_select_related = ["client", "decided_by"]
    inlines = [CollateralLineInline, ReviewStepInline]
    readonly_fields = [f.name for f in FacilityApplication._meta.fields]


@admin.register(ReviewStep)
class ReviewStepAdmin(ReadOnlyAdmin):
    list_display = ["application", "run", "position", "code", "status", "outcome", "attempts", "duration_ms", "finished_at"]
    list_filter = ["code", "status", "outcome"]
    search_fields = ["=application__id"]
    list_select_related = ["application"]
    readonly_fields = [f.name for f in ReviewStep._meta.fields]


class CollateralPositionInline(ReadOnlyInline):
    model = CollateralPosition
    fields = [f.name for f in CollateralPosition._meta.fields if f.name not in ("id", "facility")]
    readonly_fields = fields


class FacilityTransactionInline(ReadOnlyInline):
    model = FacilityTransaction
    fields = ["created_at", "kind", "amount", "balance_after", "reference", "recorded_by"]
    readonly_fields = fields
    ordering = ["-id"]


@admin.register(Facility)
class FacilityAdmin(ReadOnlyAdmin):
    list_display = ["id", "client", "state", "band", "limit", "drawn_balance", "lending_value", "utilisation", "accepted_at"]
    list_filter = ["state", "band"]
    search_fields = ["client__email", "client__full_name", "=id"]
    list_select_related = ["client"]
    inlines = [CollateralPositionInline, FacilityTransactionInline]
    readonly_fields = [f.name for f in Facility._meta.fields]


@admin.register(CollateralPosition)
class CollateralPositionAdmin(ReadOnlyAdmin):
    list_display = ["id", "facility", "kind", "asset", "description", "quantity", "market_value", "haircut"]
    list_filter = ["kind", "asset"]
    search_fields = ["=facility__id"]
    list_select_related = ["facility"]
    readonly_fields = [f.name for f in CollateralPosition._meta.fields]


@admin.register(FacilityTransaction)
class FacilityTransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "facility", "kind", "amount", "balance_after", "reference", "recorded_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["=facility__id", "reference"]
    list_select_related = ["facility", "recorded_by"]
    readonly_fields = [f.name for f in FacilityTransaction._meta.fields]


@admin.register(CollateralPolicy)
class CollateralPolicyAdmin(ReadOnlyAdmin):
    """Maker-checker happens in the workbench (propose → a credit manager approves); here it is history."""

    list_display = ["version", "status", "btc_haircut", "eth_haircut", "va_max_share", "price_max_age_minutes", "proposed_by", "decided_by", "decided_at"]
    list_filter = ["status"]
    list_select_related = ["proposed_by", "decided_by"]
    readonly_fields = [f.name for f in CollateralPolicy._meta.fields]


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ["asset", "price_hkd", "source", "as_of", "entered_by", "created_at"]
    list_filter = ["asset", "source"]
    date_hierarchy = "as_of"
    list_select_related = ["entered_by"]
    readonly_fields = [f.name for f in Price._meta.fields]


@admin.register(CurrentPrice)
class CurrentPriceAdmin(ReadOnlyAdmin):
    list_display = ["asset", "price_hkd", "source", "as_of"]
    readonly_fields = [f.name for f in CurrentPrice._meta.fields]


class WatchListEntryForm(forms.ModelForm):
    class Meta:
        model = WatchListEntry
        fields = ["name", "aliases", "category", "note"]


@admin.register(WatchListEntry)
class WatchListEntryAdmin(admin.ModelAdmin):
    """Admins add entries and deactivate them; both through the services (audited). Never edited
    in place or deleted: screening results point at the entry they matched."""

    form = WatchListEntryForm
    list_display = ["name", "category", "active", "added_by", "created_at"]
    list_filter = ["active", "category"]
    search_fields = ["name", "aliases"]
    list_select_related = ["added_by"]
    actions = ["deactivate"]

    def _may_maintain(self, request) -> bool:
        return request.user.has_perm(Perm.WATCHLIST_MANAGE)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self._may_maintain(request)

    def has_change_permission(self, request, obj=None):
        return False  # a listed name is never rewritten: deactivate it and add the corrected one

    def has_delete_permission(self, request, obj=None):
        return False

    def has_deactivate_permission(self, request) -> bool:
        return request.user.has_perm("lending.change_watchlistentry") and self._may_maintain(request)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        entry = services.watchlist_add(actor=request.user, name=data["name"], aliases=data.get("aliases", ""),
                                       category=data.get("category") or "sanctions", note=data.get("note", ""))
        obj.pk = entry.pk
        obj.added_by = entry.added_by
        obj.created_at = entry.created_at

    @admin.action(description=_("Deactivate the selected entries"), permissions=["deactivate"])
    def deactivate(self, request, queryset):
        count = 0
        for entry_id in queryset.filter(active=True).values_list("pk", flat=True):
            services.watchlist_deactivate(actor=request.user, entry_id=entry_id, reason="Deactivated in the admin")
            count += 1
        self.message_user(request, _("%(n)s entries deactivated.") % {"n": count}, messages.SUCCESS)
