"""A professional investor's written election not to receive activity statements: made, honoured by the
statements job, revoked; refused for a client who is not a verified PI; audited; the owner's page only."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from lending.servicing import interest, services, statements
from lending.servicing.models import ActivityStatementElection, Statement
from portal.errors import ConflictError, ForbiddenError, NotFoundError, PortalError
from portal.models import AuditEvent
from tests.servicing.conftest import old_facility, post

pytestmark = pytest.mark.django_db
DAY = date(2025, 11, 3)


@pytest.fixture
def professional(monkeypatch):
    """Which clients onboarding says are verified professional investors (status current)."""
    import onboarding.selectors as onboarding_selectors

    pis: set[int] = set()

    def client_facts(*, user):
        verified = SimpleNamespace(expires_on=timezone.localdate() + timedelta(days=200)) if user.pk in pis else None
        return SimpleNamespace(pi_valid=verified is not None, verified=verified)

    monkeypatch.setattr(onboarding_selectors, "client_facts", client_facts)
    return pis


def _activity_run(day):
    job, _created = statements.job_start(kind="activity", period_start=day, period_end=day)
    while statements.job_step(job_id=job.pk):
        pass


def test_a_pis_election_stops_activity_statements_until_revoked(alice, charlie, prime, professional):
    professional.add(alice.pk)
    mine, other = old_facility(alice), old_facility(charlie)
    post(mine, "drawdown", "1000.00", DAY)
    post(other, "drawdown", "1000.00", DAY)
    interest.terms_ensure()
    with pytest.raises(PortalError, match="Tick the box"):
        services.activity_statements_elect(user=alice, confirm=False)
    election = services.activity_statements_elect(user=alice, confirm=True)
    assert election.language == "en" and "professional investor" in election.text
    with pytest.raises(ConflictError):
        services.activity_statements_elect(user=alice, confirm=True)
    assert statements.target_ids(kind="activity", period_start=DAY, period_end=DAY, after_id=0, limit=10) == [other.pk]
    assert mine.pk in statements.target_ids(kind="monthly", period_start=date(2025, 11, 1), period_end=date(2025, 11, 30), after_id=0, limit=10)
    _activity_run(DAY)
    assert list(Statement.objects.values_list("facility_id", flat=True)) == [other.pk]
    services.activity_statements_resume(user=alice)
    with pytest.raises(NotFoundError):
        services.activity_statements_resume(user=alice)
    later = DAY + timedelta(days=1)
    post(mine, "drawdown", "1000.00", later)
    assert statements.target_ids(kind="activity", period_start=later, period_end=later, after_id=0, limit=10) == [mine.pk]
    assert ActivityStatementElection.objects.get().revoked_at is not None  # kept, revoked, never deleted
    actions = list(AuditEvent.objects.filter(action__startswith="servicing.statements.activity").values_list("action", flat=True).order_by("id"))
    assert actions == ["servicing.statements.activity_waived", "servicing.statements.activity_resumed"]


def test_only_a_verified_professional_investor_may_elect(alice, professional, bob):
    with pytest.raises(ForbiddenError, match="professional-investor status"):
        services.activity_statements_elect(user=alice, confirm=True)
    with pytest.raises(ForbiddenError):
        services.activity_statements_elect(user=bob, confirm=True)
    assert not ActivityStatementElection.objects.exists()


def test_the_election_is_recorded_in_the_clients_language(alice, professional):
    from portal.services import user_set_language

    professional.add(alice.pk)
    user_set_language(user=alice, language="zh-hant")
    election = services.activity_statements_elect(user=alice, confirm=True)
    assert election.language == "zh-hant" and "專業投資者" in election.text


def test_the_preferences_page_is_the_clients_own(client, alice, charlie, bob, professional, django_assert_num_queries):
    professional.add(alice.pk)
    client.force_login(charlie)
    page = client.get("/servicing/statements/preferences/").content.decode()
    assert 'data-testid="waive-activity"' not in page  # not a PI: no election offered
    client.post("/servicing/statements/preferences/", {"action": "waive", "confirm": "1"})
    assert not ActivityStatementElection.objects.exists()
    client.force_login(bob)
    assert client.get("/servicing/statements/preferences/").status_code == 403
    client.force_login(alice)
    assert 'data-testid="waive-activity"' in client.get("/servicing/statements/preferences/").content.decode()
    client.post("/servicing/statements/preferences/", {"action": "waive", "confirm": "1"})
    assert ActivityStatementElection.objects.get().client == alice
    client.force_login(charlie)
    client.post("/servicing/statements/preferences/", {"action": "resume"})  # someone else's election is not theirs to revoke
    assert ActivityStatementElection.objects.get().revoked_at is None
    client.force_login(alice)
    with django_assert_num_queries(PREFERENCES_QUERIES):
        page = client.get("/servicing/statements/preferences/").content.decode()
    assert 'data-testid="resume-activity"' in page


PREFERENCES_QUERIES = 5


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/servicing/statements/preferences/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
