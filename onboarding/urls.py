from django.urls import path

from . import views

app_name = "onboarding"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("profile/", views.profile, name="profile"),
    path("professional-investor/", views.professional_investor, name="pi"),
    path("evidence/<id:evidence_id>/", views.evidence_file, name="evidence-file"),
    path("suitability/", views.suitability, name="suitability"),
    path("suitability/step/<id:step>/", views.suitability_step, name="suitability-step"),
    path("training/<slug:module>/", views.training_module, name="training"),
    path("perpetuals/", views.perpetuals, name="perpetuals"),
    path("staff/", views.staff_queue, name="staff-queue"),
    path("staff/attestations/<id:pk>/", views.staff_attestation, name="staff-attestation"),
    path("staff/clients/<id:user_id>/", views.staff_client, name="staff-client"),
    path("staff/assessments/<id:pk>/", views.staff_assessment, name="staff-assessment"),
    path("staff/perpetuals/<id:pk>/", views.staff_perpetuals, name="staff-perpetuals"),
]
