"""Every reporting page and export refuses outsiders: anonymous visitors, clients, and staff without the right."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

COMPLIANCE_PAGES = [
    "/reporting/packs/", "/reporting/capital/", "/reporting/deviations/", "/reporting/complaints/", "/reporting/complaints/new/",
    "/reporting/record-requests/", "/reporting/retention/", "/reporting/snapshots/", "/reporting/band-changes/",
    "/reporting/export/audit.csv", "/reporting/export/audit.xlsx", "/reporting/export/snapshots.csv",
    "/reporting/export/band-changes.xlsx", "/reporting/export/complaints.csv", "/reporting/groups/",
    "/reporting/export/group-members.csv", "/reporting/export/group-members.xlsx",
]
# Pages an account officer must not open (compliance's registers, record requests, audit exports).
OFFICER_REFUSED = [
    "/reporting/packs/", "/reporting/deviations/", "/reporting/record-requests/", "/reporting/retention/",
    "/reporting/export/audit.csv", "/reporting/export/complaints.csv", "/reporting/capital/",
]


@pytest.mark.parametrize("url", COMPLIANCE_PAGES)
def test_compliance_opens_every_reporting_page(client, compliance_user, url):
    client.force_login(compliance_user)
    response = client.get(url)
    assert response.status_code == 200, url


@pytest.mark.parametrize("url", COMPLIANCE_PAGES + ["/reporting/my-complaints/"])
def test_anonymous_visitor_is_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url", COMPLIANCE_PAGES)
def test_client_is_refused(client, alice, url):
    client.force_login(alice)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", OFFICER_REFUSED)
def test_account_officer_is_refused_compliance_pages(client, officer, url):
    client.force_login(officer)
    assert client.get(url).status_code == 403


def test_staff_cannot_open_the_client_complaint_page(client, compliance_user):
    client.force_login(compliance_user)
    assert client.get("/reporting/my-complaints/").status_code == 403


def test_unknown_export_list_or_format_is_404(client, compliance_user):
    client.force_login(compliance_user)
    assert client.get("/reporting/export/passwords.csv").status_code == 404
    assert client.get("/reporting/export/audit.pdf").status_code == 404


def test_exports_follow_each_list_permission(client, officer, compliance_user):
    client.force_login(officer)
    assert client.get("/reporting/export/applications.csv").status_code == 200
    assert client.get("/reporting/export/facilities.xlsx").status_code == 200
    assert client.get("/reporting/export/margin-calls.csv").status_code == 200
    client.force_login(compliance_user)
    assert client.get("/reporting/export/applications.csv").status_code == 403
    assert client.get("/reporting/export/margin-calls.csv").status_code == 403


def test_pack_and_record_archive_are_refused_to_a_credit_manager(client, credit_manager, compliance_user, alice):
    from django.utils import timezone

    from lending.reporting import services

    pack = services.smf_pack_generate(actor=compliance_user, as_of=timezone.localdate())
    request = services.record_request_create(actor=compliance_user, client=alice, basis="client", reference="DAR-1")
    client.force_login(credit_manager)
    for url in (f"/reporting/packs/{pack.pk}/", f"/reporting/packs/{pack.pk}/pack.xlsx", f"/reporting/record-requests/{request.pk}/archive.zip"):
        assert client.get(url).status_code == 403, url
    client.logout()
    for url in (f"/reporting/packs/{pack.pk}/pack.xlsx", f"/reporting/record-requests/{request.pk}/archive.zip"):
        assert client.get(url).status_code == 302, url
