from django.urls import path

from . import api

urlpatterns = [
    path("facilities/<id:pk>/close-out/", api.ClientCloseOutApi.as_view(), name="recovery-api-my-close-out"),
    path("staff/plans/", api.PlanListApi.as_view(), name="recovery-api-plans"),
    path("staff/plans/<id:pk>/", api.PlanDetailApi.as_view(), name="recovery-api-plan"),
    path("staff/plans/<id:pk>/executions/", api.ExecutionApi.as_view(), name="recovery-api-executions"),
    path("staff/plans/<id:pk>/amendments/", api.AmendmentProposeApi.as_view(), name="recovery-api-amend"),
    path("staff/amendments/<id:pk>/decide/", api.AmendmentDecideApi.as_view(), name="recovery-api-amend-decide"),
    path("staff/debts/", api.DebtListApi.as_view(), name="recovery-api-debts"),
    path("staff/debts/<id:pk>/payments/", api.DebtPaymentApi.as_view(), name="recovery-api-debt-payment"),
    path("staff/debts/<id:pk>/write-off/", api.WriteOffProposeApi.as_view(), name="recovery-api-write-off"),
    path("staff/debts/<id:pk>/write-off/decide/", api.WriteOffDecideApi.as_view(), name="recovery-api-write-off-decide"),
    path("staff/debts/<id:pk>/recoveries/", api.RecoveryApi.as_view(), name="recovery-api-recovery"),
]
