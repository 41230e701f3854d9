from decimal import Decimal, InvalidOperation

from django import template

from portal.templatetags.portal_format import hkd

register = template.Library()


def _dec(value):
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# Money to the cent: the one filter every app's pages use (reporting's templates load it from here too).
register.filter("hkd", hkd)


@register.filter
def pct(value, places=1):
    """"0.8123" → "81.2%"."""
    number = _dec(value)
    if number is None:
        return "—"
    return f"{(number * 100).quantize(Decimal(1).scaleb(-int(places)))}%"


@register.filter
def times(value):
    """"4.2000" → "4.20×"."""
    number = _dec(value)
    return "—" if number is None else f"{number.quantize(Decimal('0.01'))}×"


@register.filter
def isotime(value):
    """An ISO 8601 string as stored in a pack → "YYYY-MM-DD HH:MM" Hong Kong time."""
    from datetime import datetime

    from django.utils import timezone

    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if timezone.is_aware(moment) else moment.strftime("%Y-%m-%d %H:%M")


@register.filter
def area_label(value):
    from ..models import ControlArea

    try:
        return ControlArea(value).label
    except ValueError:
        return value


def _choices(kind: str):
    from lending.models import PolicyStatus
    from lending.risk.models import CallState, CollateralType, StressReport
    from lending.servicing.models import LimitChangeState

    return {"limit_change": LimitChangeState, "policy": PolicyStatus, "call": CallState, "stress": StressReport.Kind,
            "collateral": CollateralType}[kind]


@register.filter
def choice_label(code, kind):
    """A state or kind stored in a pack as its code, named by the model's choices (their one owner), translated:
    ``"escalated"|choice_label:"call"`` → "Escalated to a credit manager". An unknown code is shown as it is."""
    try:
        return _choices(kind)(code).label
    except ValueError:
        return code


@register.filter
def book_source(source):
    """Which valuation of the book a pack's figures stand on, in words (``render.book_source_text``)."""
    from ..render import book_source_text

    return book_source_text(source)


@register.inclusion_tag("reporting/_client_groups.html", takes_context=True)
def client_groups(context, client):
    """The client's related-client groups on the client's staff record (one query)."""
    from lending.reporting.selectors import client_groups_for
    from portal.permissions import Perm

    user = context["request"].user
    return {"memberships": client_groups_for(client_id=client.pk), "can_record": user.has_perm(Perm.CLIENT_GROUP_PROPOSE)}
