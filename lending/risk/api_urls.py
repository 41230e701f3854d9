from django.urls import path

from . import api

urlpatterns = [
    path("facilities/<id:pk>/", api.ClientFacilityRiskApi.as_view(), name="risk-api-my-facility"),
    path("margin-calls/", api.ClientCallListApi.as_view(), name="risk-api-my-calls"),
    path("staff/board/", api.BoardApi.as_view(), name="risk-api-board"),
    path("staff/facilities/<id:pk>/", api.StaffFacilityRiskApi.as_view(), name="risk-api-facility"),
    path("staff/facilities/<id:pk>/collateral/", api.TopUpApi.as_view(), name="risk-api-top-up"),
    path("staff/margin-calls/", api.CallListApi.as_view(), name="risk-api-calls"),
    path("staff/margin-calls/<id:pk>/", api.CallDetailApi.as_view(), name="risk-api-call"),
    path("staff/margin-calls/<id:pk>/escalate/", api.CallEscalateApi.as_view(), name="risk-api-call-escalate"),
    path("staff/margin-calls/<id:pk>/mark-met/", api.CallMarkMetApi.as_view(), name="risk-api-call-met"),
    path("staff/margin-calls/<id:pk>/propose/", api.CallProposeApi.as_view(), name="risk-api-call-propose"),
    path("staff/margin-calls/<id:pk>/approve/", api.CallApproveApi.as_view(), name="risk-api-call-approve"),
    path("staff/margin-calls/<id:pk>/reject/", api.CallRejectApi.as_view(), name="risk-api-call-reject"),
    path("staff/prices/", api.PricesApi.as_view(), name="risk-api-prices"),
    path("staff/prices/quotes/", api.QuoteApi.as_view(), name="risk-api-quote"),
    path("staff/prices/overrides/", api.OverrideApi.as_view(), name="risk-api-override"),
    path("staff/prices/overrides/<id:pk>/approve/", api.OverrideDecideApi.as_view(), name="risk-api-override-approve"),
    path("staff/prices/overrides/<id:pk>/reject/", api.OverrideRejectApi.as_view(), name="risk-api-override-reject"),
    path("staff/prices/overrides/<id:pk>/cancel/", api.OverrideCancelApi.as_view(), name="risk-api-override-cancel"),
    path("staff/prices/sources/", api.PriceSourceListApi.as_view(), name="risk-api-sources"),
    path("staff/prices/sources/<id:pk>/", api.PriceSourceApi.as_view(), name="risk-api-source"),
    path("staff/alarms/", api.AlarmListApi.as_view(), name="risk-api-alarms"),
    path("staff/stress/", api.StressRunApi.as_view(), name="risk-api-stress"),
    path("staff/stress/presets/", api.StressPresetsApi.as_view(), name="risk-api-stress-presets"),
    path("staff/stress/reports/", api.StressReportListApi.as_view(), name="risk-api-stress-reports"),
    path("staff/stress/reports/<id:pk>/", api.StressReportApi.as_view(), name="risk-api-stress-report"),
]
