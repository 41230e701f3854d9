from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecoveryConfig(AppConfig):
    """After a close-out is approved: the liquidation plan, its executions, and any debt left after the sale."""

    name = "lending.recovery"
    label = "recovery"
    verbose_name = _("Close-out and recovery")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        navigation.register_staff_nav(navigation.NavItem(_("Close-outs"), "recovery:plans", Perm.MARGIN_CALL_MANAGE, order=26))
        navigation.register_staff_nav(navigation.NavItem(_("Collections"), "recovery:collections", Perm.MARGIN_CALL_MANAGE, order=27))
        navigation.register_staff_nav(navigation.NavItem(_("Write-off register"), "recovery:register", Perm.REPORT_VIEW, order=61))

        # Days past due move with the calendar: collections, dunning notices and repaid debts are reviewed hourly (idempotent).
        schedule("recovery-debts-review", "lending.recovery.tasks.debts_review", 3600.0)
        # Escalated calls at the close-out level get a liquidation plan to look at before anyone proposes the close-out.
        schedule("recovery-plans-prepare", "lending.recovery.tasks.plans_prepare", 60.0)
