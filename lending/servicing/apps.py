from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServicingConfig(AppConfig):
    """Running a facility after it opens: rates, daily interest, the ledger's postings, statements of account."""

    name = "lending.servicing"
    label = "servicing"
    verbose_name = _("Facility servicing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.schedules import crontab

        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        navigation.register_staff_nav(navigation.NavItem(_("Rates and servicing"), "servicing:staff-rates", Perm.POLICY_PROPOSE, order=35))
        navigation.register_staff_nav(navigation.NavItem(_("Statements"), "servicing:staff-statements", Perm.FACILITY_OPERATE, order=36))
        navigation.register_staff_nav(navigation.NavItem(_("Servicing requests"), "servicing:staff-requests", Perm.FACILITY_OPERATE, order=34))
        navigation.register_staff_nav(navigation.NavItem(_("Annual reviews"), "servicing:staff-reviews", Perm.FACILITY_OPERATE, order=37))
        navigation.register_client_nav(navigation.NavItem(_("Statements"), "servicing:statements", None, order=35))
        navigation.register_client_nav(navigation.NavItem(_("Withdrawal addresses"), "servicing:addresses", None, order=36))

        # Interest for a day is accrued once the day is over (Hong Kong time); every run catches up
        # any missed day and posts any month whose days are all accrued. Idempotent, so hourly is safe.
        schedule("servicing-accrue-interest", "lending.servicing.tasks.interest_run", crontab(minute=5))
        # Statements: monthly ones once the month is posted, activity ones for the day's events.
        schedule("servicing-statements", "lending.servicing.tasks.statements_run", crontab(minute=20))
        schedule("servicing-addresses-activate", "lending.servicing.tasks.addresses_activate", 300.0)
        schedule("servicing-statements-resume", "lending.servicing.tasks.statement_jobs_resume", 600.0)
