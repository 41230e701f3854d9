"""``manage.py load_instruments FILE`` — create or update instruments from a CSV file (audited).

Without FILE it (re)loads the shipped list of Hong Kong securities plus BTC and ETH.
Columns: code,kind,name_en,name_zh,board_lot,currency,issuer,sector,margin_class,suspended[,active]; only code
and name_en are required; a column the file leaves out leaves that field of existing instruments as it is
(new ones take the defaults).
suspended and active are true/false, yes/no, y/n or 1/0 (any case); any other value refuses the file.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.audit import System
from portal.errors import PortalError


class Command(BaseCommand):
    help = "Load the instrument master from a CSV file (creates new codes, updates changed ones)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV file (default: the shipped Hong Kong list)")

    def handle(self, *args, **options):
        from lending.collateral import services

        path = Path(options["file"]) if options["file"] else services.SHIPPED_INSTRUMENTS
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            result = services.instruments_load(actor=System("load_instruments"), text=path.read_bytes(), source=path.name)
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{path.name}: {len(result['created'])} created, {len(result['updated'])} updated.")
