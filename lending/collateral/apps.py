from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CollateralConfig(AppConfig):
    """The collateral book: instrument master, custody ledger, back-office imports, reconciliation.

    A nested app of ``lending`` with its own tables (label ``collateral``).
    """

    name = "lending.collateral"
    label = "collateral"
    verbose_name = _("Collateral book")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.schedules import crontab

        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        navigation.register_staff_nav(navigation.NavItem(_("Collateral operations"), "collateral:operations", Perm.FACILITY_OPERATE, order=44))
        navigation.register_staff_nav(navigation.NavItem(_("Instruments"), "collateral:instruments", Perm.PRICE_MANAGE, order=45))
        # The platform sends its custody statement overnight; this checks one arrived (per-line
        # differences are raised as each statement is imported).
        schedule("collateral-custody-reconcile", "lending.collateral.tasks.custody_reconcile_daily", crontab(hour=9, minute=0))
        from django.conf import settings

        if settings.DEMO:
            schedule("collateral-demo-securities-feed", "lending.collateral.tasks.demo_securities_feed_tick", 30.0)
