"""Lending pages in Traditional Chinese, and the Django admin: regulated records read-only."""

from __future__ import annotations

import pytest

from lending.models import AppState, FacilityApplication, ReviewStep, WatchListEntry
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def _zh(client, user):
    client.force_login(user)
    response = client.post("/language/", {"language": "zh-hant", "next": "/"})
    assert response.status_code in (302, 303), response.status_code


def test_client_pages_render_in_traditional_chinese(client, reviewed, eligible_client):
    _zh(client, eligible_client)
    home = client.get("/lending/").content.decode()
    assert "保證金融資" in home
    detail = client.get(f"/lending/applications/{reviewed.pk}/").content.decode()
    assert "信貸審查" in detail and "抵押品" in detail and "貸款價值" in detail
    form = client.get("/lending/apply/").content.decode()
    assert "申請額度（港元）" in form and "扣減率" in form


def test_workbench_pages_render_in_traditional_chinese(client, reviewed, officer):
    _zh(client, officer)
    queue = client.get("/lending/staff/queue/").content.decode()
    assert "待決定" in queue
    review = client.get(f"/lending/staff/applications/{reviewed.pk}/").content.decode()
    assert "第二審批" in review or "雙人覆核" in review
    assert "觀察名單" in client.get("/lending/staff/watchlist/").content.decode()
    assert "抵押品政策" in client.get("/lending/staff/policy/").content.decode()


# --- Django admin -----------------------------------------------------------------------

READ_ONLY = ["facilityapplication", "reviewstep", "facility", "collateralposition", "facilitytransaction", "collateralpolicy", "price", "currentprice"]


def test_admin_lists_every_lending_record_but_offers_no_add_or_delete(client, admin_user, reviewed):
    client.force_login(admin_user)
    for model in READ_ONLY:
        listing = client.get(f"/admin/lending/{model}/")
        assert listing.status_code == 200, model
        assert client.get(f"/admin/lending/{model}/add/").status_code == 403, model
    change = client.get(f"/admin/lending/facilityapplication/{reviewed.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert client.get(f"/admin/lending/facilityapplication/{reviewed.pk}/delete/").status_code == 403


def test_admin_cannot_change_an_application_state_or_amount(client, admin_user, reviewed):
    client.force_login(admin_user)
    response = client.post(f"/admin/lending/facilityapplication/{reviewed.pk}/change/", {"state": "approved", "approved_limit": "99999999", "requested_limit": "1"})
    assert response.status_code == 403
    app = FacilityApplication.objects.get(pk=reviewed.pk)
    assert app.state == AppState.AWAITING_DECISION and app.approved_limit is None


def test_admin_cannot_delete_review_steps_in_bulk(client, admin_user, reviewed):
    client.force_login(admin_user)
    ids = list(ReviewStep.objects.filter(application=reviewed).values_list("pk", flat=True))
    client.post("/admin/lending/reviewstep/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert ReviewStep.objects.filter(application=reviewed).count() == len(ids)


def test_admin_adds_a_watch_list_name_through_the_audited_service(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/lending/watchlistentry/add/", {"name": "CHEUNG, Ka Ho", "aliases": "Cheung Ka-ho\n張家豪", "category": "sanctions", "note": "OFAC"})
    assert response.status_code == 302, response.content[:2000]
    entry = WatchListEntry.objects.get(name="CHEUNG, Ka Ho")
    assert entry.added_by == admin_user and entry.active
    event = AuditEvent.objects.get(action="lending.watchlist.added", object_id=str(entry.pk))
    assert event.actor == admin_user and event.after["aliases"] == "Cheung Ka-ho\n張家豪"


def test_admin_deactivates_watch_list_entries_with_an_audited_action_and_never_deletes(client, admin_user, officer):
    from lending import services

    entry = services.watchlist_add(actor=officer, name="PETROV, Ivan")
    client.force_login(admin_user)
    client.post("/admin/lending/watchlistentry/", {"action": "deactivate", "_selected_action": [entry.pk]})
    assert not WatchListEntry.objects.get(pk=entry.pk).active
    assert AuditEvent.objects.filter(action="lending.watchlist.deactivated", object_id=str(entry.pk), actor=admin_user).exists()
    client.post("/admin/lending/watchlistentry/", {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert WatchListEntry.objects.filter(pk=entry.pk).exists()
    response = client.post(f"/admin/lending/watchlistentry/{entry.pk}/change/", {"name": "Someone else", "category": "pep"})
    assert response.status_code == 403 and WatchListEntry.objects.get(pk=entry.pk).name == "PETROV, Ivan"


def test_compliance_reads_the_lending_admin_but_cannot_add_to_the_watch_list(client, compliance_user, reviewed):
    client.force_login(compliance_user)
    assert client.get("/admin/lending/facilityapplication/").status_code == 200
    assert client.get("/admin/lending/watchlistentry/add/").status_code == 403
