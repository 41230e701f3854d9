from allauth.mfa.models import Authenticator
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.demo import current_totp


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo user (demo mode only), for signing in without a phone."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, email, **options):
        if not settings.DEMO:
            raise CommandError("Only available with PORTAL_DEMO=1.")
        auth = Authenticator.objects.filter(user__email=email, type=Authenticator.Type.TOTP).first()
        if auth is None:
            raise CommandError(f"{email} has no TOTP authenticator.")
        self.stdout.write(current_totp(decrypt(auth.data["secret"])))
