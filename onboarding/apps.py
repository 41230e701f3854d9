from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OnboardingConfig(AppConfig):
    name = "onboarding"
    verbose_name = _("Onboarding")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.schedules import crontab

        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        from . import panels

        navigation.register_client_nav(navigation.NavItem(_("Onboarding"), "onboarding:overview", order=10))
        navigation.register_staff_nav(navigation.NavItem(_("Onboarding queue"), "onboarding:staff-queue", Perm.WORKBENCH_ACCESS, order=10))
        navigation.register_client_panel(navigation.Panel("onboarding-checklist", panels.client_checklist, order=10))
        navigation.register_staff_panel(navigation.Panel("onboarding-queue", panels.staff_queue, order=10, perm=Perm.WORKBENCH_ACCESS))
        # 01:10 Hong Kong time: after midnight so "expires on the day" means that calendar day.
        schedule("onboarding-daily-sweep", "onboarding.tasks.daily_sweep", crontab(hour=1, minute=10))
