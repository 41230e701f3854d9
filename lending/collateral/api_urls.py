from django.urls import path

from . import api

urlpatterns = [
    path("imports/<str:kind>/", api.MachineImportApi.as_view(), name="collateral-api-import"),
    path("imports/<str:kind>/<str:batch_id>/", api.MachineBatchApi.as_view(), name="collateral-api-batch"),
    path("staff/imports/", api.StaffBatchListApi.as_view(), name="collateral-api-batches"),
    path("staff/imports/<str:kind>/", api.StaffImportApi.as_view(), name="collateral-api-upload"),
    path("staff/breaks/", api.BreakListApi.as_view(), name="collateral-api-breaks"),
    path("staff/breaks/<id:pk>/resolve/", api.BreakResolveApi.as_view(), name="collateral-api-break-resolve"),
    path("staff/instruments/", api.InstrumentListApi.as_view(), name="collateral-api-instruments"),
    path("staff/instruments/<str:code>/", api.InstrumentDetailApi.as_view(), name="collateral-api-instrument"),
    path("staff/keys/", api.KeyListApi.as_view(), name="collateral-api-keys"),
    path("staff/keys/<id:pk>/rotate/", api.KeyRotateApi.as_view(), name="collateral-api-key-rotate"),
    path("staff/keys/<id:pk>/revoke/", api.KeyRevokeApi.as_view(), name="collateral-api-key-revoke"),
]
