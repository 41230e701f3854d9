from decimal import Decimal

import pytest

from lending import services
from lending.models import AppState, FacilityApplication, Recommendation, ReviewStep, StepStatus
from lending.review import TransientReviewError
from portal.errors import ConflictError, PortalError

from .conftest import draft, securities, submitted, va


def test_submission_refused_with_reasons_and_links_while_not_eligible(eligible_client, facts):
    facts.set(eligible_client, margin_account_confirmed=False)
    app = draft(eligible_client)
    with pytest.raises(PortalError) as exc:
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    assert exc.value.code == "not_eligible"
    assert exc.value.fields["requirements"][0]["fix_url"] == "/onboarding/profile/"
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.DRAFT


def test_submission_refused_without_confirming_terms(eligible_client):
    app = draft(eligible_client)
    with pytest.raises(PortalError):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=False)


def test_review_enqueued_on_commit_and_ends_awaiting_decision(eligible_client, django_capture_on_commit_callbacks):
    app = draft(eligible_client)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    assert len(callbacks) == 1
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.SUBMITTED
    callbacks[0]()
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.AWAITING_DECISION
    assert app.recommendation == Recommendation.APPROVE
    assert app.recommended_limit == Decimal("3000000.00")
    assert app.lending_value == Decimal("7304000.00")
    assert app.policy.version == 1
    steps = list(ReviewStep.objects.filter(application=app))
    assert len(steps) == 7 and all(s.status == StepStatus.DONE and s.attempts == 1 for s in steps)
    assert all(s.duration_ms is not None and s.finished_at for s in steps)


def test_recommended_limit_never_above_lending_value(eligible_client, django_capture_on_commit_callbacks):
    app = submitted(eligible_client, django_capture_on_commit_callbacks, limit="40000000", lines=[securities("1000000"), va(quantity="0.5")])
    assert app.lending_value < Decimal("40000000")
    assert app.recommended_limit <= app.lending_value
    scorecard = app.steps.get(code="scorecard")
    assert Decimal(scorecard.result["recommended_limit"]) <= app.lending_value
    assert any(p["factor"] for p in scorecard.result["points"])


def test_screening_hit_refers_never_declines(eligible_client, officer, django_capture_on_commit_callbacks):
    services.watchlist_add(actor=officer, name="WONG, Alice", aliases="A. Wong")
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    step = app.steps.get(code="screening")
    assert step.outcome == "refer" and step.result["hits"]
    assert app.state == AppState.AWAITING_DECISION
    assert app.recommendation == Recommendation.REFER


def test_missing_va_knowledge_fails_suitability_and_recommends_decline(eligible_client, facts, django_capture_on_commit_callbacks):
    facts.set(eligible_client, va_knowledge=False)
    app = submitted(eligible_client, django_capture_on_commit_callbacks)
    assert app.steps.get(code="suitability").outcome == "fail"
    assert app.state == AppState.AWAITING_DECISION and app.recommendation == Recommendation.DECLINE


def test_stale_price_refers_the_valuation(eligible_client, django_capture_on_commit_callbacks):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        app = submitted(eligible_client, django_capture_on_commit_callbacks)
    step = app.steps.get(code="valuation")
    assert step.outcome == "refer" and "freshness" in " ".join(step.reasons)


def test_transient_fault_is_retried_and_the_step_row_not_duplicated(eligible_client, monkeypatch, django_capture_on_commit_callbacks):
    from lending import review

    calls = {"n": 0}
    original = review.STEPS["scorecard"]

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientReviewError("credit bureau timeout")
        return original(ctx)

    monkeypatch.setitem(review.STEPS, "scorecard", flaky)
    app = draft(eligible_client)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    from celery.exceptions import Retry

    with pytest.raises(Retry):  # the task asks Celery to retry with backoff
        callbacks[0]()
    step = ReviewStep.objects.get(application=app, code="scorecard")
    assert step.status == StepStatus.RETRYING and "credit bureau timeout" in step.last_error
    # The retry resumes at the failed step; the steps already done are not run again.
    from lending.tasks import credit_review

    assert credit_review.apply(args=[app.pk, 1]).get() is True
    app = FacilityApplication.objects.get(pk=app.pk)
    assert app.state == AppState.AWAITING_DECISION
    assert ReviewStep.objects.get(application=app, code="valuation").attempts == 1
    step = ReviewStep.objects.get(application=app, code="scorecard")
    assert step.attempts == 2 and step.status == StepStatus.DONE
    assert ReviewStep.objects.filter(application=app).count() == 7


def test_redelivered_review_changes_nothing(reviewed):
    before = list(ReviewStep.objects.filter(application=reviewed).values("id", "attempts", "finished_at", "outcome"))
    assert services.review_run(application_id=reviewed.pk, run=reviewed.review_run) is True
    assert list(ReviewStep.objects.filter(application=reviewed).values("id", "attempts", "finished_at", "outcome")) == before


