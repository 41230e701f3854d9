"""The dashboard's lending panel beside the onboarding checklist: each unmet requirement is listed once."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def _dashboard(client, user) -> str:
    client.force_login(user)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    return response.content.decode()


def _lending_panel(html: str) -> str:
    return re.search(r'<section class="panel" id="panel-lending">(.*?)</section>', html, re.S).group(1)


def test_a_client_part_way_through_onboarding_sees_each_missing_step_once_and_the_lending_panel_points_at_the_checklist(client, alice, policy, prices):
    html = _dashboard(client, alice)
    # (the optional perpetuals list names its own disclosure, a different document)
    va_margin = re.sub(r'<ul class="checklist" data-testid="checklist-perpetuals">.*?</ul>', "", html, flags=re.S)
    for code in ("margin_account", "suitability", "disclosures"):
        assert va_margin.count(f'data-requirement="{code}"') == 1, code  # in the checklist only
    panel = _lending_panel(html)
    assert 'data-testid="apply-blockers"' in panel and 'data-testid="apply"' not in panel
    assert 'data-testid="see-checklist"' in panel and 'href="#panel-onboarding-checklist"' in panel
    assert "data-requirement" not in panel
    assert 'id="panel-onboarding-checklist"' in html


def test_the_lending_panel_still_lists_what_the_checklist_does_not_cover(client, alice, officer):
    from lending.demo import client_make_eligible

    client_make_eligible(user=alice, staff=officer)  # onboarding done, but the firm has no collateral policy yet
    panel = _lending_panel(_dashboard(client, alice))
    assert 'data-requirement="no_policy"' in panel and 'data-testid="see-checklist"' not in panel
    assert 'data-testid="apply"' not in panel


def test_an_eligible_client_is_offered_apply_and_no_pointer(client, alice, officer, policy, prices):
    from lending.demo import client_make_eligible

    client_make_eligible(user=alice, staff=officer)
    panel = _lending_panel(_dashboard(client, alice))
    assert 'data-testid="apply"' in panel and 'data-testid="apply-blockers"' not in panel


def test_the_pointer_reads_in_chinese(client, alice, policy, prices):
    from portal.services import user_set_language

    user_set_language(user=alice, language="zh-hant")
    panel = _lending_panel(_dashboard(client, alice))
    pointer = re.search(r'data-testid="see-checklist">(.*?)</p>', panel, re.S).group(1)
    assert not re.search(r"[A-Za-z]{3,}", re.sub(r"<[^>]+>", "", pointer)), pointer
