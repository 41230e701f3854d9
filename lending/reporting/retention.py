"""Retention rules per regulated record type, and which records fall due.

* client, collateral and margin records: at least 7 years from the record's date (SMF Guidelines,
  Cap. 571 record-keeping; DESIGN "Records");
* due-diligence records (KYC profile, professional-investor attestation and evidence, suitability and
  knowledge assessments): at least 5 years after the relationship ends. A relationship ends when the
  client has facilities and every one is closed (the latest ``closed_at``); a client with an open
  facility, or none at all, has no recorded end, so those records are kept.

Nothing here deletes: the due report feeds a disposal request that a second person approves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.apps import apps
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.utils.translation import gettext_lazy as _

from lending.risk.revaluation import HK

CLIENT, COLLATERAL, MARGIN, DUE_DILIGENCE = "client", "collateral", "margin", "due_diligence"
CATEGORY_LABELS = {
    CLIENT: _("Client record"), COLLATERAL: _("Collateral record"), MARGIN: _("Margin record"), DUE_DILIGENCE: _("Due-diligence record"),
}


@dataclass(frozen=True)
class Rule:
    label: str  # app_label.model
    name: object  # lazy translated
    category: str
    years: int
    date_field: str = ""  # for rules counted from the record's own date
    client_path: str = ""  # for rules counted from the relationship's end

    @property
    def model(self):
        return apps.get_model(self.label)

    @property
    def after_relationship(self) -> bool:
        return bool(self.client_path)


RULES = [
    Rule("lending.facilityapplication", _("Facility applications and review steps"), CLIENT, 7, date_field="created_at"),
    Rule("lending.facility", _("Facilities"), CLIENT, 7, date_field="opened_at"),
    Rule("lending.facilitytransaction", _("Ledger entries"), CLIENT, 7, date_field="created_at"),
    Rule("disclosures.acknowledgement", _("Risk-disclosure acknowledgements"), CLIENT, 7, date_field="acknowledged_at"),
    Rule("reporting.complaint", _("Complaints"), CLIENT, 7, date_field="received_at"),
    Rule("reporting.groupmembership", _("Related-client group memberships"), CLIENT, 7, date_field="proposed_at"),
    Rule("servicing.statement", _("Statements of account"), CLIENT, 7, date_field="issued_at"),
    Rule("lending.collateralposition", _("Collateral positions"), COLLATERAL, 7, date_field="facility__opened_at"),
    Rule("risk.valuationsnapshot", _("End-of-day valuation snapshots"), COLLATERAL, 7, date_field="created_at"),
    Rule("risk.collateraltopup", _("Collateral top-ups"), COLLATERAL, 7, date_field="created_at"),
    Rule("risk.margincall", _("Margin calls"), MARGIN, 7, date_field="opened_at"),
    Rule("risk.bandchange", _("Band changes"), MARGIN, 7, date_field="at"),
    Rule("onboarding.clientprofile", _("Client profiles (KYC)"), DUE_DILIGENCE, 5, client_path="user_id"),
    Rule("onboarding.piattestation", _("Professional-investor attestations"), DUE_DILIGENCE, 5, client_path="client_id"),
    Rule("onboarding.pievidence", _("Professional-investor evidence files"), DUE_DILIGENCE, 5, client_path="attestation__client_id"),
    Rule("onboarding.suitabilityassessment", _("Suitability and knowledge assessments"), DUE_DILIGENCE, 5, client_path="client_id"),
]
RULES_BY_LABEL = {r.label: r for r in RULES}


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def relationship_end():
    """A subquery: the client's relationship end (latest facility close), null while any facility is open."""
    from lending.models import Facility

    per_client = Facility.objects.filter(client_id=OuterRef("cid")).values("client_id")
    ended = per_client.annotate(open=Count("id", filter=Q(closed_at__isnull=True)), last=Max("closed_at")).filter(open=0).values("last")[:1]
    return Subquery(ended)


def due_queryset(rule: Rule, *, as_of: date) -> QuerySet:
    """The records of one type whose retention period has run out by ``as_of``."""
    cutoff = datetime.combine(_years_before(as_of, rule.years), time.max, tzinfo=HK)
    qs = rule.model.objects.all()
    if rule.after_relationship:
        return qs.annotate(cid=F(rule.client_path)).annotate(ended=relationship_end()).filter(ended__isnull=False, ended__lte=cutoff)
    return qs.filter(**{f"{rule.date_field}__lte": cutoff})


def due_report(*, as_of: date) -> list[dict]:
    """Per rule: the count due now and the oldest record's date (one aggregate query per rule)."""
    out = []
    for rule in RULES:
        due = due_queryset(rule, as_of=as_of)
        row = {"rule": rule, "due": due.count()}
        if not rule.after_relationship:
            row["oldest"] = rule.model.objects.aggregate(m=Min(rule.date_field))["m"]
        out.append(row)
    return out
