from django.urls import path

from . import views

app_name = "lending"

urlpatterns = [
    path("", views.client_home, name="client-home"),
    path("apply/", views.application_new, name="apply"),
    path("applications/<int:pk>/", views.application_detail, name="application"),
    path("facilities/<int:pk>/", views.facility_detail, name="facility"),
    path("holdings/", views.holdings, name="holdings"),
    path("staff/queue/", views.queue, name="queue"),
    path("staff/applications/<int:pk>/", views.review, name="review"),
    path("staff/facilities/", views.staff_facilities, name="staff-facilities"),
    path("staff/facilities/<int:pk>/", views.staff_facility, name="staff-facility"),
    path("staff/clients/<int:user_id>/holdings/", views.staff_holdings, name="staff-holdings"),
    path("staff/prices/", views.prices, name="prices"),
    path("staff/policy/", views.policies, name="policies"),
    path("staff/watchlist/", views.watchlist, name="watchlist"),
    path("staff/screening/", views.screening, name="screening"),
]
