"""In a browser, in Traditional Chinese: a client requests a drawdown, sees interest accrue, downloads a statement."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import browser_sign_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_facility(user, officer, credit_manager):
    """Through the lending services: apply, review, approve, accept the letter (the facility opens today)."""
    from lending import services
    from tests.lending.conftest import draft

    app = draft(user, limit="3000000")
    services.application_submit(user=user, application_id=app.pk, confirm_terms=True)  # the review runs on commit (eager)
    app = services.application_approve(actor=officer, application_id=app.pk, limit="3000000")
    return services.application_accept(user=user, application_id=app.pk, letter_sha256=app.letter_sha256)


def test_a_client_draws_down_sees_interest_accrue_and_downloads_a_chinese_statement(page, facts, policy, prices, officer, officer2, credit_manager):
    from django.utils import timezone

    from lending.ledger import ledger_check
    from lending.models import Facility
    from lending.servicing import interest, statements
    from lending.servicing.models import Statement, StatementKind
    from portal.pdf import pdf_text
    from tests.servicing.helpers import fixing

    fixing(rate="0.052500", effective=date(2025, 1, 1), maker=officer, checker=officer2)  # HKD Prime 5.25% + 3% standard margin
    mei = make_user("client", email="mei@example.com", full_name="陳美玲", language="zh-hant", mfa=True)
    facility = _open_facility(mei, officer, credit_manager)

    browser_sign_in(page, mei)  # answers the authenticator step: drawdowns need an enrolled client
    page.goto(f"/servicing/facilities/{facility.pk}/requests/")
    assert "申請提款" in page.text_content("[data-testid=request-drawdown]")
    page.fill("#id_dd_amount", "200000")
    page.click("[data-testid=request-drawdown]")
    page.wait_for_selector("[data-testid=request-state]")
    assert "已執行" in page.text_content("[data-testid=request-state]")  # below the policy amount: paid at once
    assert Facility.objects.get(pk=facility.pk).drawn_balance == Decimal("200000.00")

    today = timezone.localdate()
    for n in range(3):  # the nightly job, three nights running
        interest.accrue_day(day=today + timedelta(days=n))
    daily = interest.daily_interest(balance=Decimal("200000"), annual_rate=Decimal("0.0825"))
    assert daily == Decimal("45.21")  # 200,000 × 8.25% ÷ 365 = 45.2054… → 45.21

    page.goto(f"/lending/facilities/{facility.pk}/")
    assert "HK$135.63" in page.text_content("[data-testid=accrued-to-date]")  # 3 × 45.21, not yet posted
    assert "8.250%" in page.text_content("[data-testid=interest-rate]")

    job, _created = statements.job_start(kind=StatementKind.ACTIVITY, period_start=today, period_end=today)
    while statements.job_step(job_id=job.pk):
        pass
    statement = Statement.objects.get(facility=facility)
    assert statement.language == "zh-hant"

    page.goto("/servicing/statements/")
    with page.expect_download() as download_info:
        page.click("[data-testid=statement-pdf]")
    download = download_info.value
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf == bytes(statement.pdf)
    text = pdf_text(pdf)
    for words in ("交易結單", "陳美玲", "200,000.00", "45.21", statement.number):  # accrued to the statement date
        assert words in text, words
    assert ledger_check().ok
