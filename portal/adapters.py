from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext

from .permissions import Role


@dataclass(frozen=True)
class _PortalSite:
    """What allauth's templates call ``current_site``: the portal's name and configured address,
    never the host a request happened to arrive on (or none, from a worker)."""

    name: str
    domain: str


def _rebase(url: str) -> str:
    """``url`` on the configured site address (settings.PORTAL_BASE_URL), keeping its path and query."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return settings.PORTAL_BASE_URL.rstrip("/") + path


class PortalAccountAdapter(DefaultAccountAdapter):
    """Self sign-up creates clients only; staff accounts are made by an administrator.

    allauth's emails (verification, password reset, security notices) carry the portal's name and
    design, in the recipient's language, with links on the configured site address.
    """

    def format_email_subject(self, subject: str) -> str:
        return "[%s] %s" % (gettext("VA Margin Portal"), subject)  # noqa: UP031 - same shape as notifications

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        from allauth.core import context as allauth_context

        # In a request: the language the person is using now (at sign-up, the sign-up language); from a
        # worker: the recipient's preferred language.
        user = context.get("user")
        request = allauth_context.request
        language = (getattr(request, "LANGUAGE_CODE", None) if request is not None else None) \
            or getattr(user, "preferred_language", None) or settings.LANGUAGE_CODE
        with translation.override(language):
            ctx = dict(context)
            for key, value in context.items():
                if key.endswith("_url") and isinstance(value, str) and value.startswith(("http://", "https://")):
                    ctx[key] = _rebase(value)
            site = _PortalSite(name=gettext("VA Margin Portal"), domain=urlsplit(settings.PORTAL_BASE_URL).netloc)
            ctx.update({"email": email, "current_site": site, "site_url": settings.PORTAL_BASE_URL.rstrip("/") + "/",
                        "language": language})
            msg = self.render_mail(template_prefix, email, ctx)
            if not getattr(msg, "alternatives", None):
                # Every allauth message without its own HTML template: its text in the portal's design.
                body = msg.body
                html = render_to_string("portal/email/allauth.html", ctx | {"title": msg.subject, "text": body})
                from django.core.mail import EmailMultiAlternatives

                msg = EmailMultiAlternatives(msg.subject, body, msg.from_email, msg.to, headers=msg.extra_headers)
                msg.attach_alternative(html, "text/html")
            msg.send()

    def save_user(self, request, user, form, commit=True):
        from django.conf import settings
        from django.utils import translation

        from .services import user_assign_role

        # The language the client signed up in is the one they read: without this the profile kept
        # the default and the first sign-in on another device came up in English.
        language = translation.get_language()
        if language in dict(settings.LANGUAGES):
            user.preferred_language = language
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_assign_role(user=user, role=Role.CLIENT, actor=user)
        return user

    def login(self, request, user):
        """From this point of the sign-in request on, speak the user's language (as
        ``UserLanguageMiddleware`` does on later requests), so the sign-in message is in it too."""
        from django.conf import settings
        from django.utils import translation

        super().login(request, user)
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES and user.preferred_language in dict(settings.LANGUAGES):
            translation.activate(user.preferred_language)
            request.LANGUAGE_CODE = user.preferred_language


def email_confirmed(user) -> bool:
    """Whether ``user`` may sign in as far as email confirmation goes: the one rule the web
    sign-in (allauth, ``ACCOUNT_EMAIL_VERIFICATION``) and the token API share."""
    from allauth.account import app_settings
    from allauth.account.utils import has_verified_email

    if app_settings.EMAIL_VERIFICATION != app_settings.EmailVerificationMethod.MANDATORY:
        return True
    return has_verified_email(user, user.email)


def axes_username(request, credentials=None) -> str | None:
    """The sign-in email that django-axes counts failures against.

    allauth authenticates with ``{"email": ..., "password": ...}`` and the token
    API with ``login``/``email``; without this axes found no username and counted
    every failure against ``None``, so five failures on any accounts locked
    everyone out.
    """
    credentials = credentials or {}
    value = credentials.get("login") or credentials.get("email") or credentials.get("username")
    if not value:
        value = request.POST.get("login") or request.POST.get("email")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None
