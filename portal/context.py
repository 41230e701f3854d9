"""Who is asking, carried to services without threading the request through.

The middleware sets it for each web request; Celery tasks leave it empty, so
audit rows they write carry no IP or user agent.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMeta:
    ip_address: str | None = None
    user_agent: str = ""


_NO_REQUEST = RequestMeta()
_current: contextvars.ContextVar[RequestMeta | None] = contextvars.ContextVar("portal_request_meta", default=None)


def current_request_meta() -> RequestMeta:
    return _current.get() or _NO_REQUEST


def set_request_meta(meta: RequestMeta) -> contextvars.Token:
    return _current.set(meta)


def reset_request_meta(token: contextvars.Token) -> None:
    _current.reset(token)


@dataclass(frozen=True)
class ClientAddress:
    ip: str | None
    trusted: bool  # the address is the client's own, not a proxy's


def _valid_ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_proxy(ip: str, networks) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


def client_address(request) -> ClientAddress:
    """The client's IP address, taken only from hops the portal trusts.

    ``REMOTE_ADDR`` is the peer. When it is one of ``settings.TRUSTED_PROXIES``
    (addresses or networks), ``X-Forwarded-For`` is read from the right, past every
    trusted proxy, and the first address a trusted proxy wrote down is the client's;
    entries further left were written by the client and are never believed. A
    malformed value is never an error: the answer falls back to the last address
    known to be real (the proxy's, marked untrusted) or to none.
    """
    from django.conf import settings

    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return ClientAddress(None, False)
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not _is_proxy(remote, networks):
        # A direct peer is the client, unless the deployment says a proxy it has not named sits in front.
        return ClientAddress(remote, not settings.BEHIND_PROXY)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _valid_ip(hop)
        if ip is None:
            break  # a trusted proxy writes addresses; anything else ends what can be believed
        if not _is_proxy(ip, networks):
            return ClientAddress(ip, True)
    return ClientAddress(remote, False)


def axes_client_ip(request) -> str | None:
    return client_address(request).ip


def axes_lockout_parameters(request_or_attempt, credentials=None) -> list[str]:
    """Lock-out counts failures per account, and per client address only where that address is the
    client's own: behind a proxy the portal cannot see through, every client shares one address."""
    if hasattr(request_or_attempt, "META") and not client_address(request_or_attempt).trusted:
        return ["username"]
    return ["username", "ip_address"]


# --- Read once per page ---------------------------------------------------------------------------------------------
#
# A page asks several panels and selectors for the same small, rarely changing rows (the collateral policy in
# force, the current prices): each would load them again. While a read-only web request (GET/HEAD) runs, the
# middleware opens a memo and ``read_once`` loads each such value once for the whole request. Anywhere else
# (a POST that may change them, a Celery task, a shell, a test calling a selector) nothing is kept: every call
# reads the database, as before.

_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("portal_request_memo", default=None)


def read_once(key: str, load):
    """``load()``'s value, loaded once per read-only web request and shared by every caller in it."""
    memo = _memo.get()
    if memo is None:
        return load()
    if key not in memo:
        memo[key] = load()
    return memo[key]


def open_request_memo(request) -> contextvars.Token | None:
    """Open the memo for a GET or HEAD request (None, and nothing opened, for any other method)."""
    return _memo.set({}) if request.method in ("GET", "HEAD") else None


def close_request_memo(token: contextvars.Token | None) -> None:
    if token is not None:
        _memo.reset(token)


def meta_from_request(request) -> RequestMeta:
    return RequestMeta(ip_address=client_address(request).ip, user_agent=request.META.get("HTTP_USER_AGENT", "")[:400])
