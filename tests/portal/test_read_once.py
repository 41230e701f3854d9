"""``portal.context.read_once``: a page's panels share the rows they all read (the policy, the prices) while a
read-only request runs; anything that may change them (a POST, a task, a direct call) reads them every time."""

from __future__ import annotations

import pytest

from lending.selectors import policy_current, prices_current
from portal.context import close_request_memo, open_request_memo

pytestmark = pytest.mark.django_db


def test_read_once_in_a_get_request_every_time_elsewhere(rf, django_assert_num_queries):
    with django_assert_num_queries(4):  # no request: each call reads
        policy_current(), policy_current(), prices_current(), prices_current()
    token = open_request_memo(rf.get("/dashboard/"))
    try:
        with django_assert_num_queries(2):
            policy_current(), policy_current(), prices_current(), prices_current(max_age_minutes=15)
    finally:
        close_request_memo(token)
    with django_assert_num_queries(1):  # closed with the request
        policy_current()
    assert open_request_memo(rf.post("/lending/staff/policy/")) is None  # a POST may change what it reads


def test_memo_is_per_request(client, alice, django_assert_num_queries):
    client.force_login(alice)
    assert client.get("/dashboard/").status_code == 200
    assert policy_current() is None  # nothing left over from the request


def test_permissions_are_asked_once_per_instance_and_follow_a_change_of_roles(alice, django_assert_num_queries):
    from portal.permissions import Perm, Role
    from portal.services import user_assign_role

    assert not alice.has_perm(Perm.AUDIT_VIEW)
    with django_assert_num_queries(0):
        assert not alice.has_perm(Perm.AUDIT_VIEW)
    user_assign_role(user=alice, role=Role.COMPLIANCE)
    assert alice.has_perm(Perm.AUDIT_VIEW)
    alice.is_active = False
    assert not alice.has_perm(Perm.AUDIT_VIEW)
