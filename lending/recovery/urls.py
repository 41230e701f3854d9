from django.urls import path

from . import views

app_name = "recovery"

urlpatterns = [
    path("plans/", views.plans, name="plans"),
    path("plans/<id:pk>/", views.plan_detail, name="plan"),
    path("collections/", views.collections, name="collections"),
    path("debts/<id:pk>/", views.debt_detail, name="debt"),
    path("register/", views.register, name="register"),
    path("policy/", views.policy, name="policy"),
    path("facility/<id:pk>/", views.client_facility, name="client-facility"),
]
