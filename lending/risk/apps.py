from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskConfig(AppConfig):
    """The risk engine: price governance, revaluation, margin calls, stress tests, risk board.

    A nested app of ``lending`` with its own tables, so it can evolve (and migrate) on its own.
    """

    name = "lending.risk"
    label = "risk"
    verbose_name = _("Risk engine")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.schedules import crontab
        from django.conf import settings

        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        from . import panels

        navigation.register_staff_nav(navigation.NavItem(_("Risk board"), "risk:board", Perm.RISK_VIEW, order=40))
        navigation.register_staff_nav(navigation.NavItem(_("Margin calls"), "risk:calls", Perm.MARGIN_CALL_MANAGE, order=41))
        navigation.register_staff_nav(navigation.NavItem(_("Stress tests"), "risk:stress", Perm.STRESS_TEST_RUN, order=42))
        navigation.register_staff_nav(navigation.NavItem(_("Price governance"), "risk:prices", Perm.PRICE_MANAGE, order=43))
        navigation.register_client_panel(navigation.Panel("risk-facilities", panels.client_panel, order=1))
        navigation.register_staff_panel(navigation.Panel("risk-board", panels.staff_panel, order=29, perm=Perm.RISK_VIEW))

        # VA trades around the clock, so monitoring runs 24/7.
        schedule("risk-revalue-book", "lending.risk.tasks.revalue_book_task", 60.0)
        schedule("risk-reference-prices", "lending.risk.tasks.reference_prices_refresh", 60.0)
        schedule("risk-refresh-calls", "lending.risk.tasks.open_calls_refresh", 60.0)
        schedule("risk-book-summary", "lending.risk.tasks.book_summary_take", 60.0)
        schedule("risk-escalate-calls", "lending.risk.tasks.margin_calls_escalate_due", 300.0)
        schedule("risk-notify-calls", "lending.risk.tasks.margin_calls_notify", 300.0)
        schedule("risk-eod-snapshots", "lending.risk.tasks.snapshots_take", crontab(hour=23, minute=55))
        schedule("risk-coefficients-reconcile", "lending.risk.tasks.coefficients_reconcile", crontab(hour=3, minute=15))
        # Daily; stores the month's report once (the first run of each month), so a missed day catches up.
        schedule("risk-monthly-stress", "lending.risk.tasks.stress_monthly_report", crontab(hour=6, minute=0))
        if settings.DEMO:
            schedule("risk-demo-price-feed", "lending.risk.tasks.demo_feed_tick", 30.0)
