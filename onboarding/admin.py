"""Admin for the onboarding policy and questionnaire versions, and read-only views of client records.

Policy versions and published questionnaires are never edited: a change is a new version,
so every past decision still points at the numbers and questions it used.
"""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdmin
from portal.errors import PortalError

from . import services
from .models import (
    ClientProfile,
    OnboardingPolicy,
    PerpetualsAccessRequest,
    PIAttestation,
    Questionnaire,
    SuitabilityAssessment,
)


@admin.register(OnboardingPolicy)
class OnboardingPolicyAdmin(admin.ModelAdmin):
    list_display = ["version", "pi_portfolio_threshold", "pi_total_assets_threshold", "evidence_window_months",
                    "audited_accounts_window_months", "pi_validity_months", "suitability_validity_months",
                    "va_margin_min_risk_profile", "created_at"]
    readonly_fields = ["version", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # saved versions are history
            return [f.name for f in self.model._meta.fields]
        return self.readonly_fields

    def get_changeform_initial_data(self, request):
        latest = OnboardingPolicy.objects.order_by("-version").first()
        if latest is None:
            return {}
        return {f.name: getattr(latest, f.name) for f in self.model._meta.fields if f.name not in ("id", "version", "created_at", "note")}

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # a saved version is history: shown read-only, without a Save button that would do nothing
        return obj is None and super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        if change:
            return
        services.onboarding_policy_create(actor=request.user, policy=obj)
        messages.info(request, _("Policy version %(v)s is now in force.") % {"v": obj.version})


@admin.register(Questionnaire)
class QuestionnaireAdmin(admin.ModelAdmin):
    list_display = ["version", "title", "published_at", "created_at"]
    readonly_fields = ["version", "created_at", "published_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.published_at is not None:
            return [f.name for f in self.model._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # a published questionnaire never changes (answers point at it): shown read-only
        if obj is not None and obj.published_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        services.questionnaire_draft_save(actor=request.user, questionnaire=obj)

    @admin.action(description=_("Publish the selected draft questionnaires"))
    def publish(self, request, queryset):
        try:
            published = services.questionnaire_drafts_publish(actor=request.user, questionnaire_ids=list(queryset.values_list("pk", flat=True)))
        except PortalError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        if published:
            self.message_user(request, _("Published questionnaire version(s) %(v)s.") % {"v": ", ".join(map(str, published))}, messages.SUCCESS)
        else:
            self.message_user(request, _("Nothing was published: the selected questionnaires are already published."), messages.WARNING)

    actions = ["publish"]


@admin.register(ClientProfile)
class ClientProfileAdmin(ReadOnlyAdmin):
    list_display = ["user", "client_type", "legal_name", "margin_account_number", "margin_account_confirmed_at"]
    search_fields = ["user__email", "legal_name", "margin_account_number"]
    exclude = ["id_document_number"]


@admin.register(PIAttestation)
class PIAttestationAdmin(ReadOnlyAdmin):
    list_display = ["id", "client", "state", "category", "basis", "declared_amount", "submitted_at", "expires_on"]
    list_filter = ["state", "category"]
    search_fields = ["client__email"]


@admin.register(SuitabilityAssessment)
class SuitabilityAssessmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "client", "state", "questionnaire", "risk_profile", "va_knowledge", "derivative_knowledge", "review_status", "valid_until"]
    list_filter = ["state", "review_status"]
    search_fields = ["client__email"]


@admin.register(PerpetualsAccessRequest)
class PerpetualsAccessRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "client", "state", "requested_at", "decided_at", "lapsed_at"]
    list_filter = ["state"]
