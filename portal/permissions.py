"""Roles and the named permissions they carry: the one place both are defined.

Permissions are Django permissions on the ``portal.User`` model (``portal.<code>``),
so ``user.has_perm(Perm.X)`` works everywhere: views, DRF, admin, templates.
"""

from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class Role(StrEnum):
    CLIENT = "client"
    ACCOUNT_OFFICER = "account_officer"
    CREDIT_MANAGER = "credit_manager"
    COMPLIANCE = "compliance"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])


ROLE_LABELS = {
    Role.CLIENT: _("Client"),
    Role.ACCOUNT_OFFICER: _("Account officer"),
    Role.CREDIT_MANAGER: _("Credit manager"),
    Role.COMPLIANCE: _("Compliance"),
    Role.ADMIN: _("Administrator"),
}

STAFF_ROLES = frozenset({Role.ACCOUNT_OFFICER, Role.CREDIT_MANAGER, Role.COMPLIANCE, Role.ADMIN})


class Perm(StrEnum):
    """Full permission names, usable directly with ``user.has_perm``."""

    WORKBENCH_ACCESS = "portal.access_workbench"
    AUDIT_VIEW = "portal.view_audit_trail"
    ONBOARDING_REVIEW = "portal.review_onboarding"
    SUITABILITY_REVIEW = "portal.review_suitability"
    PERPETUALS_GRANT = "portal.grant_perpetuals_access"
    DISCLOSURE_MANAGE = "portal.manage_disclosures"
    DISCLOSURE_REPORT = "portal.view_disclosure_reports"
    APPLICATION_DECIDE = "portal.decide_application"
    APPLICATION_SECOND_APPROVE = "portal.second_approve_application"
    FACILITY_OPERATE = "portal.operate_facility"
    FACILITY_SUSPEND = "portal.suspend_facility"
    POLICY_PROPOSE = "portal.propose_policy"
    POLICY_APPROVE = "portal.approve_policy"
    PRICE_MANAGE = "portal.manage_prices"
    PRICE_OVERRIDE = "portal.override_price"
    WATCHLIST_MANAGE = "portal.manage_watchlist"
    MARGIN_CALL_MANAGE = "portal.manage_margin_calls"
    MARGIN_CALL_RESOLVE = "portal.resolve_margin_calls"
    RISK_VIEW = "portal.view_risk"
    STRESS_TEST_RUN = "portal.run_stress_test"
    SCREENING_REVIEW = "portal.review_screening"
    REPORT_VIEW = "portal.view_compliance_reports"
    CAPITAL_VIEW = "portal.view_capital"
    CAPITAL_PROPOSE = "portal.propose_capital"
    CAPITAL_APPROVE = "portal.approve_capital"
    DEVIATION_PROPOSE = "portal.propose_deviation"
    DEVIATION_APPROVE = "portal.approve_deviation"
    COMPLAINT_LOG = "portal.log_complaint"
    COMPLAINT_HANDLE = "portal.handle_complaint"
    RECORD_REQUEST = "portal.request_client_records"
    DISPOSAL_REQUEST = "portal.request_disposal"
    DISPOSAL_APPROVE = "portal.approve_disposal"
    CLIENT_GROUP_PROPOSE = "portal.propose_client_group"
    CLIENT_GROUP_APPROVE = "portal.approve_client_group"

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]


PERMISSION_LABELS = {
    Perm.WORKBENCH_ACCESS: "Can use the officer workbench",
    Perm.AUDIT_VIEW: "Can read the audit trail",
    Perm.ONBOARDING_REVIEW: "Can verify professional-investor evidence and margin accounts",
    Perm.SUITABILITY_REVIEW: "Can review flagged suitability assessments",
    Perm.PERPETUALS_GRANT: "Can grant or refuse perpetual-contracts access",
    Perm.DISCLOSURE_MANAGE: "Can maintain and publish risk disclosures",
    Perm.DISCLOSURE_REPORT: "Can read disclosure acknowledgement reports",
    Perm.APPLICATION_DECIDE: "Can decide facility applications within authority",
    Perm.APPLICATION_SECOND_APPROVE: "Can give the second approval above officer authority",
    Perm.FACILITY_OPERATE: "Can record drawdowns, repayments and collateral changes",
    Perm.FACILITY_SUSPEND: "Can suspend, reinstate and close facilities",
    Perm.POLICY_PROPOSE: "Can propose risk-policy changes",
    Perm.POLICY_APPROVE: "Can approve risk-policy changes",
    Perm.PRICE_MANAGE: "Can load and enter prices",
    Perm.PRICE_OVERRIDE: "Can set manual price overrides",
    Perm.WATCHLIST_MANAGE: "Can maintain the screening watch list",
    Perm.MARGIN_CALL_MANAGE: "Can chase and update margin calls",
    Perm.MARGIN_CALL_RESOLVE: "Can approve margin-call close-outs and waivers",
    Perm.RISK_VIEW: "Can see the risk board",
    Perm.STRESS_TEST_RUN: "Can run stress tests",
    Perm.SCREENING_REVIEW: "Can clear or confirm a name-screening match",
    Perm.REPORT_VIEW: "Can read the SMF control pack and compliance registers",
    Perm.CAPITAL_VIEW: "Can see the firm's liquid capital and loans-to-capital multiple",
    Perm.CAPITAL_PROPOSE: "Can enter the firm's liquid capital (maker)",
    Perm.CAPITAL_APPROVE: "Can approve a liquid-capital entry (checker)",
    Perm.DEVIATION_PROPOSE: "Can record a departure from an SMF benchmark",
    Perm.DEVIATION_APPROVE: "Can approve a departure from an SMF benchmark",
    Perm.COMPLAINT_LOG: "Can log a complaint received by any channel",
    Perm.COMPLAINT_HANDLE: "Can assign, acknowledge, escalate and close complaints",
    Perm.RECORD_REQUEST: "Can produce and download a client's record archive",
    Perm.DISPOSAL_REQUEST: "Can request disposal of records past retention",
    Perm.DISPOSAL_APPROVE: "Can approve a disposal request (second person)",
    Perm.CLIENT_GROUP_PROPOSE: "Can record a related-client group or propose a change to its members (maker)",
    Perm.CLIENT_GROUP_APPROVE: "Can approve a change to a related-client group's members (checker)",
}

