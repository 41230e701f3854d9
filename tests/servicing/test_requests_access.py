"""Request pages and API: the owner only, staff by permission, outsiders refused; errors in the portal's shape."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lending.servicing import requests
from lending.servicing.models import ServicingRequest
from tests.servicing.conftest import make_facility
from tests.servicing.test_requests import _custody

pytestmark = pytest.mark.django_db
CLIENT_PAGE_QUERIES = 15  # … the client's free holdings to pledge (one query), whether the client has an authenticator (portal.mfa),
# and the collateral policy and current prices (two): the facility valued now (lending.selectors.facility_valued_now)


@pytest.fixture
def live(alice, book, facts):
    from lending.risk.revaluation import revalue_book

    facility = make_facility(alice, securities=(("10000000", "0.30"),), btc="2")
    revalue_book()
    return facility


def test_anonymous_is_refused_everywhere(client, api_client, live):
    for path in [f"/servicing/facilities/{live.pk}/requests/", "/servicing/addresses/", "/servicing/addresses/confirm/x/", "/servicing/staff/requests/"]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    for path in [f"/api/v1/servicing/facilities/{live.pk}/drawdown-requests/", f"/api/v1/servicing/facilities/{live.pk}/repayment-notices/",
                 f"/api/v1/servicing/facilities/{live.pk}/top-up-requests/", f"/api/v1/servicing/facilities/{live.pk}/release-requests/",
                 "/api/v1/servicing/staff/requests/1/approve/", "/api/v1/servicing/staff/requests/1/refuse/"]:
        assert api_client.post(path, {}, format="json").status_code in (401, 403), path
    for path in [f"/api/v1/servicing/facilities/{live.pk}/requests/", "/api/v1/servicing/statements/", "/api/v1/servicing/staff/requests/"]:
        assert api_client.get(path).status_code in (401, 403), path


def test_another_client_cannot_touch_the_facility(client, api_client, live, charlie):
    client.force_login(charlie)
    assert client.get(f"/servicing/facilities/{live.pk}/requests/").status_code == 404
    assert client.get("/servicing/staff/requests/").status_code == 403
    api_client.force_login(charlie)
    response = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/drawdown-requests/", {"amount": "1000"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_client.get(f"/api/v1/servicing/facilities/{live.pk}/requests/").json()["results"] == []
    assert api_client.post("/api/v1/servicing/staff/requests/1/approve/", {}, format="json").status_code == 403
    assert not ServicingRequest.objects.exists()


def test_the_client_requests_a_drawdown_through_the_api_and_an_officer_approves_it(api_client, live, alice, officer, client):
    api_client.force_login(alice)
    bad = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/drawdown-requests/", {"amount": "-5"}, format="json")
    assert bad.status_code == 400 and "amount" in bad.json()["error"]["fields"]
    response = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/drawdown-requests/", {"amount": "750000"}, format="json",
                               HTTP_IDEMPOTENCY_KEY="dd-1")
    assert response.status_code == 201 and response.json()["state"] == "requested"
    again = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/drawdown-requests/", {"amount": "750000"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="dd-1")
    assert again.json()["id"] == response.json()["id"] and ServicingRequest.objects.count() == 1
    client.force_login(officer)
    page = client.get("/servicing/staff/requests/").content.decode()
    assert ServicingRequest.objects.get().reference in page
    client.post("/servicing/staff/requests/", {"action": "approve", "request_id": response.json()["id"]})
    assert ServicingRequest.objects.get().state == "executed"


def test_a_release_breaching_the_initial_level_is_a_409_and_stays_on_record(api_client, live, alice, officer2):
    requests.staff_instruction(actor=officer2, facility_id=live.pk, kind="drawdown", amount="5000000")
    securities = live.positions.get(kind="securities")
    api_client.force_login(alice)
    response = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/release-requests/", {"position_id": securities.pk}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "release_above_initial_level"
    assert ServicingRequest.objects.get(kind="release").state == "refused"
    btc = live.positions.get(asset="BTC")
    response = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/release-requests/", {"position_id": btc.pk, "quantity": "0.1"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "stepup_required"


def test_the_facility_requests_page_sends_a_va_withdrawal_through_mfa_step_up(client, live, alice):
    import time_machine
    from django.utils import timezone

    client.force_login(alice)  # a sign-in with the second factor, now
    page = client.get(f"/servicing/facilities/{live.pk}/requests/")
    assert page.status_code == 200 and "Request a drawdown" in page.content.decode()
    assert 'data-testid="mfa-enrol-needed"' not in page.content.decode()
    btc = live.positions.get(asset="BTC")
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):  # the step-up window is 5 minutes
        response = client.post(f"/servicing/facilities/{live.pk}/requests/", {"action": "release", "position_id": btc.pk, "quantity": "0.1"})
    assert response.status_code == 302 and "/accounts/2fa/reauthenticate/" in response["Location"]
    assert not ServicingRequest.objects.exists()


def test_a_client_without_an_authenticator_is_sent_to_enrol_before_a_drawdown_or_release(client, api_client, book, facts):
    from lending.models import Facility
    from lending.risk.revaluation import revalue_book
    from tests.helpers import make_user

    dora = make_user("client", email="dora@example.com", full_name="Dora No-MFA")
    facility = make_facility(dora, securities=(("10000000", "0.30"),), btc="2")
    revalue_book()
    client.force_login(dora)
    page = client.get(f"/servicing/facilities/{facility.pk}/requests/").content.decode()
    assert 'data-testid="mfa-enrol-needed"' in page and "/accounts/2fa/totp/activate/" in page
    response = client.post(f"/servicing/facilities/{facility.pk}/requests/", {"action": "drawdown", "amount": "1000"}, follow=True)
    assert "Set up an authenticator app for your sign-in before a drawdown" in response.content.decode()
    btc = facility.positions.get(asset="BTC")
    response = client.post(f"/servicing/facilities/{facility.pk}/requests/", {"action": "release", "position_id": btc.pk, "quantity": "0.1"})
    assert "/reauthenticate/" not in response["Location"]  # nothing to re-authenticate with: enrol first
    api_client.force_login(dora)
    for path, body in ((f"/api/v1/servicing/facilities/{facility.pk}/drawdown-requests/", {"amount": "1000"}),
                       (f"/api/v1/servicing/facilities/{facility.pk}/release-requests/", {"position_id": btc.pk, "quantity": "0.1"})):
        response = api_client.post(path, body, format="json")
        error = response.json()["error"]
        assert response.status_code == 403 and error["code"] == "mfa_enrolment_required", path
        assert error["fields"]["mfa"] == ["/accounts/2fa/totp/activate/"] and "/accounts/2fa/totp/activate/" in error["message"]
    assert not ServicingRequest.objects.exists() and Facility.objects.get(pk=facility.pk).drawn_balance == 0


def test_an_api_withdrawal_steps_up_with_a_one_time_authenticator_code(api_client, live, alice):
    from lending.servicing.models import WithdrawalAddress
    from tests.helpers import totp_code

    entry, token = requests.address_add(user=alice, asset="BTC", address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    requests.address_confirm(user=alice, token=token)
    WithdrawalAddress.objects.filter(pk=entry.pk).update(state="active")
    _custody(alice, live)
    btc = live.positions.get(asset="BTC")
    api_client.force_login(alice)
    url = f"/api/v1/servicing/facilities/{live.pk}/release-requests/"
    body = {"position_id": btc.pk, "quantity": "0.1", "address_id": entry.pk}
    bad = api_client.post(url, body | {"otp_code": "000000"}, format="json")
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "stepup_invalid" and not ServicingRequest.objects.exists()
    code = totp_code(alice.totp_secret)
    response = api_client.post(url, body | {"otp_code": code}, format="json")
    assert response.status_code == 201, response.json()
    req = ServicingRequest.objects.get()
    assert req.stepup_at is not None and "otp_code" not in response.json()
    replay = api_client.post(url, body | {"otp_code": code}, format="json")  # a code works once
    assert replay.status_code == 403 and replay.json()["error"]["code"] == "stepup_invalid"
    assert ServicingRequest.objects.count() == 1


def _emailed_confirmation_link(user) -> str:
    import re

    from django.core import mail

    [message] = [m for m in mail.outbox if user.email in m.to and "/servicing/addresses/confirm/" in m.body]
    return re.search(r"https?://[^/\s]+(/servicing/addresses/confirm/[^/\s]+/)", message.body).group(1)


def test_the_confirmation_link_of_a_new_address_goes_only_by_email(client, alice, book, django_capture_on_commit_callbacks):
    """The in-portal notification carried the confirmation link, so anyone with the session could confirm an
    address without the email: it now says the email was sent, and only the email has the link."""
    from django.core import mail

    from portal.models import Notification, NotificationDelivery

    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):  # the email goes once the address is committed
        client.post("/servicing/addresses/", {"action": "add", "asset": "BTC", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"})
    note = Notification.objects.get(user=alice, kind="servicing.address.added")
    assert "/confirm/" not in note.link and "/confirm/" not in note.body
    assert "emailed you a link" in note.body
    assert not NotificationDelivery.objects.filter(notification=note).exists()  # the inbox notice is not emailed as well
    assert "/confirm/" not in client.get("/notifications/").content.decode()
    link = _emailed_confirmation_link(alice)
    assert len(mail.outbox) == 1 and "Confirm your new BTC withdrawal address" in mail.outbox[0].subject
    client.post(link)
    from lending.servicing.models import WithdrawalAddress

    assert WithdrawalAddress.objects.get().state == "cooling_off"


def test_addresses_page_adds_and_the_link_confirms_into_cooling_off(client, alice, book, django_capture_on_commit_callbacks):
    from lending.servicing.models import WithdrawalAddress

    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/servicing/addresses/", {"action": "add", "asset": "ETH", "address": "0x" + "b" * 40, "label": "Ledger"})
    entry = WithdrawalAddress.objects.get()
    assert entry.state == "added"
    link = _emailed_confirmation_link(alice)
    assert client.get(link).status_code == 200
    client.post(link)
    entry.refresh_from_db()
    assert entry.state == "cooling_off"
    assert "Cooling off" in client.get("/servicing/addresses/").content.decode()


@pytest.mark.parametrize("n", [1, 6])
def test_request_pages_run_a_constant_number_of_queries(client, live, alice, officer, n, django_assert_num_queries):
    from tests.lending.conftest import give_holdings

    give_holdings(alice)  # ETH in custody to pledge
    for _ in range(n):
        requests.top_up_request(user=alice, facility_id=live.pk, collateral_kind="virtual_asset", asset="ETH", quantity="1", custody_reference="C")
    client.force_login(officer)
    with django_assert_num_queries(9):
        assert client.get("/servicing/staff/requests/").status_code == 200
    client.force_login(alice)
    with django_assert_num_queries(CLIENT_PAGE_QUERIES):
        assert client.get(f"/servicing/facilities/{live.pk}/requests/").status_code == 200


def test_a_client_program_finds_the_position_to_release_in_the_facility_api(api_client, live, alice):
    """The release API takes a ``position_id``; the facility API listed positions without their ids, so a program could
    only guess one."""
    api_client.force_login(alice)
    positions = api_client.get(f"/api/v1/lending/facilities/{live.pk}/").json()["positions"]
    securities = next(p for p in positions if p["kind"] == "securities")
    assert securities["id"] == live.positions.get(kind="securities").pk
    response = api_client.post(f"/api/v1/servicing/facilities/{live.pk}/release-requests/", {"position_id": securities["id"], "quantity": "1"},
                               format="json")
    assert response.status_code == 201, response.content
