"""Shared fixtures: the three users of every access test, staff of each role, services.

alice is the owner (a client), bob is staff, charlie is an outsider (another
client). Tests that need PostgreSQL, Redis or Chromium call ``need_*``; they skip
when it is absent, and fail instead under PORTAL_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os

# Playwright's sync API runs an event loop in the test thread; the ORM calls the
# browser tests make from that thread are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import pytest  # noqa: E402

from tests.helpers import make_user  # noqa: E402


@pytest.fixture(autouse=True)
def _force_login_completes_mfa(monkeypatch):
    """``client.force_login(user)`` stands for a completed sign-in: for a user enrolled in MFA that
    includes the second factor, recorded as allauth records it. tests/portal/test_mfa_sweep.py signs
    in every real way (and makes sessions without the second factor) to prove the gate."""
    import time

    from allauth.account.internal.flows.login import (
        _AUTHENTICATION_METHODS_USER_SESSION_KEY,
        AUTHENTICATION_METHODS_SESSION_KEY,
    )
    from django.test import Client

    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        from portal.mfa import user_has_mfa

        if user_has_mfa(user):
            session = self.session
            session[AUTHENTICATION_METHODS_SESSION_KEY] = [
                {"method": "password", "at": time.time(), "email": user.email},
                {"method": "mfa", "at": time.time(), "type": "totp"},
            ]
            session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
            session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    from portal.celery import app

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Unit tests run tasks in-process, on commit, exactly as a worker would
    # after the transaction; the real-worker tests switch this off.
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    from django.core.cache import cache
    from django.utils import translation

    cache.clear()
    # A request as a zh-Hant user leaves Chinese active in this thread (LocaleMiddleware never
    # deactivates): every test starts in the default language.
    translation.activate(settings.LANGUAGE_CODE)
    yield
    app.conf.task_always_eager = False


def _is_transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return False
    return bool(marker.kwargs.get("transaction") or (marker.args and marker.args[0]))


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Put back the rows the data migrations load (onboarding policy and questionnaire v1, the
    shipped risk disclosure statements) when an earlier transactional test's flush removed them.

    Cheaper and more predictable than serialized_rollback, which also clashes with the role
    groups that post_migrate re-creates after every flush.
    """
    if not _is_transactional(request):
        return
    request.getfixturevalue("transactional_db")
    from importlib import import_module

    from django.apps import apps

    from disclosures.loader import load_shipped_documents

    import_module("onboarding.migrations.0002_policy_and_questionnaire_v1").load(apps, None)
    load_shipped_documents(apps)
    from lending.collateral.services import load_shipped_instruments

    load_shipped_instruments(apps)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private"), "base_url": None},
        },
    }
    return tmp_path / "private"


@pytest.fixture
def alice(db):
    """The owner: a client."""
    return make_user("client", email="alice@example.com", full_name="Alice Wong")


@pytest.fixture
def charlie(db):
    """The outsider: another client, who must never see alice's records."""
    return make_user("client", email="charlie@example.com", full_name="Charlie Outsider")


@pytest.fixture
def bob(db):
    """Staff: an account officer with MFA enrolled."""
    return make_user("account_officer", email="bob@example.com", full_name="Bob Officer")


@pytest.fixture
def officer(bob):
    return bob


@pytest.fixture
def officer2(db):
    return make_user("account_officer", email="olive@example.com", full_name="Olive Officer")


@pytest.fixture
def credit_manager(db):
    return make_user("credit_manager", email="mandy@example.com", full_name="Mandy Manager")


@pytest.fixture
def credit_manager2(db):
    """A second credit manager: the checker of another's proposal."""
    return make_user("credit_manager", email="marcus@example.com", full_name="Marcus Manager")


@pytest.fixture
def compliance_user(db):
    return make_user("compliance", email="connie@example.com", full_name="Connie Compliance")


@pytest.fixture
def admin_user(db):
    return make_user("admin", email="adrian@example.com", full_name="Adrian Admin")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, headless; never a downloaded browser."""
    from tests.helpers import chromium_path

    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _save_browser_artifacts(browser, name: str) -> None:
    """A failed browser test leaves a screenshot and the page text of every open tab."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "test-artifacts"
    folder.mkdir(exist_ok=True)
    for c, context in enumerate(browser.contexts):
        for p, tab in enumerate(context.pages):
            stem = folder / f"{name}-{c}-{p}"
            try:
                tab.screenshot(path=f"{stem}.png", full_page=True)
                stem.with_suffix(".txt").write_text(f"{tab.url}\n\n{tab.inner_text('body')}")
                print(f"browser artifact: {stem}.png ({tab.url})")
            except Exception as exc:  # a crashed tab must not hide the test's own failure
                print(f"browser artifact for {stem} failed: {exc}")


@pytest.fixture
def page(request, browser, live_server):
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        _save_browser_artifacts(browser, request.node.name)
    for extra in list(browser.contexts):
        extra.close()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL, let Django flush the throw-away test database between transactional tests.

    Django's flush TRUNCATEs every table, which the audit trail's append-only
    trigger refuses. Only the statement-level TRUNCATE triggers are switched off,
    and only in the test database; row UPDATE/DELETE stay refused.
    """
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal AND (t.tgtype & 32) <> 0"  # 32: TRIGGER_TYPE_TRUNCATE
                )
                for table, trigger in cursor.fetchall():
                    cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')
