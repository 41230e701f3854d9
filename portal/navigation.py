"""Where the apps plug into the shared page shell.

Each app registers its menu entries and dashboard panels in its
``AppConfig.ready()``; the portal renders whatever is registered, so the shell
never imports an app's internals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse


@functools.lru_cache(maxsize=256)
def _menu_url(url_name: str, prefix: str, urlconf: str) -> str:
    return reverse(url_name, urlconf=urlconf)


_ANY_ID = 2147483646  # reversed in place of a row's id, then replaced by it


@functools.lru_cache(maxsize=256)
def _id_url_parts(url_name: str, prefix: str, urlconf: str) -> tuple[str, str]:
    head, _, tail = reverse(url_name, args=[_ANY_ID], urlconf=urlconf).rpartition(str(_ANY_ID))
    return head, tail


def id_url(url_name: str) -> Callable[[int], str]:
    """``id -> URL`` of a page that takes one integer id (a list's link per row), reversed once per script
    prefix and URLconf instead of once per row. Raises ``NoReverseMatch`` as ``reverse`` does."""
    head, tail = _id_url_parts(url_name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    return lambda pk: f"{head}{int(pk)}{tail}"


@dataclass(frozen=True)
class NavItem:
    label: str  # a lazy translation
    url_name: str
    perm: str | None = None
    order: int = 100

    @property
    def url(self) -> str:
        """Reversed once per script prefix and URLconf, not on every page (the menu is on every page, twice)."""
        return _menu_url(self.url_name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)


@dataclass(frozen=True)
class Panel:
    """A block on the client dashboard or the workbench home.

    ``render(request)`` returns ``(template_name, context)`` or ``None`` to hide
    the panel. It must run a fixed number of queries whatever the data size.
    """

    key: str
    render: Callable
    order: int = 100
    perm: str | None = None


CLIENT_NAV: list[NavItem] = []
STAFF_NAV: list[NavItem] = []
CLIENT_PANELS: list[Panel] = []
STAFF_PANELS: list[Panel] = []


def _add(registry: list, item) -> None:
    key = getattr(item, "key", None) or getattr(item, "url_name", None)
    if any((getattr(x, "key", None) or getattr(x, "url_name", None)) == key for x in registry):
        return  # ready() may run twice under some test runners
    registry.append(item)
    registry.sort(key=lambda x: x.order)


def register_client_nav(item: NavItem) -> None:
    _add(CLIENT_NAV, item)


def register_staff_nav(item: NavItem) -> None:
    _add(STAFF_NAV, item)


def register_client_panel(panel: Panel) -> None:
    _add(CLIENT_PANELS, panel)


def register_staff_panel(panel: Panel) -> None:
    _add(STAFF_PANELS, panel)
