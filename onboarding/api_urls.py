from django.urls import path

from . import api

urlpatterns = [
    path("policy/", api.PolicyApi.as_view(), name="onboarding-api-policy"),
    path("profile/", api.ProfileApi.as_view(), name="onboarding-api-profile"),
    path("eligibility/", api.EligibilityApi.as_view(), name="onboarding-api-eligibility"),
    path("attestations/", api.AttestationListCreateApi.as_view(), name="onboarding-api-attestations"),
    path("attestations/<id:pk>/", api.AttestationDetailApi.as_view(), name="onboarding-api-attestation"),
    path("attestations/<id:pk>/evidence/", api.EvidenceUploadApi.as_view(), name="onboarding-api-evidence"),
    path("attestations/<id:pk>/submit/", api.AttestationSubmitApi.as_view(), name="onboarding-api-attestation-submit"),
    path("attestations/<id:pk>/withdraw/", api.AttestationWithdrawApi.as_view(), name="onboarding-api-attestation-withdraw"),
    path("questionnaire/", api.QuestionnaireApi.as_view(), name="onboarding-api-questionnaire"),
    path("assessments/", api.AssessmentListCreateApi.as_view(), name="onboarding-api-assessments"),
    path("assessments/<id:pk>/", api.AssessmentDetailApi.as_view(), name="onboarding-api-assessment"),
    path("assessments/<id:pk>/steps/", api.AssessmentStepApi.as_view(), name="onboarding-api-assessment-step"),
    path("assessments/<id:pk>/complete/", api.AssessmentCompleteApi.as_view(), name="onboarding-api-assessment-complete"),
    path("training/<slug:module>/", api.TrainingApi.as_view(), name="onboarding-api-training"),
    path("perpetuals/", api.PerpetualsRequestApi.as_view(), name="onboarding-api-perpetuals"),
    path("staff/queue/", api.StaffQueueApi.as_view(), name="onboarding-api-staff-queue"),
    path("staff/attestations/<id:pk>/", api.StaffAttestationApi.as_view(), name="onboarding-api-staff-attestation"),
    path("staff/attestations/<id:pk>/decision/", api.StaffAttestationDecisionApi.as_view(), name="onboarding-api-staff-attestation-decision"),
    path("staff/clients/<id:user_id>/profile/", api.StaffProfileApi.as_view(), name="onboarding-api-staff-profile"),
    path("staff/clients/<id:user_id>/confirm-margin-account/", api.StaffConfirmMarginAccountApi.as_view(), name="onboarding-api-staff-confirm-margin"),
    path("staff/assessments/<id:pk>/", api.StaffAssessmentReviewApi.as_view(), name="onboarding-api-staff-assessment"),
    path("staff/perpetuals/<id:pk>/decision/", api.StaffPerpetualsDecisionApi.as_view(), name="onboarding-api-staff-perpetuals-decision"),
]
