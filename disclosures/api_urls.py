from django.urls import path

from . import api

urlpatterns = [
    path("required/", api.RequiredDocumentsApi.as_view(), name="api-disclosures-required"),
    path("outstanding/", api.OutstandingDocumentsApi.as_view(), name="api-disclosures-outstanding"),
    path("documents/<slug:code>/", api.CurrentVersionApi.as_view(), name="api-disclosures-document"),
    path("versions/<id:version_id>/", api.VersionDetailApi.as_view(), name="api-disclosures-version"),
    path("acknowledgements/", api.AcknowledgementListCreateApi.as_view(), name="api-disclosures-acknowledgements"),
    path("acknowledgements/<id:ack_id>/", api.AcknowledgementDetailApi.as_view(), name="api-disclosures-acknowledgement"),
    path("reports/versions/", api.VersionReportListApi.as_view(), name="api-disclosures-report-versions"),
    path(
        "reports/versions/<id:version_id>/acknowledgements/",
        api.VersionAcknowledgementsApi.as_view(),
        name="api-disclosures-report-version-acks",
    ),
    path(
        "reports/versions/<id:version_id>/outstanding/",
        api.VersionOutstandingApi.as_view(),
        name="api-disclosures-report-version-outstanding",
    ),
    path(
        "reports/clients/<id:user_id>/acknowledgements/",
        api.ClientAcknowledgementsApi.as_view(),
        name="api-disclosures-report-client-acks",
    ),
]
