"""Who may open a page: clients for their own pages, staff by named permission.

An anonymous visitor is sent to sign in; a signed-in user without the right
gets 403 (never a redirect loop, never a hint of what exists).
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.urls import Resolver404, get_script_prefix, resolve
from django.utils.translation import gettext_lazy as _

from .permissions import Perm


def client_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_client:
            raise PermissionDenied(_("This page is for clients."))
        return view(request, *args, **kwargs)

    wrapped.clients_only = True  # read by may_open
    return wrapped


def staff_required(perm: Perm = Perm.WORKBENCH_ACCESS):
    """Staff with ``perm``. MFA enrolment is enforced before this by StaffMFAMiddleware."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (request.user.is_portal_staff and request.user.has_perm(perm)):
                raise PermissionDenied(_("You do not have permission to open this page."))
            return view(request, *args, **kwargs)

        wrapped.staff_perm = perm  # read by may_open
        return wrapped

    return decorator


def may_open(user, url: str) -> bool:
    """Whether ``user`` may open the page at ``url`` (a path on this site, with or without a query), by the rule its
    view declares with ``staff_required`` or ``client_required``: a page links only where its reader can follow.
    A URL that is no page here, or whose view checks access its own way, is not judged (True): its view decides."""
    path = urlsplit(url).path
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix):]
    try:
        view = resolve(path).func
    except Resolver404:
        return True
    signed_in = user is not None and user.is_authenticated
    perm = getattr(view, "staff_perm", None)
    if perm is not None:
        return signed_in and user.is_portal_staff and user.has_perm(perm)
    if getattr(view, "clients_only", False):
        return signed_in and user.is_client
    return True


def id_url_if_open(user, url_name: str):
    """``navigation.id_url(url_name)`` (``id -> URL``, reversed once) where ``user`` may open that page, else None:
    one view answers for every id, so a list asks once, not per row."""
    from .navigation import id_url

    url = id_url(url_name)
    return url if may_open(user, url(1)) else None


def ensure_staff_permission(*, actor, perm: Perm, message=None) -> None:
    """Services' own check that ``actor`` is staff holding ``perm`` (views check too; services never trust them).
    ``message`` says who may, where the generic refusal would not help."""
    from .errors import ForbiddenError

    if not (actor is not None and actor.is_authenticated and actor.is_portal_staff and actor.has_perm(perm)):
        raise ForbiddenError("permission_denied", message or _("You do not have permission to do this."))


def ensure_not_own_record(*, actor, client_user) -> None:
    """Staff never act on their own client record (a member of staff may also be a client)."""
    from .errors import ForbiddenError

    if actor is not None and client_user is not None and getattr(actor, "pk", None) == client_user.pk:
        raise ForbiddenError("own_record", _("Staff cannot act on their own client record."))


def ensure_four_eyes(*, maker, checker, message=None) -> None:
    """The person who proposed a change never approves it. ``message`` names the maker's act when it
    was not a proposal (a first approval, say)."""
    from .errors import ForbiddenError

    if maker is not None and checker is not None and maker.pk == checker.pk:
        raise ForbiddenError("four_eyes", message or _("A second person must approve this; you proposed it."))
