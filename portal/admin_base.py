"""Admin building blocks every app shares."""

from django.contrib import admin


class _NoWrites:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(_NoWrites, admin.ModelAdmin):
    """A regulated record: viewable by admin-site users with the view permission, never added,
    changed or deleted here (its services do that, with their checks and audit rows)."""


class ReadOnlyInline(_NoWrites, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False
