from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = _("Lending")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import audit, navigation
        from portal.permissions import Perm

        from . import locks, panels

        if locks.audit_chain_taken not in audit.CHAIN_LOCK_LISTENERS:
            audit.CHAIN_LOCK_LISTENERS.append(locks.audit_chain_taken)

        navigation.register_client_nav(navigation.NavItem(_("Margin financing"), "lending:client-home", order=30))
        navigation.register_staff_nav(navigation.NavItem(_("Credit queue"), "lending:queue", Perm.APPLICATION_DECIDE, order=30))
        navigation.register_staff_nav(navigation.NavItem(_("Facilities"), "lending:staff-facilities", Perm.FACILITY_OPERATE, order=31))
        navigation.register_staff_nav(navigation.NavItem(_("Prices"), "lending:prices", Perm.PRICE_MANAGE, order=32))
        navigation.register_staff_nav(navigation.NavItem(_("Collateral policy"), "lending:policies", Perm.POLICY_PROPOSE, order=33))
        navigation.register_staff_nav(navigation.NavItem(_("Watch list"), "lending:watchlist", Perm.WATCHLIST_MANAGE, order=34))
        navigation.register_staff_nav(navigation.NavItem(_("Screening hits"), "lending:screening", Perm.SCREENING_REVIEW, order=35))
        navigation.register_client_panel(navigation.Panel("lending", panels.client_panel, order=2))
        navigation.register_staff_panel(navigation.Panel("lending-queue", panels.staff_panel, order=30, perm=Perm.APPLICATION_DECIDE))
        from portal.celery import schedule

        # Collateral, risk and servicing policy versions approved for a later day come into force on it.
        schedule("lending-policies-take-effect", "lending.tasks.policies_take_effect", 900.0)
        # Demo prices move only through the risk engine's governed multi-source feed
        # (lending.risk: quotes → median reference price → revaluation); staff still enter and load prices here.
