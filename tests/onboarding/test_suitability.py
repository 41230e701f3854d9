"""Suitability: versioned questionnaire, progress by step, deterministic scoring, knowledge bases, training, validity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from onboarding import scoring, services
from onboarding.models import (
    KnowledgeBasis,
    Questionnaire,
    ReviewStatus,
    SuitabilityAssessment,
    SuitabilityState,
    TrainingAttempt,
)
from onboarding.questionnaires.v1 import QUESTIONNAIRE_V1
from onboarding.training import MODULES
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import Notification
from tests.onboarding.conftest import ANSWERS, answers_with, complete_assessment, make_profile, on_day

pytestmark = pytest.mark.django_db

DEFINITION = {k: v for k, v in QUESTIONNAIRE_V1.items() if k != "title"}
POLICY = {"derivative_min_transactions": 5}


def flat(steps):
    return {k: v for step in steps for k, v in step.items()}


def score(**changes):
    answers = flat(answers_with(**changes))
    # Follow-ups to a "no" are never kept (validate_step drops them).
    for flag, follow in (("va_training", ("va_course", "va_course_provider")), ("va_work", ("va_work_role", "va_work_employer")),
                         ("derivative_training", ("derivative_course", "derivative_course_provider")),
                         ("derivative_work", ("derivative_work_role", "derivative_work_employer"))):
        if answers.get(flag) is not True:
            for code in follow:
                answers[code] = None
    return scoring.score(DEFINITION, answers, policy_numbers=POLICY)


def no_va(**changes):
    return {"va_training": False, "va_transactions_3y": 0, "va_assets": None, "va_frequency": None, **changes}


def test_version_one_is_loaded_by_migration():
    q = Questionnaire.objects.get(version=1)
    assert q.published_at is not None
    assert [s["code"] for s in q.steps] == ["financial", "objectives", "tolerance", "experience", "knowledge"]


def test_risk_profile_is_deterministic_with_reasons():
    first, second = score(), score()
    assert first == second
    assert first.risk_profile == 4
    assert first.risk_reasons[0] == f"Total score {first.risk_score} gives risk profile 4."
    assert any(r == "What is your main investment objective? Capital growth (+3)" for r in first.risk_reasons)


def test_short_horizon_caps_the_profile_and_aggressive_tolerance_with_it_is_warned():
    result = score(horizon="lt1", loss_reaction="buy_more", max_loss="gt30", objective="speculation")
    assert result.risk_profile == 3
    assert "A horizon under one year limits the profile to balanced." in result.risk_reasons
    assert "You would buy more after a 30% fall but plan to invest for less than a year." in result.warnings
    assert "You accept losses over 30% but plan to invest for less than a year." in result.warnings


def test_conservative_answers_give_profile_one():
    result = score(income_stability="none", emergency_reserve="no", va_share="lt10", objective="preservation", horizon="lt1",
                   loss_reaction="sell_all", max_loss="lt5", shares_years=0, shares_transactions_3y=0, margin_years=0,
                   margin_transactions_3y=0, derivative_years=0, derivative_transactions_3y=0, va_years=0, **no_va())
    assert result.risk_profile == 1


def test_va_knowledge_from_training_keeps_the_course_and_provider():
    result = score(**no_va(va_training=True, va_course="Crypto 101", va_course_provider="HKU SPACE 2024"))
    assert (result.va_knowledge, result.va_knowledge_basis) == (True, "training")
    assert result.va_knowledge_detail == {"va_course": "Crypto 101", "va_course_provider": "HKU SPACE 2024"}


def test_va_knowledge_from_work_experience():
    result = score(**no_va(va_work=True, va_work_role="Compliance officer", va_work_employer="A licensed VA platform, 3 years"))
    assert (result.va_knowledge, result.va_knowledge_basis) == (True, "work_experience")
    assert result.va_knowledge_detail["va_work_role"] == "Compliance officer"


def test_va_knowledge_from_trading_experience_keeps_assets_and_frequency():
    result = score(va_training=False, va_transactions_3y=4, va_assets="BTC on OSL", va_frequency="rarely")
    assert (result.va_knowledge, result.va_knowledge_basis) == (True, "trading_experience")
    assert result.va_knowledge_detail["va_assets"] == "BTC on OSL"


def test_bare_self_declaration_of_va_training_is_not_knowledge():
    answers = flat(answers_with(**no_va(va_training=True)))
    answers.update(va_course=None, va_course_provider=None)
    result = scoring.score(DEFINITION, answers, policy_numbers=POLICY)
    assert result.va_knowledge is False


def test_derivative_knowledge_from_five_transactions_in_three_years_but_not_four():
    assert (score(derivative_transactions_3y=5).derivative_knowledge_basis) == "trading_experience"
    assert score(derivative_transactions_3y=4).derivative_knowledge is False


def test_derivative_knowledge_from_training_and_from_work():
    trained = score(derivative_transactions_3y=0, derivative_training=True, derivative_course="Futures and options", derivative_course_provider="HKEX Academy 2023")
    assert (trained.derivative_knowledge, trained.derivative_knowledge_basis) == (True, "training")
    worked = score(derivative_transactions_3y=0, derivative_work=True, derivative_work_role="Options trader", derivative_work_employer="A bank, 5 years")
    assert (worked.derivative_knowledge, worked.derivative_knowledge_basis) == (True, "work_experience")


def test_follow_up_questions_are_required_when_the_answer_is_yes(alice):
    make_profile(alice)
    assessment = services.assessment_start(client=alice)
    for index in range(4):
        services.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=index, data=ANSWERS[index])
    with pytest.raises(PortalError) as exc:
        services.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=4, data={**ANSWERS[4], "va_course": ""})
    assert "without them we must treat you as having no knowledge" in exc.value.fields["va_course"][0]
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).current_step == 4


def test_progress_is_kept_and_steps_cannot_be_skipped(alice):
    make_profile(alice)
    assessment = services.assessment_start(client=alice)
    services.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=0, data=ANSWERS[0])
    with pytest.raises(PortalError) as exc:
        services.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=2, data=ANSWERS[2])
    assert exc.value.code == "step_out_of_order"
    resumed = services.assessment_start(client=alice)
    assert resumed.pk == assessment.pk and resumed.current_step == 1
    assert resumed.answers["income_stability"] == "stable"


def test_bad_answer_changes_nothing(alice):
    make_profile(alice)
    assessment = services.assessment_start(client=alice)
    with pytest.raises(PortalError) as exc:
        services.assessment_save_step(assessment_id=assessment.pk, actor=alice, step=0, data={**ANSWERS[0], "va_share": "all of it"})
    assert exc.value.fields == {"va_share": ["Choose one of the options."]}
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).answers == {}


def test_complete_scores_records_policy_and_validity(alice):
    make_profile(alice)
    assessment = complete_assessment(alice)
    assert assessment.state == SuitabilityState.COMPLETED
    assert assessment.risk_profile == 4 and assessment.va_knowledge and assessment.derivative_knowledge
    assert assessment.va_knowledge_basis == KnowledgeBasis.TRAINING
    assert assessment.derivative_knowledge_basis == KnowledgeBasis.TRADING_EXPERIENCE
    from onboarding.models import add_months

    assert assessment.valid_until == add_months(timezone.localdate(), 12)
    assert assessment.financial_snapshot == {"annual_income": "2400000.00", "net_worth": "30000000.00", "liquid_assets": "12000000.00"}


def test_another_client_cannot_answer_or_complete(alice, charlie):
    make_profile(alice)
    assessment = services.assessment_start(client=alice)
    with pytest.raises(ForbiddenError):
        services.assessment_save_step(assessment_id=assessment.pk, actor=charlie, step=0, data=ANSWERS[0])
    with pytest.raises(ForbiddenError):
        services.assessment_complete(assessment_id=assessment.pk, actor=charlie)


def test_inconsistent_answers_flag_the_assessment_for_review(alice):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    assert assessment.review_status == ReviewStatus.FLAGGED
    assert "You would buy more after a 30% fall but plan to invest for less than a year." in assessment.flag_reasons


def test_financial_change_after_completion_flags_for_review(alice):
    make_profile(alice)
    assessment = complete_assessment(alice)
    make_profile(alice, net_worth="5000000.00")
    again = SuitabilityAssessment.objects.get(pk=assessment.pk)
    assert again.review_status == ReviewStatus.FLAGGED
    assert "net worth (HKD)" in again.flag_reasons[0]


def test_non_financial_change_does_not_flag(alice):
    make_profile(alice)
    assessment = complete_assessment(alice)
    make_profile(alice, phone="+852 5555 0000")
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).review_status == ReviewStatus.NONE


def test_compliance_reviews_a_flagged_assessment(alice, compliance_user, officer):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    with pytest.raises(ForbiddenError):
        services.assessment_review(assessment_id=assessment.pk, actor=officer, outcome="confirm", note="fine")
    with pytest.raises(PortalError):
        services.assessment_review(assessment_id=assessment.pk, actor=compliance_user, outcome="confirm", note="")
    reviewed = services.assessment_review(assessment_id=assessment.pk, actor=compliance_user, outcome="confirm", note="Client explained by phone")
    assert reviewed.review_status == ReviewStatus.CLEARED and reviewed.state == SuitabilityState.COMPLETED
    with pytest.raises(ConflictError):
        services.assessment_review(assessment_id=assessment.pk, actor=compliance_user, outcome="confirm", note="again")


def test_review_can_require_a_new_assessment(alice, compliance_user):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(horizon="lt1", loss_reaction="buy_more"))
    services.assessment_review(assessment_id=assessment.pk, actor=compliance_user, outcome="reassess", note="Please redo")
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).state == SuitabilityState.EXPIRED
    assert Notification.objects.filter(user=alice, kind="onboarding.assessment_redo").exists()


def test_a_new_questionnaire_version_never_changes_old_answers(alice):
    make_profile(alice)
    old = complete_assessment(alice)
    before = (old.answers, old.risk_profile, old.risk_reasons, old.questionnaire_id)
    v2 = dict(DEFINITION)
    v2["risk_bands"] = [{"max": 999, "profile": 1}]
    services.questionnaire_publish(definition=v2, title="Suitability v2")
    again = SuitabilityAssessment.objects.get(pk=old.pk)
    assert (again.answers, again.risk_profile, again.risk_reasons, again.questionnaire_id) == before
    new = complete_assessment(alice)
    assert new.questionnaire.version == 2 and new.risk_profile == 1
    assert SuitabilityAssessment.objects.get(pk=old.pk).state == SuitabilityState.SUPERSEDED


def test_completing_needs_the_profile_financials(alice):
    with pytest.raises(PortalError) as exc:
        complete_assessment(alice)
    assert exc.value.code == "profile_financials_missing"


@pytest.mark.parametrize(("module", "flag", "basis"), [("va", "va_knowledge", "va_knowledge_basis"), ("derivatives", "derivative_knowledge", "derivative_knowledge_basis")])
def test_passing_the_training_quiz_is_recorded_as_the_basis(alice, module, flag, basis):
    make_profile(alice)
    assessment = complete_assessment(alice, answers_with(**no_va(derivative_transactions_3y=0)))
    assert getattr(assessment, flag) is False
    quiz = MODULES[module].quiz
    failed = services.training_submit(client=alice, module=module, answers={q.code: (q.correct + 1) % len(q.options) for q in quiz})
    assert failed.passed is False and failed.score_pct == 0
    assert getattr(SuitabilityAssessment.objects.get(pk=assessment.pk), flag) is False
    passed = services.training_submit(client=alice, module=module, answers={q.code: q.correct for q in quiz})
    assert passed.passed and passed.score_pct == 100
    again = SuitabilityAssessment.objects.get(pk=assessment.pk)
    assert getattr(again, flag) is True and getattr(again, basis) == KnowledgeBasis.PORTAL_TRAINING
    assert TrainingAttempt.objects.filter(client=alice, module=module).count() == 2


def test_training_passed_before_the_questionnaire_counts_when_completing(alice):
    make_profile(alice)
    services.training_submit(client=alice, module="va", answers={q.code: q.correct for q in MODULES["va"].quiz})
    assessment = complete_assessment(alice, answers_with(**no_va()))
    assert assessment.va_knowledge_basis == KnowledgeBasis.PORTAL_TRAINING


def test_four_of_five_quiz_answers_pass_at_eighty_percent(alice):
    quiz = MODULES["va"].quiz
    answers = {q.code: q.correct for q in quiz}
    answers[quiz[0].code] = (quiz[0].correct + 1) % 2
    assert services.training_submit(client=alice, module="va", answers=answers).passed


def test_assessment_reminder_and_expiry(alice, django_capture_on_commit_callbacks):
    from onboarding.tasks import daily_sweep

    make_profile(alice)
    assessment = complete_assessment(alice)
    due = assessment.valid_until
    with on_day(due - timedelta(days=30)), django_capture_on_commit_callbacks(execute=True):
        assert daily_sweep()["sa_remind"] == 1
    with on_day(due), django_capture_on_commit_callbacks(execute=True):
        assert daily_sweep()["sa_expire"] == 1
    assert SuitabilityAssessment.objects.get(pk=assessment.pk).state == SuitabilityState.EXPIRED
    assert Notification.objects.filter(user=alice, kind__in=["onboarding.assessment_expiring", "onboarding.assessment_expired"]).count() == 2
