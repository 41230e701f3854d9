"""``manage.py record_archive_verify FILE.zip [--manifest-sha256 HASH]``: recompute every file's SHA-256
in a client record archive against its manifest (and the manifest against the hash recorded for the request)."""

from django.core.management.base import BaseCommand, CommandError

from lending.reporting.archive import archive_verify


class Command(BaseCommand):
    help = "Verify a client record archive against its manifest of SHA-256 hashes."

    def add_arguments(self, parser):
        parser.add_argument("archive")
        parser.add_argument("--manifest-sha256", default=None, help="The manifest hash shown on the record-request page.")

    def handle(self, *args, archive, manifest_sha256, **options):
        with open(archive, "rb") as fh:
            report = archive_verify(fh.read(), manifest_sha256=manifest_sha256)
        for problem in report.problems:
            self.stderr.write(problem)
        if not report.ok:
            raise CommandError(f"Archive does NOT verify: {len(report.problems)} problem(s); manifest SHA-256 {report.manifest_sha256}")
        self.stdout.write(f"Archive verifies: {report.checked} files match manifest.json (manifest SHA-256 {report.manifest_sha256})")
