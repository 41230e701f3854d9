from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _client_panel(request):
    """"Risk disclosures: N outstanding" on the client dashboard: one query."""
    try:
        from onboarding.selectors import disclosure_statuses_for_request

        by_product = disclosure_statuses_for_request(request=request)  # shared with the checklist's eligibility
    except ImportError:
        from . import selectors

        by_product = selectors.statuses_by_product(user=request.user)
    documents = {}
    for statuses in by_product.values():
        for status in statuses:
            if not status.acknowledged:
                documents[status.code] = status
    return "disclosures/panel.html", {"outstanding": len(documents), "documents": list(documents.values())}


class DisclosuresConfig(AppConfig):
    name = "disclosures"
    verbose_name = _("Risk disclosures")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal import navigation
        from portal.celery import schedule
        from portal.permissions import Perm

        navigation.register_client_nav(navigation.NavItem(_("Risk disclosures"), "disclosures:index", order=30))
        navigation.register_client_nav(navigation.NavItem(_("Receipts"), "disclosures:receipts", order=35))
        navigation.register_staff_nav(
            navigation.NavItem(_("Disclosure reports"), "disclosures:compliance", Perm.DISCLOSURE_REPORT, order=600)
        )
        navigation.register_client_panel(navigation.Panel("disclosures", _client_panel, order=30))
        schedule("disclosures-fanout-resume", "disclosures.tasks.reacknowledgement_fanouts_resume", 600.0)
