"""Publishing a questionnaire version (load_questionnaire, outside any transaction) saves it with its
audit row, or saves nothing."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from onboarding.models import Questionnaire
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def definition_file(tmp_path):
    current = Questionnaire.objects.order_by("-version").first()
    path = tmp_path / "questionnaire.json"
    path.write_text(json.dumps({"title": "Suitability v-next", **current.definition}))
    return path, current.version


def test_load_questionnaire_publishes_with_one_audit_row(definition_file):
    path, before = definition_file
    call_command("load_questionnaire", str(path))
    new = Questionnaire.objects.get(version=before + 1)
    events = AuditEvent.objects.filter(action="onboarding.questionnaire.published", object_id=str(new.pk))
    assert events.count() == 1 and events.get().after == {"version": before + 1, "title": "Suitability v-next"}


def test_a_failed_audit_leaves_no_version_behind(definition_file, monkeypatch):
    import onboarding.services

    path, before = definition_file

    def refuse(**kwargs):
        raise RuntimeError("audit chain unavailable")

    monkeypatch.setattr(onboarding.services, "audit_log", refuse)
    with pytest.raises(RuntimeError):
        call_command("load_questionnaire", str(path))
    assert not Questionnaire.objects.filter(version=before + 1).exists()
