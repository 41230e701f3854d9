from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

RECORD_LINKS = {
    "lending.facilityapplication": "lending:review",
    "lending.facility": "lending:staff-facility",
    "risk.margincall": "risk:call",
    "risk.stressreport": "risk:stress-report",
    "onboarding.piattestation": "onboarding:staff-attestation",
    "onboarding.suitabilityassessment": "onboarding:staff-assessment",
    "onboarding.perpetualsaccessrequest": "onboarding:staff-perpetuals",
    "portal.user": "onboarding:staff-client",
    "disclosures.acknowledgement": "disclosures:compliance-receipt",
    "disclosures.documentversion": "disclosures:compliance-version",
    "reporting.deviation": "reporting:deviation",
    "reporting.complaint": "reporting:complaint",
    "reporting.smfpack": "reporting:pack",
    "reporting.relatedclientgroup": "reporting:group",
    "reporting.groupmembership": "reporting:membership",
    "reporting.capitalentry": "reporting:capital-entry",
    "reporting.recordrequest": "reporting:record-request",
    "reporting.disposalrequest": "reporting:disposal",
}


class ReportingConfig(AppConfig):
    """Compliance and management reporting: the SMF control pack, capital, deviations, complaints,
    record requests, retention and the list exports.

    A nested app of ``lending`` that only reads the other apps (through their selectors and models)
    and writes its own registers.
    """

    name = "lending.reporting"
    label = "reporting"
    verbose_name = _("Compliance reporting")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from celery.schedules import crontab

        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        nav = navigation.register_staff_nav
        nav(navigation.NavItem(_("SMF control pack"), "reporting:packs", Perm.REPORT_VIEW, order=60))
        nav(navigation.NavItem(_("Capital"), "reporting:capital", Perm.CAPITAL_VIEW, order=61))
        nav(navigation.NavItem(_("Deviations"), "reporting:deviations", Perm.REPORT_VIEW, order=62))
        nav(navigation.NavItem(_("Complaints"), "reporting:complaints", Perm.COMPLAINT_LOG, order=63))
        nav(navigation.NavItem(_("Record requests"), "reporting:record-requests", Perm.RECORD_REQUEST, order=64))
        nav(navigation.NavItem(_("Retention"), "reporting:retention", Perm.REPORT_VIEW, order=65))
        nav(navigation.NavItem(_("Related-client groups"), "reporting:groups", Perm.RISK_VIEW, order=66))
        nav(navigation.NavItem(_("Valuation snapshots"), "reporting:snapshots", Perm.RISK_VIEW, order=66))
        nav(navigation.NavItem(_("Band changes"), "reporting:band-changes", Perm.RISK_VIEW, order=67))
        navigation.register_client_nav(navigation.NavItem(_("Complaints"), "reporting:my-complaints", order=90))

        # Each audit-trail row links to the staff page of its record.
        from portal.selectors import register_record_link

        for object_type, url_name in RECORD_LINKS.items():
            register_record_link(object_type, url_name)

        # Daily; stores last month's pack once (the first run of each month), so a missed day catches up.
        schedule("reporting-smf-monthly", "lending.reporting.tasks.smf_pack_monthly", crontab(hour=7, minute=0))
        schedule("reporting-complaints-escalate", "lending.reporting.tasks.complaints_escalate_overdue", crontab(minute=20))
