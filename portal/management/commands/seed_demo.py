import importlib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal import demo

# Each app may ship ``<app>/demo.py`` with ``seed(stdout)``; they run in this order,
# because later apps' demo records build on earlier ones.
# "module" runs module.seed(stdout); "module:function" runs that function instead.
APP_SEEDERS = ["onboarding.demo", "disclosures.demo", "lending.demo", "portal.notification_demo", "lending.risk.demo", "lending.collateral.demo",
               "lending.servicing.demo", "lending.risk.demo_calls", "lending.recovery.demo", "lending.reporting.demo", "portal.notification_demo:seed_deliveries"]


class Command(BaseCommand):
    help = "Load demo people and records (idempotent). Refused unless PORTAL_DEMO is on."

    def handle(self, *args, **options):
        if not settings.DEMO:
            raise CommandError("Demo data is only loaded with PORTAL_DEMO=1 (never in production).")
        self.stdout.write("Staff (sign in, then enter the code from an authenticator app, or use `manage.py demo_totp EMAIL`):")
        demo.seed_people(self.stdout)
        for entry in APP_SEEDERS:
            module_name, _sep, function = entry.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            getattr(module, function or "seed")(self.stdout)
        demo.enrolled_clients_report(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
