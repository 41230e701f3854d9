"""The credit review's reasons are stored as a code with parameters beside the English sentence, and each
reader gets them in their own language; rows stored before the codes are given them by a data migration."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from lending.models import ReviewStep, StepCode
from lending.review import REASON_TEXTS, reason_from_text, reason_render, say, step_reasons

pytestmark = pytest.mark.django_db

ENGLISH = re.compile(r"[A-Za-z]{4,}")


def _english_words(text: str) -> list[str]:
    """English words left once codes, tickers and figures are taken out (HK$, BTC, SFC, v2 …)."""
    return [w for w in ENGLISH.findall(re.sub(r"\b[A-Z0-9]{2,}\b|HK\$[\d,.]+", " ", text))]


def test_every_step_stores_a_code_and_parameters_beside_each_english_sentence(reviewed):
    steps = list(ReviewStep.objects.filter(application=reviewed, run=reviewed.review_run))
    assert len(steps) == 7
    for step in steps:
        assert step.reasons and len(step.reason_codes) == len(step.reasons), step.code
        for text, coded in zip(step.reasons, step.reason_codes, strict=True):
            assert coded["code"] in REASON_TEXTS, (step.code, text)
            assert reason_render(coded, language="en") == text  # the English sentence is the code rendered


def test_the_same_reasons_read_in_chinese_for_a_chinese_reader(reviewed):
    steps = {s.code: s for s in ReviewStep.objects.filter(application=reviewed, run=reviewed.review_run)}
    valuation = steps[StepCode.VALUATION]
    with translation.override("zh-hant"):
        lines = step_reasons(valuation)
    market = next(line for line in lines if "HK$" in line and "市值" in line)
    assert valuation.reason_codes[[i for i, c in enumerate(valuation.reason_codes) if c["code"] == "valuation.values"][0]]["params"]["market"] in market
    with translation.override("zh-hant"):
        for step in steps.values():
            for line in step_reasons(step):
                assert not _english_words(line), (step.code, line)


def test_the_review_page_shows_the_reasons_in_the_officers_language(client, officer, reviewed):
    from portal.services import user_set_language

    user_set_language(user=officer, language="zh-hant")
    client.force_login(officer)
    body = client.get(f"/lending/staff/applications/{reviewed.pk}/").content.decode()
    cells = re.findall(r'<td class="step-reasons"><ul>(.*?)</ul>', body, re.S)
    assert len(cells) == 7
    for cell in cells:
        for item in re.findall(r"<li>(.*?)</li>", cell, re.S):
            assert not _english_words(item), item
    assert "Market value HK$" not in body and "市值 HK$" in body
    recommendation = body.split('data-testid="recommendation"')[1].split("</div>")[0]
    assert "Score " not in recommendation and "Market value" not in recommendation


def test_an_eligibility_failure_names_the_requirement_in_each_language(alice):
    """The requirement's words are onboarding's: stored in every language, read in the reader's."""
    from types import SimpleNamespace

    from lending.review import ReviewContext, StepResult, step_eligibility

    ctx = ReviewContext(application=SimpleNamespace(client=alice), lines=[], policy=None, prices={}, earlier={})
    result = step_eligibility(ctx)
    assert isinstance(result, StepResult) and result.outcome == "fail"
    unmet = [c for c in result.codes if c["code"] == "eligibility.unmet"]
    assert unmet and all(set(c["params"]["label"]) == {"en", "zh-hant"} for c in unmet)
    assert result.reasons[0] == f"{unmet[0]['params']['label']['en']}: {unmet[0]['params']['reason']['en']}"
    with translation.override("zh-hant"):
        chinese = reason_render(unmet[0])
    assert chinese == f"{unmet[0]['params']['label']['zh-hant']}：{unmet[0]['params']['reason']['zh-hant']}"
    assert not _english_words(chinese), chinese


def test_a_sentence_stored_before_codes_is_matched_to_its_code_and_an_unknown_one_stays_as_written():
    legacy = "Recommended limit HK$1,240,000.00 (rounded down to a multiple of HK$10,000)."
    assert reason_from_text(legacy) == {"code": "scorecard.recommended_rounded", "params": {"limit": "1,240,000.00", "unit": "10,000"}}
    assert reason_from_text("Recommended limit HK$800,000.00.") == {"code": "scorecard.recommended", "params": {"limit": "800,000.00"}}
    assert reason_from_text("Score 62/100: up to 75% of lending value may be lent.")["params"] == {"score": "62", "share": "75%"}
    assert reason_from_text("Something an earlier version wrote.") is None
    assert reason_from_text("Complete profile: confirm your account.") is None  # another app's words: left as text
    assert reason_render("Something an earlier version wrote.", language="zh-hant") == "Something an earlier version wrote."
    assert reason_render(reason_from_text(legacy), language="zh-hant") == "建議額度 HK$1,240,000.00（向下調整至 HK$10,000 的倍數）。"


def test_the_data_migration_gives_codes_to_rows_stored_as_text(reviewed):
    from importlib import import_module

    from django.apps import apps

    step = ReviewStep.objects.get(application=reviewed, run=reviewed.review_run, code=StepCode.SCORECARD)
    english = list(step.reasons)
    ReviewStep.objects.filter(pk=step.pk).update(reasons=[*english, "A sentence no code matches."], reason_codes=[])
    import_module("lending.migrations.0008_reviewstep_reason_codes_from_text").codes_from_text(apps, None)
    step.refresh_from_db()
    assert [c.get("code") for c in step.reason_codes[:-1]] == [reason_from_text(t)["code"] for t in english]
    assert step.reason_codes[-1] == {} and step.reasons[-1] == "A sentence no code matches."
    with translation.override("zh-hant"):
        lines = step_reasons(step)
    assert lines[-1] == "A sentence no code matches." and not _english_words(" ".join(lines[:-1]))


def test_a_review_that_could_not_finish_says_so_in_chinese_too():
    from lending.review import StepResult

    result = StepResult("refer", ["This check could not be completed after 5 attempts (OperationalError: gone); the officer must check it by hand."])
    assert result.codes[0]["code"] == "review.incomplete_attempts"
    assert "5" in reason_render(result.codes[0], language="zh-hant") and "OperationalError: gone" in reason_render(result.codes[0], language="zh-hant")
    assert say("screening.clear").text == "No match on the watch list."
