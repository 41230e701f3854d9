from django.core.management.base import BaseCommand, CommandError

from lending.ledger import ledger_check


class Command(BaseCommand):
    help = "Recompute every facility's balance from its ledger entries and name any entry or facility that disagrees."

    def handle(self, *args, **options):
        report = ledger_check()
        if not report.ok:
            lines = []
            if report.broken_entries:
                lines.append(f"entries whose balance after is not the running sum of the ledger: {report.broken_entries}")
            if report.bad_sign_entries:
                lines.append(f"entries whose delta does not match their kind: {report.bad_sign_entries}")
            for facility_id, drawn, total in report.mismatched_facilities:
                lines.append(f"facility {facility_id}: drawn balance {drawn} but its entries sum to {total}")
            raise CommandError("Ledger check failed:\n  " + "\n  ".join(lines))
        self.stdout.write(self.style.SUCCESS(
            f"Ledger intact: {report.entries} entries on {report.facilities} facilities; every drawn balance is the sum of its entries."))
