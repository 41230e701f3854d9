from contextvars import ContextVar

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.contrib.auth.forms import UserCreationForm as BaseUserCreationForm
from django.utils.translation import gettext_lazy as _

from .admin_base import ReadOnlyAdmin
from .models import AuditEvent, Notification, NotificationChannel, NotificationDelivery, User
from .permissions import Role

admin.site.site_header = _("VA Margin Portal administration")
admin.site.site_title = _("VA Margin Portal")


class UserChangeForm(BaseUserChangeForm):
    """Roles instead of raw groups and permissions; the admin saves through the audited services."""

    roles = forms.TypedMultipleChoiceField(
        label=_("Roles"), choices=[(r.value, r.label) for r in Role], coerce=Role, widget=forms.CheckboxSelectMultiple
    )

    class Meta(BaseUserChangeForm.Meta):
        model = User
        fields = ["email", "full_name", "preferred_language", "authority_limit", "is_active"]

    editor = None  # the administrator using the form, set by UserAdmin.get_form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["roles"].initial = sorted(self.instance.role_names)

    def clean(self):
        data = super().clean()
        editor = self.editor
        if editor is not None and editor.pk == self.instance.pk:
            if {Role(r) for r in data.get("roles", [])} != {Role(r) for r in self.instance.role_names if r in Role._value2member_map_}:
                self.add_error("roles", _("Another administrator must change your own roles."))
            if data.get("authority_limit") != User.objects.get(pk=self.instance.pk).authority_limit:
                self.add_error("authority_limit", _("Another administrator must change your own authority limit."))
            if data.get("is_active") is False:
                self.add_error("is_active", _("Another administrator must deactivate your account."))
        return data


class UserCreationForm(BaseUserCreationForm):
    role = forms.TypedChoiceField(label=_("Role"), choices=[(r.value, r.label) for r in Role], coerce=Role)
    full_name = forms.CharField(label=_("Full name"), max_length=200, required=False)
    authority_limit = forms.DecimalField(label=_("Authority limit (HKD)"), max_digits=16, decimal_places=2, required=False, min_value=0)

    class Meta(BaseUserCreationForm.Meta):
        model = User
        fields = ["email"]


# The administrator on the password page: Django's admin builds that form with the user alone.
_password_editor: ContextVar = ContextVar("portal_password_editor", default=None)


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    """Sets the password through the audited service; an administrator's own is refused here."""

    def clean(self):
        data = super().clean()
        editor = _password_editor.get()
        if editor is not None and editor.pk == self.user.pk:
            raise forms.ValidationError(_("Change your own password on the password page, which asks for the current one."))
        return data

    def save(self, commit=True):
        from . import services

        if not self.cleaned_data.get("set_usable_password", True):
            self.user.set_unusable_password()
            self.user.save(update_fields=["password"])
            return self.user
        return services.user_password_set(user=self.user, password=self.cleaned_data["password1"], actor=_password_editor.get())


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """Staff creation, role grants and removals, authority limits and MFA resets, each through an
    audited service in portal.services (one audit row per change, in the admin's transaction)."""

    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AuditedPasswordChangeForm
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff", "last_login"]
    list_filter = ["groups", "is_active", "is_staff"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (_("Person"), {"fields": ["full_name", "preferred_language", "authority_limit"]}),
        (_("Access"), {"fields": ["is_active", "roles", "is_staff"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "full_name", "role", "authority_limit", "password1", "password2"]})]
    readonly_fields = ["is_staff", "last_login", "date_joined"]
    filter_horizontal = []
    actions = ["reset_mfa"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: records are kept for 7 years

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.editor = request.user
        return form

    def save_model(self, request, obj, form, change):
        from . import services

        data = form.cleaned_data
        if not change:
            created = services.user_create(
                email=data["email"],
                password=data.get("password1"),
                role=data["role"],
                full_name=data.get("full_name", ""),
                authority_limit=data.get("authority_limit"),
                actor=request.user,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        user = User.objects.get(pk=obj.pk)
        services.user_update(
            user=user, actor=request.user, **{name: data[name] for name in services.PROFILE_FIELDS if name in data}
        )
        services.user_set_roles(user=user, roles=set(data["roles"]), actor=request.user)
        services.user_set_authority_limit(user=user, limit=data["authority_limit"], actor=request.user)

    def user_change_password(self, request, id, form_url=""):
        token = _password_editor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_editor.reset(token)

    def save_related(self, request, form, formsets, change):
        pass  # roles were saved by user_set_roles; nothing else is related

    @admin.action(description=_("Reset multi-factor authentication (the user enrols again)"), permissions=["change"])
    def reset_mfa(self, request, queryset):
        from . import services

        for user in queryset:
            services.user_mfa_reset(user=user, actor=request.user)
        self.message_user(request, _("Multi-factor authentication reset for %(n)s users.") % {"n": queryset.count()})


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
    list_display = ["created_at", "user", "category", "kind", "title", "read_at", "resolved_at", "emailed_at"]
    list_filter = ["category", "kind"]
    search_fields = ["user__email", "title"]
    readonly_fields = ["user", "kind", "category", "title", "body", "link", "task_key", "created_at", "read_at", "resolved_at", "emailed_at"]
    exclude = ["title_source", "body_source", "params"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    """Each notification on each external channel: state, attempts, the gateway's answer (sent by the workers)."""

    list_display = ["id", "created_at", "channel", "endpoint", "state", "attempts", "response_status", "next_attempt_at", "delivered_at"]
    list_filter = ["channel", "state"]
    search_fields = ["notification__user__email", "last_error"]
    list_select_related = ["endpoint"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    """Clients' SMS/push addresses (they add and stop them on their preferences page)."""

    list_display = ["id", "user", "label", "address", "url", "active", "created_at", "deactivated_at"]
    list_filter = ["active"]
    search_fields = ["user__email", "address"]
    list_select_related = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


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


# Authenticators and API tokens change only through the audited services (MFA reset above;
# tokens are issued to confirmed clients by the token API), never by editing rows.
from allauth.mfa.models import Authenticator  # noqa: E402
from rest_framework.authtoken.models import TokenProxy  # noqa: E402

for _model in (Authenticator, TokenProxy):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
