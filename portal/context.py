"""Who is asking, carried to services without threading the request through.

The middleware sets it for each web request; Celery tasks leave it empty, so
audit rows they write carry no IP or user agent.
"""

from __future__ import annotations

import contextvars
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


def meta_from_request(request) -> RequestMeta:
    # Behind a TLS proxy REMOTE_ADDR is the proxy; the deployment sets
    # X-Forwarded-For and we take the client's address it appended first.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    ip = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    return RequestMeta(ip_address=ip or None, user_agent=request.META.get("HTTP_USER_AGENT", "")[:400])
