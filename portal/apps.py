from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles(sender, **kwargs):
    from .services import roles_sync

    roles_sync()


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import navigation
        from .permissions import Perm

        # After every migrate: role groups carry exactly the permissions in
        # portal.permissions, including those of models added since.
        post_migrate.connect(_sync_roles, dispatch_uid="portal.roles_sync")
        navigation.register_staff_nav(navigation.NavItem(_("Workbench"), "workbench", order=0))
        navigation.register_staff_nav(navigation.NavItem(_("Audit trail"), "audit-trail", Perm.AUDIT_VIEW, order=900))
        navigation.register_client_nav(navigation.NavItem(_("Dashboard"), "dashboard", order=0))
