"""The related-client group register: maker-checker on every change of members, dated memberships, and the
SMF pack's client-concentration area counting each group as one exposure, checked against a book by hand.

Book (snapshot of 2026-11-30; every facility's limit HK$50,000,000; policy: client limit HK$50,000,000, firm
capacity HK$5,000,000,000, one client at most 10% of it):

* alice: drawn 6,000,000; securities 10,000,000 at 30% → lending value 7,000,000
* charlie: drawn 1,500,000; securities 2,000,000 at 50% → 1,000,000
* dave: drawn 2,500,000; securities 5,000,000 at 40% → 3,000,000

Firm: drawn 10,000,000; limits 150,000,000; lending value 11,000,000.

* "Wong family" (alice + charlie, both approved): drawn 7,500,000 (75.00%), limits 100,000,000 (66.67%),
  lending value 8,000,000 (72.73%); limits above the client limit (100M > 50M); 2.00% of capacity (≤ 10%).
* "Chan guarantee" (dave approved; charlie only proposed, so not counted): drawn 2,500,000 (25.00%),
  limits 50,000,000 (33.33%) exactly the client limit (within), lending value 3,000,000 (27.27%).
* "Old venture" (alice, left on 2026-11-20, the end approved): no member in force, so not listed.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.reporting.conftest import make_facility

pytestmark = pytest.mark.django_db
HK = ZoneInfo("Asia/Hong_Kong")
NOW = datetime(2026, 11, 30, 16, 0, tzinfo=HK)
AS_OF = date(2026, 11, 30)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def dave(db):
    from tests.helpers import make_user

    return make_user("client", email="dave@example.com", full_name="Dave Chan")


def _member(group, client, *, maker, checker, since=date(2026, 11, 1), relationship="family"):
    from lending.reporting import services

    m = services.client_group_member_propose(actor=maker, group_id=group.pk, client=client, relationship=relationship,
                                             reason="KYC file", effective_from=since)
    if checker is not None:
        services.client_group_member_decide(actor=checker, membership_id=m.pk, approve=True)
    return m


@pytest.fixture
def groups_book(frozen, book, alice, charlie, dave, credit_manager, compliance_user):
    from lending.reporting import services
    from lending.risk import services as risk_services

    make_facility(alice, drawn="6000000", securities=(("10000000", "0.30"),))
    make_facility(charlie, drawn="1500000", securities=(("2000000", "0.50"),))
    make_facility(dave, drawn="2500000", securities=(("5000000", "0.40"),))
    risk_services.snapshots_take(day=AS_OF)
    family = services.client_group_create(actor=credit_manager, name="Wong family", basis="family", description="Spouses, joint finances")
    _member(family, alice, maker=credit_manager, checker=compliance_user)
    _member(family, charlie, maker=compliance_user, checker=credit_manager)
    guarantee = services.client_group_create(actor=compliance_user, name="Chan guarantee", basis="guarantor", description="Dave guarantees")
    _member(guarantee, dave, maker=credit_manager, checker=compliance_user, relationship="principal")
    _member(guarantee, charlie, maker=credit_manager, checker=None, relationship="guarantor")  # awaiting approval
    old = services.client_group_create(actor=credit_manager, name="Old venture", basis="common_control", description="Former JV")
    ended = _member(old, alice, maker=credit_manager, checker=compliance_user)
    services.client_group_member_end_propose(actor=compliance_user, membership_id=ended.pk, end_on=date(2026, 11, 20), reason="JV wound up")
    services.client_group_member_end_decide(actor=credit_manager, membership_id=ended.pk, approve=True)
    return {"family": family, "guarantee": guarantee, "old": old, "ended": ended}


def test_group_figures_in_the_pack_match_the_hand_computed_book(groups_book):
    from lending.reporting import smf

    cc = smf.compute(as_of=AS_OF)["client_concentration"]
    assert cc["total_loans"] == "10000000.00" and cc["limits_total"] == "150000000.00" and cc["lending_value_total"] == "11000000.00"
    assert cc["groups_in_force"] == 2 and cc["group_limit_max"] == "50000000.00" and cc["group_share_max"] == "0.1000"
    family, guarantee = cc["groups"]
    assert (family["name"], family["drawn"], family["share_of_loans"], family["limits"], family["share_of_limits"],
            family["lending_value"], family["share_of_lending_value"], family["capacity_share"]) == (
        "Wong family", "7500000.00", "0.7500", "100000000.00", "0.6667", "8000000.00", "0.7273", "0.0200")
    assert family["within_client_limit"] is False and family["within_concentration_max"] is True
    assert [(m["email"], m["drawn"], m["limits"]) for m in family["members"]] == [
        ("alice@example.com", "6000000.00", "50000000.00"), ("charlie@example.com", "1500000.00", "50000000.00")]
    assert family["link"] == f"/reporting/groups/{groups_book['family'].pk}/"
    assert family["members"][0]["link"] == "/lending/staff/facilities/?search=alice%40example.com"
    assert (guarantee["name"], guarantee["drawn"], guarantee["share_of_loans"], guarantee["limits"], guarantee["share_of_limits"],
            guarantee["lending_value"], guarantee["share_of_lending_value"]) == (
        "Chan guarantee", "2500000.00", "0.2500", "50000000.00", "0.3333", "3000000.00", "0.2727")
    assert guarantee["within_client_limit"] is True and [m["email"] for m in guarantee["members"]] == ["dave@example.com"]
    # Top clients show the limits as they stood at the date, the measure the groups use.
    assert [(r["email"], r["limits"]) for r in cc["top"]][:1] == [("alice@example.com", "50000000.00")]


def test_a_membership_counts_only_from_its_approval_and_until_its_approved_end(groups_book, alice, credit_manager, compliance_user):
    from lending.reporting import selectors

    # Approved on 2026-11-30: not in force for 2026-11-29, whatever the effective date says.
    assert selectors.memberships_at(day=date(2026, 11, 29)) == []
    in_force = {(m.group.name, m.client.email) for m in selectors.memberships_at(day=AS_OF)}
    assert in_force == {("Wong family", "alice@example.com"), ("Wong family", "charlie@example.com"), ("Chan guarantee", "dave@example.com")}
    with time_machine.travel(datetime(2026, 12, 3, 10, 0, tzinfo=HK), tick=False):
        # An end awaiting approval still counts (conservative); once approved, it counts no more from its date.
        from lending.reporting import services

        fam = groups_book["family"].memberships.get(client=alice)
        services.client_group_member_end_propose(actor=credit_manager, membership_id=fam.pk, end_on=date(2026, 12, 2), reason="Divorce")
        assert ("Wong family", "alice@example.com") in {(m.group.name, m.client.email) for m in selectors.memberships_at(day=date(2026, 12, 3))}
        services.client_group_member_end_decide(actor=compliance_user, membership_id=fam.pk, approve=True)
        assert ("Wong family", "alice@example.com") not in {(m.group.name, m.client.email) for m in selectors.memberships_at(day=date(2026, 12, 3))}
        # The pack of 30 November re-derives as it was.
        assert ("Wong family", "alice@example.com") in {(m.group.name, m.client.email) for m in selectors.memberships_at(day=AS_OF)}


def test_the_proposer_cannot_approve_and_an_officer_cannot_record(frozen, alice, credit_manager, compliance_user, officer):
    from lending.reporting import services
    from lending.reporting.models import GroupMembership, RelatedClientGroup
    from portal.errors import ForbiddenError
    from portal.models import AuditEvent

    with pytest.raises(ForbiddenError):
        services.client_group_create(actor=officer, name="X", basis="family", description="y")
    group = services.client_group_create(actor=credit_manager, name="Lee family", basis="family", description="Siblings")
    m = services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=alice, relationship="sister",
                                             reason="KYC", effective_from=date(2026, 11, 1))
    with pytest.raises(ForbiddenError) as err:
        services.client_group_member_decide(actor=credit_manager, membership_id=m.pk, approve=True)
    assert err.value.code == "four_eyes"
    with pytest.raises(ForbiddenError):
        services.client_group_member_decide(actor=officer, membership_id=m.pk, approve=True)
    m.refresh_from_db()
    assert m.state == "proposed" and m.decided_by is None
    services.client_group_member_decide(actor=compliance_user, membership_id=m.pk, approve=True, note="checked")
    assert list(AuditEvent.objects.filter(object_type="reporting.groupmembership", object_id=str(m.pk)).values_list("action", flat=True)
                .order_by("id")) == ["reporting.client_group.member_proposed", "reporting.client_group.member_approved"]
    assert AuditEvent.objects.filter(object_type="reporting.relatedclientgroup", action="reporting.client_group.created").count() == 1
    assert RelatedClientGroup.objects.count() == 1 and GroupMembership.objects.get().state == "active"


def test_bad_input_is_refused_with_a_clear_error_and_nothing_changes(frozen, alice, charlie, officer, credit_manager, compliance_user):
    from lending.reporting import services
    from lending.reporting.models import GroupMembership
    from portal.errors import ConflictError, PortalError

    group = services.client_group_create(actor=credit_manager, name="Ho group", basis="corporate_group", description="Same parent")
    with pytest.raises(PortalError) as err:
        services.client_group_create(actor=compliance_user, name="ho GROUP", basis="family", description="dup")
    assert "name" in err.value.fields
    with pytest.raises(PortalError) as err:
        services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=officer, relationship="", reason="r",
                                             effective_from=date(2026, 12, 5))
    assert set(err.value.fields) == {"client", "relationship", "effective_from"}
    m = services.client_group_member_propose(actor=credit_manager, group_id=group.pk, client=alice, relationship="subsidiary",
                                             reason="Registry extract", effective_from=date(2026, 11, 1))
    with pytest.raises(ConflictError):
        services.client_group_member_propose(actor=compliance_user, group_id=group.pk, client=alice, relationship="again", reason="r",
                                             effective_from=date(2026, 11, 1))
    with pytest.raises(PortalError) as err:
        services.client_group_member_decide(actor=compliance_user, membership_id=m.pk, approve=False, note=" ")
    assert "note" in err.value.fields
    with pytest.raises(ConflictError):  # not in force yet: nothing to end
        services.client_group_member_end_propose(actor=compliance_user, membership_id=m.pk, end_on=date(2026, 11, 20), reason="r")
    services.client_group_member_decide(actor=compliance_user, membership_id=m.pk, approve=True)
    with pytest.raises(PortalError) as err:
        services.client_group_member_end_propose(actor=compliance_user, membership_id=m.pk, end_on=date(2026, 11, 1), reason="r")
    assert "end_on" in err.value.fields
    services.client_group_member_end_propose(actor=compliance_user, membership_id=m.pk, end_on=date(2026, 11, 25), reason="Sold")
    with pytest.raises(PortalError):
        services.client_group_member_end_decide(actor=compliance_user, membership_id=m.pk, approve=True)  # the maker of the end
    services.client_group_member_end_decide(actor=credit_manager, membership_id=m.pk, approve=False, note="Not yet completed")
    m.refresh_from_db()
    assert m.state == "active" and m.end_on is None and m.end_proposed_by is None
    assert GroupMembership.objects.count() == 1


def test_pages_show_the_register_and_the_client_record_and_refuse_outsiders(client, groups_book, alice, officer, admin_user, compliance_user):
    fam = groups_book["family"].pk
    assert client.get("/reporting/groups/").status_code == 302
    client.force_login(alice)
    assert client.get("/reporting/groups/").status_code == 403 and client.get(f"/reporting/groups/{fam}/").status_code == 403
    client.force_login(admin_user)  # no risk-view permission
    assert client.get("/reporting/groups/").status_code == 403
    client.force_login(officer)  # reads, cannot record
    assert client.get("/reporting/groups/").status_code == 200
    assert client.post("/reporting/groups/", {"name": "N", "basis": "family", "description": "d"}).status_code == 403
    response = client.post(f"/reporting/groups/{fam}/", {"action": "propose", "client_email": "dave@example.com", "relationship": "cousin",
                                                          "reason": "r", "effective_from": "2026-11-01"}, follow=True)
    assert groups_book["family"].memberships.count() == 2 and "permission" in response.content.decode()
    client.force_login(compliance_user)
    page = client.get("/reporting/groups/").content.decode()
    assert "Wong family" in page and "Chan guarantee" in page
    detail = client.get(f"/reporting/groups/{fam}/").content.decode()
    assert "alice@example.com" in detail and "7,500,000.00" in detail and "reporting.client_group.member_approved" in detail


def test_client_record_lists_the_clients_groups(client, groups_book, alice, compliance_user):
    from onboarding.models import ClientProfile

    ClientProfile.objects.get_or_create(user=alice)
    client.force_login(compliance_user)
    page = client.get(f"/onboarding/staff/clients/{alice.pk}/").content.decode()
    assert 'data-testid="client-groups"' in page and "Wong family" in page and "Old venture" in page and "Left the group" in page


def test_group_pages_run_in_constant_queries(client, groups_book, compliance_user, credit_manager):
    from lending.reporting import services
    from tests.helpers import make_user

    client.force_login(compliance_user)
    fam = groups_book["family"].pk

    def counts():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        out = []
        for url in ("/reporting/groups/", f"/reporting/groups/{fam}/"):
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            out.append(len(ctx.captured_queries))
        return out

    before = counts()
    for i in range(4):
        extra = make_user("client", email=f"kin{i}@example.com")
        services.client_group_member_propose(actor=credit_manager, group_id=fam, client=extra, relationship="cousin", reason="r",
                                             effective_from=date(2026, 11, 1))
        services.client_group_create(actor=credit_manager, name=f"Group {i}", basis="other", description="d")
    assert counts() == before


def test_pack_pdf_and_xlsx_carry_the_groups_in_both_languages(client, groups_book, compliance_user):
    from openpyxl import load_workbook

    from lending.reporting import services
    from portal.pdf import pdf_text

    pack = services.smf_pack_generate(actor=compliance_user, as_of=AS_OF)
    rows = list(load_workbook(io.BytesIO(bytes(pack.xlsx)))["Groups"].iter_rows(values_only=True))
    assert rows[0][0] == "Related-client group / 關連客戶組別"
    assert rows[1][0].endswith("Wong family") and rows[1][2] == 7500000 and rows[1][3] == pytest.approx(0.75) and rows[1][9].startswith("no")
    assert rows[2][0].endswith("Chan guarantee") and rows[2][2] == 2500000 and rows[2][9].startswith("yes")
    text = " ".join(pdf_text(bytes(pack.pdf)).split())  # a narrow table cell wraps the name
    assert "Wong family" in text and "7,500,000.00" in text and "關連客戶組別" in text
    client.force_login(compliance_user)
    page = client.get(f"/reporting/packs/{pack.pk}/").content.decode()
    assert 'data-testid="pack-groups"' in page and f'href="/reporting/groups/{groups_book["family"].pk}/"' in page


def test_group_members_export_as_csv(client, groups_book, compliance_user):
    client.force_login(compliance_user)
    response = client.get("/reporting/export/group-members.csv?q=wong")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert response.status_code == 200 and body.count("Wong family") == 2 and "Chan guarantee" not in body


def test_the_clients_archive_holds_their_memberships_but_not_the_other_members(groups_book, alice, charlie, compliance_user):
    import json
    import zipfile

    from lending.reporting import services
    from lending.reporting.archive import archive_verify

    made = services.record_request_create(actor=compliance_user, client=charlie, basis="client", reference="DAR-G")
    assert archive_verify(bytes(made.archive), manifest_sha256=made.manifest_sha256).ok
    with zipfile.ZipFile(io.BytesIO(bytes(made.archive))) as zf:
        memberships = json.loads(zf.read("reporting/group_memberships.json"))
        groups = json.loads(zf.read("reporting/related_client_groups.json"))
        audit = json.loads(zf.read("audit/audit_events.json"))
        manifest = json.loads(zf.read("manifest.json"))
    assert sorted((m["group_id"], m["state"]) for m in memberships) == sorted(
        [(groups_book["family"].pk, "active"), (groups_book["guarantee"].pk, "proposed")])
    assert {m["client_id"] for m in memberships} == {charlie.pk}
    assert sorted(g["name"] for g in groups) == ["Chan guarantee", "Wong family"]
    assert {a["action"] for a in audit if a["object_type"] == "reporting.groupmembership"} == {
        "reporting.client_group.member_proposed", "reporting.client_group.member_approved"}
    assert manifest["not_held"] == []


def test_memberships_carry_a_seven_year_retention_rule(groups_book):
    from lending.reporting import retention

    rule = retention.RULES_BY_LABEL["reporting.groupmembership"]
    assert (rule.category, rule.years, rule.after_relationship) == ("client", 7, False)
    row = next(r for r in retention.due_report(as_of=AS_OF) if r["rule"].label == "reporting.groupmembership")
    assert row["due"] == 0
    later = next(r for r in retention.due_report(as_of=date(2033, 12, 1)) if r["rule"].label == "reporting.groupmembership")
    assert later["due"] == 5
