"""`python manage.py export_subscribers --newsletter SLUG [--status S] [-o FILE]`: a
newsletter's subscriptions as CSV with their proof of consent (the admin's export
columns), streamed to standard output or a file."""

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.lists import exports
from subscriptions.models import Newsletter, Subscription


class Command(BaseCommand):
    help = "Export a newsletter's subscribers as CSV, with their proof of consent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--newsletter", required=True, help="the newsletter's slug")
        parser.add_argument("--status", choices=Subscription.Status.values)
        parser.add_argument("-o", "--output", type=Path, help="a file (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        newsletter = Newsletter.objects.filter(slug=options["newsletter"]).first()
        if newsletter is None:
            raise CommandError(f"There is no newsletter with the slug {options['newsletter']!r}.")
        subscriptions = Subscription.objects.filter(newsletter=newsletter)
        if options["status"]:
            subscriptions = subscriptions.filter(status=options["status"])
        output: Path | None = options["output"]
        try:
            target = output.open("wb") if output else sys.stdout.buffer
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from exc
        try:
            for piece in exports.csv_chunks(subscriptions):
                target.write(piece)
        finally:
            if output:
                target.close()
        self.stderr.write(f"Exported {subscriptions.count()} subscription(s).")
