from django.urls import path

from . import views

app_name = "risk"

urlpatterns = [
    path("board/", views.board, name="board"),
    path("margin-calls/", views.calls, name="calls"),
    path("margin-calls/<int:pk>/", views.call_detail, name="call"),
    path("stress/", views.stress, name="stress"),
    path("stress/reports/", views.stress_reports, name="stress-reports"),
    path("stress/reports/<int:pk>/", views.stress_report, name="stress-report"),
    path("prices/", views.prices, name="prices"),
    path("policy/", views.policy, name="policy"),
    path("facility/<int:pk>/", views.client_facility, name="client-facility"),
    path("facility/<int:pk>/live/", views.facility_live, name="facility-live"),
    path("calls/<int:pk>/", views.client_call, name="client-call"),
]
