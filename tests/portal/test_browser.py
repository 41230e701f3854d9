"""Headless Chromium through the real pages: a client signs up, an officer signs in with TOTP."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from portal.models import AuditEvent, User
from tests.helpers import browser_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_client_signs_up_confirms_the_email_and_reaches_the_dashboard(page, live_server):
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", "dora@example.com")
    page.fill("input[name=password1]", "Sturdy-Passphrase-77")
    page.fill("input[name=password2]", "Sturdy-Passphrase-77")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))

    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail.outbox[0].body).group(1)
    page.goto(link)
    page.click("main form button[type=submit]")  # allauth confirms by POST
    page.wait_for_url(re.compile(r"/accounts/login/"))

    page.fill("input[name=login]", "dora@example.com")
    page.fill("input[name=password]", "Sturdy-Passphrase-77")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert "Welcome" in page.inner_text("h1")
    user = User.objects.get(email="dora@example.com")
    assert user.role_names == {"client"}
    assert AuditEvent.objects.filter(action="user.role_assigned", object_id=str(user.pk)).exists()


def test_an_officer_signs_in_with_password_and_totp_and_reaches_the_workbench(page, live_server, officer):
    browser_sign_in(page, officer)
    page.wait_for_url(re.compile(r"/workbench/$"))
    assert page.inner_text("h1") == "Workbench"
    assert page.locator("[data-testid=notifications]").is_visible()
