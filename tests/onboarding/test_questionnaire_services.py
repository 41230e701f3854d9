"""Questionnaire drafts and policy versions go through services: numbered, checked and audited."""

from __future__ import annotations

import pytest

from onboarding import services
from onboarding.models import OnboardingPolicy, Questionnaire
from onboarding.policy import DEFAULTS
from portal.errors import PortalError
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_a_published_questionnaire_cannot_be_saved_again(admin_user):
    published = Questionnaire.objects.get(version=1)
    published.title = "Changed"
    with pytest.raises(PortalError):
        services.questionnaire_draft_save(actor=admin_user, questionnaire=published)
    assert Questionnaire.objects.get(version=1).title != "Changed"


def test_a_draft_gets_the_next_version_and_publishing_it_is_audited(admin_user):
    definition = Questionnaire.objects.get(version=1).definition
    draft = services.questionnaire_draft_save(actor=admin_user, questionnaire=Questionnaire(title="v2", definition=definition))
    assert draft.version == 2 and draft.published_at is None
    assert services.questionnaire_drafts_publish(actor=admin_user, questionnaire_ids=[draft.pk, 1]) == [2]
    assert Questionnaire.objects.get(pk=draft.pk).published_at is not None
    assert AuditEvent.objects.filter(action="onboarding.questionnaire.published", object_id=str(draft.pk)).count() == 1


def test_a_malformed_draft_is_not_published(admin_user):
    draft = services.questionnaire_draft_save(actor=admin_user, questionnaire=Questionnaire(title="broken", definition={"steps": []}))
    with pytest.raises(PortalError):
        services.questionnaire_drafts_publish(actor=admin_user, questionnaire_ids=[draft.pk])
    assert Questionnaire.objects.get(pk=draft.pk).published_at is None


def test_a_new_policy_version_is_numbered_and_audited(admin_user):
    policy = services.onboarding_policy_create(actor=admin_user, policy=OnboardingPolicy(**DEFAULTS, note="Annual review"))
    assert policy.version == 2
    assert AuditEvent.objects.filter(action="onboarding.policy.created", object_id=str(policy.pk)).exists()
