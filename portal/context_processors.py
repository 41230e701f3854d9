from __future__ import annotations

from functools import cached_property

from django.conf import settings

from . import navigation
from .models import Notification


class Shell:
    """What the page shell shows about the signed-in user, each part queried once and only if used."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def unread(self) -> int:
        return Notification.objects.filter(user=self.user, read_at__isnull=True).count()

    @cached_property
    def nav(self) -> list[navigation.NavItem]:
        if self.user.is_portal_staff:
            return [i for i in navigation.STAFF_NAV if i.perm is None or self.user.has_perm(i.perm)]
        return list(navigation.CLIENT_NAV)


def portal(request) -> dict:
    user = getattr(request, "user", None)
    context = {"DEMO": settings.DEMO}
    if user is not None and user.is_authenticated:
        context["shell"] = Shell(user)
    return context
