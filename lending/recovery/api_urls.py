from django.urls import path

from . import api

urlpatterns = [
    path("facilities/<int:pk>/close-out/", api.ClientCloseOutApi.as_view(), name="recovery-api-my-close-out"),
    path("staff/plans/", api.PlanListApi.as_view(), name="recovery-api-plans"),
    path("staff/plans/<int:pk>/", api.PlanDetailApi.as_view(), name="recovery-api-plan"),
    path("staff/plans/<int:pk>/executions/", api.ExecutionApi.as_view(), name="recovery-api-executions"),
    path("staff/plans/<int:pk>/amendments/", api.AmendmentProposeApi.as_view(), name="recovery-api-amend"),
    path("staff/amendments/<int:pk>/decide/", api.AmendmentDecideApi.as_view(), name="recovery-api-amend-decide"),
    path("staff/debts/", api.DebtListApi.as_view(), name="recovery-api-debts"),
    path("staff/debts/<int:pk>/payments/", api.DebtPaymentApi.as_view(), name="recovery-api-debt-payment"),
    path("staff/debts/<int:pk>/write-off/", api.WriteOffProposeApi.as_view(), name="recovery-api-write-off"),
    path("staff/debts/<int:pk>/write-off/decide/", api.WriteOffDecideApi.as_view(), name="recovery-api-write-off-decide"),
    path("staff/debts/<int:pk>/recoveries/", api.RecoveryApi.as_view(), name="recovery-api-recovery"),
]
