"""Multi-factor sign-in: the one place that says whether a session passed it, whether a client is
enrolled, and whether a step-up code is valid.

Staff (any portal staff role, and anyone the Django admin lets in) must have a
TOTP authenticator, and the session must have completed the second factor in
allauth's flow (allauth records each completed step in the session). A session
made any other way (e.g. a password-only sign-in) reaches no staff page, admin
page or staff API until the second factor is given.
"""

from __future__ import annotations

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator


def user_has_mfa(user) -> bool:
    """Whether ``user`` has an active TOTP authenticator (recovery codes alone don't count)."""
    cached = getattr(user, "_has_mfa", None)
    if cached is None:
        cached = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        user._has_mfa = cached
    return cached


def requires_mfa(user) -> bool:
    """Staff in the portal's sense, and anyone the Django admin would let in (e.g. a superuser)."""
    return bool(user.is_authenticated and (user.is_portal_staff or user.is_staff or user.is_superuser))


def session_passed_mfa(request) -> bool:
    """Whether this session's sign-in included the second factor (allauth's MFA step)."""
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, request.user))


def mfa_state(request) -> str:
    """``"ok"``, ``"not_enrolled"`` or ``"not_verified"`` for the signed-in user of ``request``."""
    user = request.user
    if not requires_mfa(user):
        return "ok"
    if not user_has_mfa(user):
        return "not_enrolled"
    if not session_passed_mfa(request):
        return "not_verified"
    return "ok"


def _enrolment_counts_as_second_factor(sender, request=None, user=None, authenticator=None, **kwargs):
    """Activating TOTP means entering a valid code after re-entering the password: that session
    has just given the second factor, so it need not give it again at once."""
    from allauth.account.internal.flows.login import record_authentication

    if request is not None and authenticator is not None and authenticator.type == Authenticator.Type.TOTP:
        record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type, enrolled=True)


def _enrolment_revokes_password_only_tokens(sender, user=None, authenticator=None, **kwargs):
    """An API token obtained before the client had an authenticator took the password alone; from enrolment on a
    token needs the code too (``portal.api.TokenObtainApi``), so the older ones stop working."""
    from rest_framework.authtoken.models import Token

    if user is not None and authenticator is not None and authenticator.type == Authenticator.Type.TOTP:
        Token.objects.filter(user=user).delete()


def connect_signals() -> None:
    from allauth.mfa import signals

    signals.authenticator_added.connect(_enrolment_counts_as_second_factor, dispatch_uid="portal.mfa.enrolment")
    signals.authenticator_added.connect(_enrolment_revokes_password_only_tokens, dispatch_uid="portal.mfa.tokens")


# --- Clients: enrolment before borrowing, step-up for withdrawals ------------------------------------


def enrol_url() -> str:
    """Where a client sets up an authenticator (allauth's TOTP activation page)."""
    from django.urls import reverse

    return reverse("mfa_activate_totp")


def ensure_client_enrolled(user, *, action: str) -> None:
    """Refuse ``action`` (already translated words, e.g. "a drawdown") until ``user`` has an authenticator.

    Borrowing and taking collateral back move money and assets out of the firm's control; a password
    alone must not be enough, so the client enrols first (the page and the API say where)."""
    from django.utils.translation import gettext as _

    from portal.errors import ForbiddenError

    if user_has_mfa(user):
        return
    raise ForbiddenError(
        "mfa_enrolment_required",
        _("Set up an authenticator app for your sign-in before %(action)s: %(url)s") % {"action": action, "url": enrol_url()},
        {"mfa": [enrol_url()]},
    )


def stepup_verify_code(user, code: str):
    """A step-up given in the request itself (API clients have no session to re-authenticate): the
    current code of ``user``'s authenticator, each code usable once (allauth marks it used). Returns
    the time of the step-up, or raises ``stepup_invalid``."""
    from allauth.mfa.totp.internal.auth import TOTP
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from portal.errors import ForbiddenError

    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        ensure_client_enrolled(user, action=_("a withdrawal"))
    digits = "".join(ch for ch in str(code or "") if not ch.isspace())
    if not (digits.isdigit() and len(digits) == 6) or not TOTP(authenticator).validate_code(digits):
        raise ForbiddenError("stepup_invalid", _("That authenticator code is not valid (or was used already); enter the current code."),
                             {"otp_code": [_("Not the current code.")]})
    return timezone.now()
