from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from .admin_base import ReadOnlyAdmin
from .models import AuditEvent, Notification, User

admin.site.site_header = _("VA Margin Portal administration")
admin.site.site_title = _("VA Margin Portal")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff", "last_login"]
    list_filter = ["groups", "is_active", "is_staff"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (_("Person"), {"fields": ["full_name", "preferred_language", "authority_limit"]}),
        (_("Access"), {"fields": ["is_active", "is_staff", "groups"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: records are kept for 7 years


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "actor_label", "action", "object_type", "object_id", "ip_address"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "title", "read_at", "emailed_at"]
    list_filter = ["kind"]
    search_fields = ["user__email", "title"]
    readonly_fields = ["user", "kind", "title", "body", "link", "created_at", "read_at", "emailed_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- periodic jobs --------------------------------------------------------------------
# The jobs are declared in code (portal.celery.schedule) and synced into
# django-celery-beat's tables; here an admin sees them and pauses or resumes one,
# audited. Adding or editing a schedule would let the admin site run arbitrary
# tasks with arbitrary arguments, so nothing else is editable.
from django_celery_beat import models as beat_models  # noqa: E402

for _model in (
    beat_models.PeriodicTask,
    beat_models.IntervalSchedule,
    beat_models.CrontabSchedule,
    beat_models.SolarSchedule,
    beat_models.ClockedSchedule,
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(beat_models.PeriodicTask)
class PeriodicJobAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "enabled", "interval", "crontab", "last_run_at", "total_run_count"]
    list_filter = ["enabled"]
    search_fields = ["name", "task"]
    fields = ["name", "task", "enabled", "interval", "crontab", "last_run_at", "total_run_count", "description"]
    readonly_fields = ["name", "task", "interval", "crontab", "last_run_at", "total_run_count", "description"]
    actions = ["pause", "resume"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from .services import periodic_job_set_enabled

        periodic_job_set_enabled(name=obj.name, enabled=obj.enabled, actor=request.user)

    @admin.action(description=_("Pause the selected jobs"), permissions=["change"])
    def pause(self, request, queryset):
        from .services import periodic_job_set_enabled

        for task in queryset:
            periodic_job_set_enabled(name=task.name, enabled=False, actor=request.user)

    @admin.action(description=_("Resume the selected jobs"), permissions=["change"])
    def resume(self, request, queryset):
        from .services import periodic_job_set_enabled

        for task in queryset:
            periodic_job_set_enabled(name=task.name, enabled=True, actor=request.user)
