"""An export of a version's acknowledgements is personal data leaving the portal in bulk: it is recorded."""

import pytest

from portal.models import AuditEvent
from tests.disclosures.conftest import acknowledge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_acknowledgement_export_is_downloaded_and_audited(client, compliance_user, alice, v1, fmt):
    acknowledge(alice, v1)
    client.force_login(compliance_user)
    response = client.get(f"/disclosures/compliance/versions/{v1.pk}/acknowledgements.{fmt}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
    event = AuditEvent.objects.get(action="reporting.export.downloaded")
    assert (event.actor_id, event.object_id) == (compliance_user.pk, "disclosure-acknowledgements")
    assert event.after == {"format": fmt, "filters": {"document": v1.document.code, "version": v1.number}}


def test_an_outsider_gets_no_export_and_nothing_is_recorded(client, alice, v1):
    client.force_login(alice)
    assert client.get(f"/disclosures/compliance/versions/{v1.pk}/acknowledgements.csv").status_code == 403
    assert not AuditEvent.objects.filter(action="reporting.export.downloaded").exists()
