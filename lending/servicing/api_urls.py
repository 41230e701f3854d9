from django.urls import path

from . import api

urlpatterns = [
    path("facilities/<id:pk>/requests/", api.FacilityRequestsApi.as_view(), name="servicing-api-requests"),
    path("facilities/<id:pk>/drawdown-requests/", api.DrawdownRequestApi.as_view(), name="servicing-api-drawdown"),
    path("facilities/<id:pk>/repayment-notices/", api.RepaymentNoticeApi.as_view(), name="servicing-api-repayment"),
    path("facilities/<id:pk>/top-up-requests/", api.TopUpRequestApi.as_view(), name="servicing-api-top-up"),
    path("facilities/<id:pk>/release-requests/", api.ReleaseRequestApi.as_view(), name="servicing-api-release"),
    path("statements/", api.StatementListApi.as_view(), name="servicing-api-statements"),
    path("staff/requests/", api.StaffRequestListApi.as_view(), name="servicing-api-staff-requests"),
    path("staff/requests/<id:pk>/approve/", api.StaffRequestDecisionApi.as_view(approve=True), name="servicing-api-staff-approve"),
    path("staff/requests/<id:pk>/refuse/", api.StaffRequestDecisionApi.as_view(approve=False), name="servicing-api-staff-refuse"),
]
