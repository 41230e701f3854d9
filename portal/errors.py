"""Errors services raise for the caller to show: a machine code and a human message."""

from __future__ import annotations


class PortalError(Exception):
    """A refused operation. Nothing was changed."""

    http_status = 400

    def __init__(self, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = str(message)
        self.fields = fields or {}


class ConflictError(PortalError):
    """The record changed under the caller (a concurrent decision, a stale version)."""

    http_status = 409


class ForbiddenError(PortalError):
    """The caller may not do this to this record (own client record, own proposal)."""

    http_status = 403


class NotFoundError(PortalError):
    """No such record (or none the caller may see)."""

    http_status = 404
