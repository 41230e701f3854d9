"""The machine credential: ``Authorization: Api-Key vmk_<prefix>_<secret>``.

Only the import endpoints list ``MachineKeyAuthentication``; everywhere else the portal's session and
token authentication apply, where a machine key is not a credential at all (the request is anonymous).
A machine principal is not a user: it has no permissions and no session, so nothing else accepts it.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

KEYWORD = b"api-key"


class MachinePrincipal:
    """``request.user`` for a machine key: authenticated for the import endpoints only."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = is_superuser = is_client = is_portal_staff = False
    pk = id = None

    def __init__(self, key):
        self.key = key
        self.email = key.label

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return self.key.label


class MachineKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send the key as: Authorization: Api-Key <key>."))
        from .services import machine_key_authenticate

        key = machine_key_authenticate(parts[1].decode("latin-1"))
        if key is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked API key."))
        return MachinePrincipal(key), key

    def authenticate_header(self, request) -> str:
        return "Api-Key"


class HasImportKey(BasePermission):
    """A machine key scoped to imports."""

    message = _("An import API key is required.")

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, MachinePrincipal) and request.user.key.scope == "imports"


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class MachineKeyScheme(OpenApiAuthenticationExtension):
        target_class = "lending.collateral.auth.MachineKeyAuthentication"
        name = "machineApiKey"

        def get_security_definition(self, auto_schema):
            return {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "Api-Key vmk_<prefix>_<secret> (back-office import keys only)"}
except ImportError:  # pragma: no cover - drf-spectacular is a dependency
    pass
