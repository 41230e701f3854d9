from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from . import api, views

api_v1 = [
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("auth/token/", api.TokenObtainApi.as_view(), name="api-token"),
    path("notifications/", api.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", api.NotificationsMarkReadApi.as_view(), name="api-notifications-read"),
    path("notifications/preferences/", api.NotificationPreferencesApi.as_view(), name="api-notification-preferences"),
    path("notifications/channels/", api.NotificationChannelsApi.as_view(), name="api-notification-channels"),
    path("notifications/channels/<id:channel_id>/deactivate/", api.NotificationChannelDeactivateApi.as_view(),
         name="api-notification-channel-deactivate"),
    path("audit/", api.AuditEventListApi.as_view(), name="api-audit"),
    path("onboarding/", include("onboarding.api_urls")),
    path("disclosures/", include("disclosures.api_urls")),
    path("lending/", include("lending.api_urls")),
    path("risk/", include("lending.risk.api_urls")),
    path("servicing/", include("lending.servicing.api_urls")),
    path("recovery/", include("lending.recovery.api_urls")),
    path("collateral/", include("lending.collateral.api_urls")),
    path("reporting/", include("lending.reporting.api_urls")),
]

handler404 = "portal.views.page_not_found"

_REDOC_CSP = {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE], "style-src-elem": [CSP.SELF, CSP.UNSAFE_INLINE], "worker-src": [CSP.SELF, "blob:"]}

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("workbench/", views.workbench, name="workbench"),
    path("workbench/audit/", views.audit_trail, name="audit-trail"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications-read"),
    path("notifications/preferences/", views.notification_preferences, name="notification-preferences"),
    path("notifications/channels/", views.notification_channel_add, name="notification-channel-add"),
    path("notifications/channels/<id:channel_id>/deactivate/", views.notification_channel_deactivate, name="notification-channel-deactivate"),
    path("language/", views.language_switch, name="language-switch"),
    path("demo/gateway/", views.demo_gateway, name="demo-gateway"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    # Before the admin's own URLs: its password-only sign-in form is never reachable.
    path("admin/login/", views.admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("onboarding/", include("onboarding.urls")),
    path("disclosures/", include("disclosures.urls")),
    path("lending/", include("lending.urls")),
    path("risk/", include("lending.risk.urls")),
    path("collateral/", include("lending.collateral.urls")),
    path("reporting/", include("lending.reporting.urls")),
    path("servicing/", include("lending.servicing.urls")),
    path("recovery/", include("lending.recovery.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", api.SchemaView.as_view(), name="api-schema"),
    # Swagger UI's start-up script is a second request, so the page needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Redoc writes its styles into <style> elements at run time and parses the schema in a
    # blob: worker; only this page allows that.
    path("api/redoc/", csp_override(_REDOC_CSP)(SpectacularRedocView.as_view(url_name="api-schema")), name="api-redoc"),
]