def test_claimed_step_is_not_run_twice(eligible_client, django_capture_on_commit_callbacks):
    app = draft(eligible_client)
    with django_capture_on_commit_callbacks(execute=False):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    from django.utils import timezone

    # Another delivery holds the first step: this one leaves the run to it.
    ReviewStep.objects.filter(application=app, code="eligibility").update(status=StepStatus.RUNNING, claimed_at=timezone.now(), attempts=1)
    assert services.review_run(application_id=app.pk, run=1) is False
    assert ReviewStep.objects.get(application=app, code="eligibility").attempts == 1


def test_illegal_transitions_are_refused(reviewed, eligible_client):
    with pytest.raises(ConflictError):
        services.application_submit(user=eligible_client, application_id=reviewed.pk, confirm_terms=True)
    with pytest.raises(ConflictError):
        services.application_withdraw(user=eligible_client, application_id=reviewed.pk)
    with pytest.raises(ConflictError):
        services.application_accept(user=eligible_client, application_id=reviewed.pk, letter_sha256="x")
    assert FacilityApplication.objects.get(pk=reviewed.pk).state == AppState.AWAITING_DECISION


def test_client_withdraws_a_draft(eligible_client):
    app = draft(eligible_client)
    services.application_withdraw(user=eligible_client, application_id=app.pk)
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.WITHDRAWN


def test_only_btc_and_eth_accepted_as_va_collateral(eligible_client):
    with pytest.raises(PortalError):
        draft(eligible_client, lines=[securities(), {"kind": "virtual_asset", "asset": "SOL", "quantity": "1", "custody_reference": "x"}])
    assert not FacilityApplication.objects.exists()


def test_returned_application_answered_goes_back_through_review(reviewed, eligible_client, officer, django_capture_on_commit_callbacks):
    services.application_return(actor=officer, application_id=reviewed.pk, questions="Source of the BTC?")
    with django_capture_on_commit_callbacks(execute=True):
        services.application_respond(user=eligible_client, application_id=reviewed.pk, response="Mined in 2013.")
    app = FacilityApplication.objects.get(pk=reviewed.pk)
    assert app.state == AppState.AWAITING_DECISION and app.review_run == 2
    assert ReviewStep.objects.filter(application=app).count() == 14


def test_a_step_held_by_another_delivery_mid_run_stops_this_one_without_touching_the_next(eligible_client, monkeypatch, django_capture_on_commit_callbacks):
    """The result of a step and the claim of the next are one statement; if the step was taken
    over meanwhile, this delivery writes nothing and leaves the next step unclaimed."""
    from datetime import timedelta

    from django.utils import timezone

    from lending import review

    app = draft(eligible_client)
    with django_capture_on_commit_callbacks(execute=False):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    real = review.STEPS["suitability"]

    def taken_over(ctx):
        # A second delivery took the step over (as after a claim timeout) while this one ran it.
        ReviewStep.objects.filter(application=app, code="suitability").update(claimed_at=timezone.now() + timedelta(seconds=1))
        return real(ctx)

    monkeypatch.setitem(review.STEPS, "suitability", taken_over)
    assert services.review_run(application_id=app.pk, run=1) is False
    steps = {s.code: s for s in ReviewStep.objects.filter(application=app)}
    assert steps["eligibility"].status == StepStatus.DONE
    assert steps["suitability"].status == StepStatus.RUNNING and steps["suitability"].outcome == ""
    assert steps["disclosures"].status == StepStatus.PENDING and steps["disclosures"].attempts == 0
    assert FacilityApplication.objects.get(pk=app.pk).state == AppState.IN_REVIEW


def test_only_the_step_being_run_shows_as_running(eligible_client, monkeypatch, django_capture_on_commit_callbacks):
    from lending import review

    app = draft(eligible_client)
    with django_capture_on_commit_callbacks(execute=False):
        services.application_submit(user=eligible_client, application_id=app.pk, confirm_terms=True)
    seen = {}
    for code, step in list(review.STEPS.items()):
        def spy(ctx, code=code, step=step):
            seen[code] = dict(ReviewStep.objects.filter(application=app).values_list("code", "status"))
            return step(ctx)

        monkeypatch.setitem(review.STEPS, code, spy)
    assert services.review_run(application_id=app.pk, run=1) is True
    order = list(review.STEPS)
    for i, code in enumerate(order):
        statuses = seen[code]
        assert statuses[code] == StepStatus.RUNNING
        assert all(statuses[c] == StepStatus.DONE for c in order[:i]), code
        assert all(statuses[c] == StepStatus.PENDING for c in order[i + 1:]), code
    assert set(ReviewStep.objects.filter(application=app).values_list("attempts", flat=True)) == {1}


def test_moving_an_application_into_review_writes_an_audit_row(reviewed):
    from portal.models import AuditEvent

    actions = list(AuditEvent.objects.filter(object_type="lending.facilityapplication", object_id=str(reviewed.pk))
                   .order_by("id").values_list("action", "actor_label"))
    assert [a for a, _by in actions] == ["lending.application.created", "lending.application.submitted",
                                         "lending.application.review_started", "lending.application.review_completed"]
    started = AuditEvent.objects.get(object_id=str(reviewed.pk), action="lending.application.review_started")
    assert started.actor_label == "system" and started.before == {"state": "submitted"} and started.after["state"] == "in_review"
