from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

# django-celery-beat's admin section title: it ships no Traditional Chinese, so our catalogue translates it;
# named here so that `make messages` (makemessages --no-obsolete) keeps the entry.
CELERY_BEAT_SECTION = gettext_noop("Periodic Tasks")


def _sync_roles(sender, **kwargs):
    from .services import roles_sync

    roles_sync()


def _sync_schedules(sender, using="default", **kwargs):
    from django.db import connections

    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return  # django-celery-beat not migrated yet (a partial migrate)
    from .scheduling import schedules_sync

    schedules_sync()


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.urls import register_converter

        from . import checks, navigation, panels  # noqa: F401  (checks registers itself)
        from .converters import RecordIdConverter

        register_converter(RecordIdConverter, "id")  # every record id in a URL (portal.converters)
        from .permissions import Perm

        # After every migrate: role groups carry exactly the permissions in
        # portal.permissions, including those of models added since.
        post_migrate.connect(_sync_roles, dispatch_uid="portal.roles_sync")
        # The declared periodic jobs, into django-celery-beat's tables (beat syncs again at start).
        post_migrate.connect(_sync_schedules, sender=self, dispatch_uid="portal.schedules_sync")
        from . import scheduling  # noqa: F401  (connects the heartbeat task signals)
        from .mfa import connect_signals

        connect_signals()
        # Passwords users change or reset themselves are changed by allauth; the audit row is ours.
        from allauth.account import signals as account_signals

        for signal, how in ((account_signals.password_changed, "changed"), (account_signals.password_set, "set_by_user"),
                            (account_signals.password_reset, "reset")):
            signal.connect(_password_audit(how), weak=False, dispatch_uid=f"portal.password_{how}")
        from .celery import schedule

        # Retries whose backoff has passed and deliveries whose task message was lost.
        schedule("portal-notification-deliveries", "portal.tasks.notification_deliveries_sweep", 60.0)
        navigation.register_staff_nav(navigation.NavItem(_("Workbench"), "workbench", order=0))
        navigation.register_staff_nav(navigation.NavItem(_("Audit trail"), "audit-trail", Perm.AUDIT_VIEW, order=900))
        navigation.register_client_nav(navigation.NavItem(_("Dashboard"), "dashboard", order=0))
        navigation.register_client_panel(navigation.Panel("mfa-prompt", panels.mfa_prompt, order=5))
        navigation.register_staff_panel(navigation.Panel("jobs", panels.jobs_panel, order=990, perm=Perm.WORKBENCH_ACCESS))


def _password_audit(how: str):
    def record(sender, request, user, **kwargs):
        from .services import user_password_changed_record

        user_password_changed_record(user=user, how=how)

    return record

