from django.urls import path

from . import views

app_name = "lending"

urlpatterns = [
    path("", views.client_home, name="client-home"),
    path("apply/", views.application_new, name="apply"),
    path("applications/<id:pk>/", views.application_detail, name="application"),
    path("facilities/<id:pk>/", views.facility_detail, name="facility"),
    path("holdings/", views.holdings, name="holdings"),
    path("staff/queue/", views.queue, name="queue"),
    path("staff/applications/<id:pk>/", views.review, name="review"),
    path("staff/facilities/", views.staff_facilities, name="staff-facilities"),
    path("staff/facilities/<id:pk>/", views.staff_facility, name="staff-facility"),
    path("staff/clients/<id:user_id>/holdings/", views.staff_holdings, name="staff-holdings"),
    path("staff/prices/", views.prices, name="prices"),
    path("staff/policy/", views.policies, name="policies"),
    path("staff/watchlist/", views.watchlist, name="watchlist"),
    path("staff/screening/", views.screening, name="screening"),
]
