"""Read-only admin views of close-out and recovery records: every change goes through the services (audited)."""

from django.contrib import admin

from portal.admin_base import ReadOnlyAdmin

from .models import Debt, Execution, LiquidationPlan, RecoveryPolicy


@admin.register(RecoveryPolicy)
class RecoveryPolicyAdmin(ReadOnlyAdmin):
    list_display = ("version", "status", "target_utilisation", "securities_order", "proposed_by", "decided_by")


@admin.register(LiquidationPlan)
class LiquidationPlanAdmin(ReadOnlyAdmin):
    list_display = ("reference", "version", "state", "facility", "expected_proceeds", "expected_utilisation_after", "proposed_at")
    list_filter = ("state",)


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ("plan", "code", "status", "quantity", "price", "gross", "venue_reference", "executed_at")
    list_filter = ("status",)


@admin.register(Debt)
class DebtAdmin(ReadOnlyAdmin):
    list_display = ("reference", "facility", "state", "principal_at_open", "due_on", "written_off_amount", "recovered_total")
    list_filter = ("state",)
