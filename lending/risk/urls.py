from django.urls import path

from . import views

app_name = "risk"

urlpatterns = [
    path("board/", views.board, name="board"),
    path("margin-calls/", views.calls, name="calls"),
    path("margin-calls/<id:pk>/", views.call_detail, name="call"),
    path("stress/", views.stress, name="stress"),
    path("stress/reports/", views.stress_reports, name="stress-reports"),
    path("stress/reports/<id:pk>/", views.stress_report, name="stress-report"),
    path("prices/", views.prices, name="prices"),
    path("policy/", views.policy, name="policy"),
    path("facility/<id:pk>/", views.client_facility, name="client-facility"),
    path("facility/<id:pk>/live/", views.facility_live, name="facility-live"),
    path("calls/<id:pk>/", views.client_call, name="client-call"),
]
