from django.urls import path

from . import views

app_name = "disclosures"

urlpatterns = [
    path("", views.index, name="index"),
    path("documents/<slug:code>/", views.read, name="read"),
    path("documents/<slug:code>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("receipts/", views.receipts, name="receipts"),
    path("receipts/<id:ack_id>/", views.receipt, name="receipt"),
    path("compliance/", views.compliance_index, name="compliance"),
    path("compliance/versions/<id:version_id>/", views.compliance_version, name="compliance-version"),
    path("compliance/versions/<id:version_id>/acknowledgements.<str:fmt>", views.compliance_version_export, name="compliance-version-export"),
    path("compliance/clients/<id:user_id>/", views.compliance_client, name="compliance-client"),
    path("compliance/acknowledgements/<id:ack_id>/", views.compliance_receipt, name="compliance-receipt"),
]
