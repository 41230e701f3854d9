from django.urls import path

from . import views

app_name = "reporting"

urlpatterns = [
    path("packs/", views.packs, name="packs"),
    path("packs/<id:pk>/", views.pack_detail, name="pack"),
    path("packs/<id:pk>/pack.<str:fmt>", views.pack_download, name="pack-file"),
    path("capital/", views.capital, name="capital"),
    path("deviations/", views.deviations, name="deviations"),
    path("deviations/<id:pk>/", views.deviation_detail, name="deviation"),
    path("complaints/", views.complaints, name="complaints"),
    path("complaints/new/", views.complaint_new, name="complaint-new"),
    path("complaints/<id:pk>/", views.complaint_detail, name="complaint"),
    path("my-complaints/", views.my_complaints, name="my-complaints"),
    path("my-complaints/<id:pk>/", views.my_complaint, name="my-complaint"),
    path("record-requests/", views.record_requests, name="record-requests"),
    path("record-requests/<id:pk>/", views.record_request_record, name="record-request"),
    path("retention/disposals/<id:pk>/", views.disposal_record, name="disposal"),
    path("record-requests/<id:pk>/archive.zip", views.record_request_download, name="record-request-download"),
    path("retention/", views.retention_report, name="retention"),
    path("groups/", views.client_groups, name="groups"),
    path("groups/<id:pk>/", views.client_group, name="group"),
    path("groups/memberships/<id:pk>/", views.membership_record, name="membership"),
    path("capital/<id:pk>/", views.capital_entry_record, name="capital-entry"),
    path("snapshots/", views.snapshots, name="snapshots"),
    path("band-changes/", views.band_changes, name="band-changes"),
    path("export/<str:list_name>.<str:fmt>", views.export, name="export"),
]
