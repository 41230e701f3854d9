"""Demo people. Only ever run through ``manage.py seed_demo``, which refuses outside demo mode."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from allauth.mfa.utils import decrypt
from django.db import transaction

from .models import User
from .permissions import STAFF_ROLES, Role
from .services import user_create

# Printed for the demo; seed_demo refuses to run outside demo mode.
DEMO_PASSWORD = "Demo-Portal-2026!"  # noqa: S105


@dataclass(frozen=True)
class DemoPerson:
    email: str
    full_name: str
    role: Role
    language: str = "en"
    authority_limit: Decimal | None = None


STAFF = [
    DemoPerson("officer@demo.vamargin.hk", "Olivia Ng (Account officer)", Role.ACCOUNT_OFFICER, authority_limit=Decimal("5000000")),
    DemoPerson("officer2@demo.vamargin.hk", "Oscar Lau (Account officer)", Role.ACCOUNT_OFFICER, authority_limit=Decimal("2000000")),
    DemoPerson("manager@demo.vamargin.hk", "Mandy Cheung (Credit manager)", Role.CREDIT_MANAGER, authority_limit=Decimal("50000000")),
    DemoPerson("manager2@demo.vamargin.hk", "Marcus Wong (Credit manager)", Role.CREDIT_MANAGER, authority_limit=Decimal("50000000")),
    DemoPerson("compliance@demo.vamargin.hk", "Connie Ho (Compliance)", Role.COMPLIANCE),
    DemoPerson("admin@demo.vamargin.hk", "Adrian Yip (Administrator)", Role.ADMIN),
]


def person_ensure(person: DemoPerson) -> tuple[User, bool]:
    user = User.objects.filter(email=person.email).first()
    created = user is None
    if created:
        user = user_create(
            email=person.email,
            password=DEMO_PASSWORD,
            role=person.role,
            full_name=person.full_name,
            preferred_language=person.language,
            authority_limit=person.authority_limit,
        )
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return user, created


def totp_ensure(user: User) -> tuple[str, list[str]]:
    """Enrol demo staff in TOTP so they can sign in; returns the secret and recovery codes."""
    existing = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if existing is None:
        TOTP.activate(user, generate_totp_secret())
        existing = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    secret = decrypt(existing.data["secret"])
    codes_auth = Authenticator.objects.filter(user=user, type=Authenticator.Type.RECOVERY_CODES).first()
    codes = RecoveryCodes(codes_auth) if codes_auth else RecoveryCodes.activate(user)
    return secret, codes.get_unused_codes()


def enrolled_clients_report(stdout) -> None:
    """The clients the demo enrolled in TOTP (drawdowns and collateral releases ask for a second factor, so they
    sign in with one too), with their secrets, as the staff are printed."""
    enrolled = (Authenticator.objects.filter(type=Authenticator.Type.TOTP, user__groups__name=Role.CLIENT.value)
                .select_related("user").order_by("user__email"))
    rows = [(a.user.email, decrypt(a.data["secret"])) for a in enrolled]
    if rows:
        stdout.write("Clients enrolled in TOTP (drawdowns and releases ask for a code; `manage.py demo_totp EMAIL` prints it):")
    for email, secret in rows:
        stdout.write(f"  client           {email:40} TOTP secret {secret}")


def current_totp(secret: str) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter))


@transaction.atomic
def seed_people(stdout) -> None:
    for person in STAFF:
        user, created = person_ensure(person)
        secret, codes = totp_ensure(user)
        stdout.write(
            f"  {person.role.value:16} {person.email:32} password {DEMO_PASSWORD}  "
            f"TOTP secret {secret}  recovery codes {' '.join(codes[:3])} …"
        )
    assert all(p.role in STAFF_ROLES for p in STAFF)
