from django.contrib import admin

from portal.admin_base import ReadOnlyAdmin

from .models import CustodyBalance, CustodyEntry, ImportBatch, Instrument, MachineKey, ReconciliationBreak


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    """Changes go through the Instruments page or the API (audited services), not the admin."""

    list_display = ("code", "name_en", "name_zh", "board_lot", "issuer", "sector", "margin_class", "suspended", "active")
    list_filter = ("kind", "suspended", "active", "sector", "margin_class")
    search_fields = ("code", "name_en", "name_zh", "issuer")


@admin.register(CustodyBalance)
class CustodyBalanceAdmin(ReadOnlyAdmin):
    list_display = ("client", "instrument", "held", "pledged")
    search_fields = ("client__email", "instrument__code")


@admin.register(CustodyEntry)
class CustodyEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "client", "instrument", "kind", "quantity", "held_after", "pledged_after", "facility", "actor_label")
    list_filter = ("kind", "instrument_kind")


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "batch_id", "status", "line_count", "applied_count", "channel")
    list_filter = ("kind", "status")


@admin.register(ReconciliationBreak)
class ReconciliationBreakAdmin(ReadOnlyAdmin):
    list_display = ("raised_at", "kind", "key", "resolved_at")
    list_filter = ("kind",)


@admin.register(MachineKey)
class MachineKeyAdmin(ReadOnlyAdmin):
    list_display = ("name", "prefix", "scope", "created_at", "last_used_at", "revoked_at")
    exclude = ("secret_sha256",)
