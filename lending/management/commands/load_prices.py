from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lending import services
from portal.audit import SYSTEM
from portal.errors import PortalError


class Command(BaseCommand):
    help = "Load BTC/ETH prices in HKD from a CSV (asset,price_hkd,source,as_of) or JSON file. One bad row loads nothing."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        file = Path(path)
        if not file.exists():
            raise CommandError(f"No such file: {path}")
        try:
            rows = services.prices_parse(content=file.read_text(encoding="utf-8-sig"), fmt="json" if file.suffix == ".json" else "")
            loaded = services.prices_load(actor=SYSTEM, rows=rows, source_label=file.name[:60])
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"Loaded {len(loaded)} prices."))
