import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from onboarding.services import questionnaire_publish
from portal.errors import PortalError


class Command(BaseCommand):
    help = "Publish a new suitability questionnaire version from a JSON file ({\"title\": ..., \"steps\": [...], ...}). Earlier versions and their answers are untouched."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        title = data.pop("title", "Suitability and knowledge assessment")
        try:
            questionnaire = questionnaire_publish(definition=data, title=title)
        except (PortalError, KeyError, TypeError) as exc:
            raise CommandError(f"Not a valid questionnaire: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Published questionnaire version {questionnaire.version}."))
