from django.urls import path

from . import views

app_name = "collateral"

urlpatterns = [
    path("operations/", views.operations, name="operations"),
    path("operations/batches/<id:pk>/", views.batch, name="batch"),
    path("instruments/", views.instruments, name="instruments"),
]
