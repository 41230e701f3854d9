"""Demo reporting data, made through the services: last month's SMF pack (as the monthly job stores it)
and today's on demand, a capital entry approved and one awaiting approval, a deviation, complaints
open, acknowledged, escalated and closed, a client record archive, and related-client groups (members in force,
awaiting approval, leaving and left).

Run by ``manage.py seed_demo`` after the risk demo. Idempotent (keyed on the deviations register).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from lending.risk.revaluation import HK
from portal.models import User

from . import selectors, services, smf
from .models import Deviation, RelatedClientGroup


def _complaint(*, logger, client, subject, details, channel="portal", hours_ago=0):
    received = timezone.now() - timedelta(hours=hours_ago)
    if client is not None and logger == client:
        return services.complaint_log(actor=client, subject=subject, details=details)
    return services.complaint_log(actor=logger, client=client, complainant_name=(client.full_name if client else "Mr Chan Tai Man"),
                                  complainant_contact=(client.email if client else "+852 9123 4567"), channel=channel,
                                  received_at=received, subject=subject, details=details)


def _seed_groups(*, manager, compliance, clients: list) -> str:
    """Two related-client groups made through the services (maker: the credit manager; checker: compliance)."""
    if RelatedClientGroup.objects.exists() or len(clients) < 6:
        return "groups already seeded" if len(clients) >= 6 else "no groups (too few demo borrowers)"
    today = timezone.localdate()
    since = today - timedelta(days=120)

    def member(group, client, relationship, *, approve=True):
        m = services.client_group_member_propose(actor=manager, group_id=group.pk, client=client, relationship=relationship,
                                                 reason="Seen in the KYC file and the account-opening documents.", effective_from=since)
        if approve:
            services.client_group_member_decide(actor=compliance, membership_id=m.pk, approve=True, note="Checked against the KYC file.")
        return m

    with transaction.atomic():
        family = services.client_group_create(actor=manager, name="Chan family", basis="family",
                                              description="Spouses and an adult child with joint bank accounts: one household's wealth backs all three.")
        member(family, clients[0], "head of household")
        member(family, clients[1], "spouse")
        member(family, clients[2], "adult child", approve=False)  # awaiting the checker
        corporate = services.client_group_create(actor=compliance, name="Kowloon Holdings group", basis="corporate_group",
                                                 description="Investment companies under one parent; the same director signs for each.")
        member(corporate, clients[3], "subsidiary, 100% owned")
        left = member(corporate, clients[4], "former associate, 30% owned")
        services.client_group_member_end_propose(actor=compliance, membership_id=left.pk, end_on=today - timedelta(days=10),
                                                 reason="Parent sold its stake (share transfer seen).")
        services.client_group_member_end_decide(actor=manager, membership_id=left.pk, approve=True, note="Transfer form checked.")
        leaving = member(corporate, clients[5], "sister company, common director")
        services.client_group_member_end_propose(actor=manager, membership_id=leaving.pk, end_on=today, reason="Director resigned today.")
    return f"related-client groups {family.reference} (2 in force, 1 awaiting approval) and {corporate.reference} (1 left, 1 leaving)"


def seed(stdout) -> None:
    from lending.risk import services as risk_services

    compliance = User.objects.get(email="compliance@demo.vamargin.hk")
    manager = User.objects.get(email="manager@demo.vamargin.hk")
    borrowers = list(User.objects.filter(groups__name="client", email__startswith="borrower").order_by("email")[:12])
    groups = _seed_groups(manager=manager, compliance=compliance, clients=borrowers[6:12] if len(borrowers) >= 12 else borrowers[:6])
    if Deviation.objects.exists():
        stdout.write(f"  reporting demo already seeded; {groups}")
        return
    officer = User.objects.get(email="officer@demo.vamargin.hk")
    today = timezone.localdate()
    month_end = smf.last_month_end(today)
    with transaction.atomic():
        # Demo only: the end-of-day record of last month's last day is the current book (the demo book is new).
        risk_services.snapshots_take(day=month_end)
        risk_services.stress_monthly_report(now=datetime.combine(month_end, time(12, 0), tzinfo=HK))
        drawn = selectors.total_margin_loans()
        capital = max(Decimal("1000000.00"), (drawn / Decimal("3.2")).quantize(Decimal("1000")))
        entry = services.capital_propose(actor=manager, as_of=month_end, liquid_capital=capital, source_reference=f"FRR return {month_end:%b %Y}",
                                         reason="Month-end liquid capital from finance")
        services.capital_approve(actor=compliance, entry_id=entry.pk, note="Agreed to the FRR return.")
        services.capital_propose(actor=manager, as_of=today, liquid_capital=capital + Decimal("5000000"), source_reference="Finance flash figure",
                                 reason="Intra-month update after retained profit")
        deviation = services.deviation_propose(
            actor=compliance, area="client_concentration", benchmark="Largest client at most 10% of total margin loans",
            departure="During the launch phase the largest VA-margin client holds more than 10% of the (small) book.",
            justification="The book is new; concentration falls as clients are onboarded.",
            compensating_control="Weekly review of the top-10 clients by the credit manager; no limit increase for the largest client.",
            review_date=today + timedelta(days=90),
        )
        services.deviation_approve(actor=manager, deviation_id=deviation.pk, note="Approved for one quarter.")
    clients = list(User.objects.filter(groups__name="client", email__startswith="borrower").order_by("email")[:6])
    with transaction.atomic():
        handled = []
        for client in clients:
            probe = _complaint(logger=client, client=client, subject="Statement query", details="My statement shows a fee I do not recognise.")
            if compliance.pk not in services.complaint_involved_ids(probe):
                handled.append(probe)
            if len(handled) == 3:
                break
        phone = _complaint(logger=officer, client=None, channel="phone", hours_ago=30, subject="Delay answering a margin call query",
                           details="Caller says nobody returned his call about a margin call notice.")
        handled.append(phone)
        states = []
        for i, complaint in enumerate(handled):
            services.complaint_assign(actor=compliance, complaint_id=complaint.pk, assignee=compliance)
            if i == 0:
                states.append("open")
                continue
            services.complaint_acknowledge(actor=compliance, complaint_id=complaint.pk, text="Thank you; we are looking into this and will reply by the date above.")
            if i == 1:
                states.append("acknowledged")
            elif i == 2:
                services.complaint_escalate(actor=compliance, complaint_id=complaint.pk, reason="Needs the credit manager's review of the fee schedule.")
                states.append("escalated")
            else:
                services.complaint_close(actor=compliance, complaint_id=complaint.pk, outcome="upheld",
                                         text="We apologise: the call-back was missed. The officer has been reminded of the call-back rule.")
                states.append("closed")
    monthly = services.smf_pack_monthly()
    today_pack = services.smf_pack_generate(actor=compliance, as_of=today)
    request = None
    if clients:
        request = services.record_request_create(actor=compliance, client=clients[0], basis="client", reference="DAR-DEMO-1")
    stdout.write(
        f"  SMF pack for {month_end} (monthly{'' if monthly else ', already stored'}) and as at {today} (on demand, v{today_pack.version}); "
        f"capital HK${capital:,} approved, one entry awaiting approval; deviation {deviation.reference}; complaints {', '.join(states)}; "
        f"{'record archive REQ-' + str(request.pk) if request else 'no record archive'}; {groups}"
    )
