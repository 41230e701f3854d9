from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lending.risk import services
from portal.audit import SYSTEM
from portal.errors import PortalError


class Command(BaseCommand):
    help = (
        "Load BTC/ETH quotes in HKD from a CSV (source,asset,price_hkd,as_of) or JSON file into the risk engine's "
        "price governance: each row names an active price source, and the reference price is recomputed from "
        "the sources' fresh quotes. One bad row loads nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        file = Path(path)
        if not file.exists():
            raise CommandError(f"No such file: {path}")
        try:
            rows = services.quotes_parse(content=file.read_text(encoding="utf-8-sig"), fmt="json" if file.suffix == ".json" else "")
            loaded = services.quotes_record(actor=SYSTEM, rows=rows, strict=True, label=file.name[:60])
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"Loaded {len(loaded)} quotes."))