_OFFICER = {
    Perm.WORKBENCH_ACCESS,
    Perm.ONBOARDING_REVIEW,
    Perm.PERPETUALS_GRANT,
    Perm.APPLICATION_DECIDE,
    Perm.FACILITY_OPERATE,
    Perm.POLICY_PROPOSE,
    Perm.PRICE_MANAGE,
    Perm.WATCHLIST_MANAGE,
    Perm.MARGIN_CALL_MANAGE,
    Perm.RISK_VIEW,
    Perm.STRESS_TEST_RUN,
    Perm.COMPLAINT_LOG,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.CLIENT: frozenset(),
    Role.ACCOUNT_OFFICER: frozenset(_OFFICER),
    Role.CREDIT_MANAGER: frozenset(
        _OFFICER
        | {
            Perm.APPLICATION_SECOND_APPROVE,
            Perm.FACILITY_SUSPEND,
            Perm.POLICY_APPROVE,
            Perm.PRICE_OVERRIDE,
            Perm.MARGIN_CALL_RESOLVE,
            Perm.CAPITAL_VIEW,
            Perm.CAPITAL_PROPOSE,
            Perm.DEVIATION_PROPOSE,
            Perm.DEVIATION_APPROVE,
            # Related-client groups: credit managers see the links in applications and compliance monitors
            # concentration; account officers, who act for the clients, do not set their clients' groups.
            Perm.CLIENT_GROUP_PROPOSE,
            Perm.CLIENT_GROUP_APPROVE,
        }
    ),
    Role.COMPLIANCE: frozenset(
        {
            Perm.WORKBENCH_ACCESS,
            Perm.AUDIT_VIEW,
            Perm.SCREENING_REVIEW,
            Perm.SUITABILITY_REVIEW,
            Perm.ONBOARDING_REVIEW,
            Perm.DISCLOSURE_REPORT,
            Perm.RISK_VIEW,
            Perm.REPORT_VIEW,
            Perm.CAPITAL_VIEW,
            Perm.CAPITAL_APPROVE,
            Perm.DEVIATION_PROPOSE,
            Perm.DEVIATION_APPROVE,
            Perm.CLIENT_GROUP_PROPOSE,
            Perm.CLIENT_GROUP_APPROVE,
            Perm.COMPLAINT_LOG,
            Perm.COMPLAINT_HANDLE,
            Perm.RECORD_REQUEST,
            Perm.DISPOSAL_REQUEST,
            Perm.DISPOSAL_APPROVE,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Perm.WORKBENCH_ACCESS, Perm.AUDIT_VIEW, Perm.DISCLOSURE_MANAGE, Perm.DISCLOSURE_REPORT, Perm.WATCHLIST_MANAGE,
            Perm.REPORT_VIEW, Perm.CAPITAL_VIEW, Perm.COMPLAINT_LOG, Perm.DISPOSAL_APPROVE,
        }
    ),
}

# Django-admin model permissions per role: admins maintain records (never delete:
# regulated records are not hard-deleted), compliance reads everything. Role groups
# and permissions themselves are read-only for everyone: a role's permissions are
# this table, and people change roles only through the audited user services.
ADMIN_APPS = ("portal", "onboarding", "disclosures", "lending", "risk", "collateral", "reporting", "recovery", "django_celery_beat")
READ_ONLY_ADMIN_APPS = ("auth",)
ROLE_MODEL_ACTIONS: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: ("add", "change", "view"),
    Role.COMPLIANCE: ("view",),
}
# Roles that may open the Django admin at all.
ADMIN_SITE_ROLES = frozenset({Role.ADMIN, Role.COMPLIANCE})


def role_permission_keys(role: Role) -> frozenset[tuple[str, str]]:
    """Exactly the ``(app_label, codename)`` pairs ``role`` holds: its named permissions
    plus one model permission per admin-site model and declared action, nothing by pattern."""
    from django.apps import apps

    keys = {("portal", perm.codename) for perm in ROLE_PERMISSIONS[role]}
    actions = ROLE_MODEL_ACTIONS.get(role, ())
    for app_label in (*ADMIN_APPS, *READ_ONLY_ADMIN_APPS):
        allowed = actions if app_label in ADMIN_APPS else tuple(a for a in actions if a == "view")
        for model in apps.get_app_config(app_label).get_models():
            keys |= {(model._meta.app_label, f"{action}_{model._meta.model_name}") for action in allowed}
    return frozenset(keys)
