"""Django admin for the risk engine: price sources are maintained here (through the audited services);
quotes, overrides and alarms are history, read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdmin
from portal.errors import PortalError

from . import services
from .models import PriceAlarm, PriceOverride, PriceQuote, PriceSource


class PriceSourceForm(forms.ModelForm):
    reason = forms.CharField(label=_("Reason for the change"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = PriceSource
        fields = ["code", "name", "kind", "weight", "active"]

    def clean(self):
        data = super().clean()
        try:
            if self.instance.pk is None:
                services.price_source_clean(code=data.get("code"), name=data.get("name"), kind=data.get("kind"), weight=data.get("weight"))
            elif not (data.get("name") or "").strip():
                raise PortalError("validation_error", _("Give the name."), {"name": [_("Required.")]})
        except PortalError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


@admin.register(PriceSource)
class PriceSourceAdmin(admin.ModelAdmin):
    """Administrators add, reweight, deactivate and reactivate sources; every change goes through
    ``services.price_source_create`` / ``price_source_update`` (audited, the reference recomputed).
    A source is never deleted: its quotes stay on record."""

    form = PriceSourceForm
    list_display = ["code", "name", "kind", "weight", "active", "created_at"]
    list_filter = ["active", "kind"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["code", "kind", "created_at", "created_by"] if obj else ["created_at", "created_by"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:  # the form validated the fields; what is left is permission, refused with a message
            if change:
                saved = services.price_source_update(actor=request.user, source_id=obj.pk, name=data["name"], weight=data["weight"],
                                                     active=data["active"], reason=data.get("reason", ""))
            else:
                saved = services.price_source_create(actor=request.user, code=data["code"], name=data["name"], kind=data["kind"], weight=data["weight"])
                if not data["active"]:
                    saved = services.price_source_update(actor=request.user, source_id=saved.pk, active=False, reason=data.get("reason", ""))
        except PortalError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk, obj.created_at, obj.created_by = saved.pk, saved.created_at, saved.created_by
        obj.refresh_from_db()


@admin.register(PriceQuote)
class PriceQuoteAdmin(ReadOnlyAdmin):
    list_display = ["as_of", "source", "asset", "price_hkd", "entered_by", "received_at"]
    list_filter = ["asset", "source"]
    list_select_related = ["source", "entered_by"]
    date_hierarchy = "as_of"


@admin.register(PriceOverride)
class PriceOverrideAdmin(ReadOnlyAdmin):
    list_display = ["id", "asset", "price_hkd", "status", "deviation", "set_by", "approved_by", "expires_at"]
    list_filter = ["asset", "status"]
    list_select_related = ["set_by", "approved_by"]


@admin.register(PriceAlarm)
class PriceAlarmAdmin(ReadOnlyAdmin):
    list_display = ["raised_at", "asset", "kind", "message", "cleared_at"]
    list_filter = ["asset", "kind"]
