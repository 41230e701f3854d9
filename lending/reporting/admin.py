from django.contrib import admin

from portal.admin_base import ReadOnlyAdmin

from .models import CapitalEntry, Complaint, Deviation, DisposalRequest, RecordRequest, SmfPack


@admin.register(CapitalEntry)
class CapitalEntryAdmin(ReadOnlyAdmin):
    list_display = ("version", "as_of", "liquid_capital", "ceiling_multiple", "status", "proposed_by", "decided_by")


@admin.register(SmfPack)
class SmfPackAdmin(ReadOnlyAdmin):
    list_display = ("as_of", "version", "kind", "generated_at", "data_sha256")
    exclude = ("xlsx", "pdf")


@admin.register(Deviation)
class DeviationAdmin(ReadOnlyAdmin):
    list_display = ("id", "area", "state", "review_date", "proposed_by", "decided_by")


@admin.register(Complaint)
class ComplaintAdmin(ReadOnlyAdmin):
    list_display = ("id", "subject", "channel", "state", "received_at", "assigned_to")


@admin.register(RecordRequest)
class RecordRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "client", "basis", "reference", "requested_by", "requested_at", "downloads")
    exclude = ("archive",)


@admin.register(DisposalRequest)
class DisposalRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "record_type", "state", "requested_by", "decided_by")
