"""`python manage.py import_subscribers FILE --newsletter SLUG --status pending|active
[--consent-basis TEXT]`: the admin's import, from the command line, in this process.

The file is CSV (or gzipped CSV) with an `email` column; other columns are described
in README.md. Progress is printed per chunk and a summary at the end; the rows skipped
are listed with their reasons in a report file next to the imports. Exit status 1 when
the file cannot be read or the import cannot start.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from subscriptions.lists.imports import jobs
from subscriptions.models import Newsletter, SubscriberImport, Subscription


class Command(BaseCommand):
    help = "Import subscribers to a newsletter from a CSV file (optionally gzipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--newsletter", required=True, help="the newsletter's slug")
        parser.add_argument(
            "--status",
            required=True,
            choices=[Subscription.Status.PENDING, Subscription.Status.ACTIVE],
            help="pending: each new subscriber gets a confirmation email; active: they "
            "consented elsewhere (say how with --consent-basis)",
        )
        parser.add_argument("--consent-basis", default="", help="how these people consented")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"Cannot read {path}: no such file.")
        newsletter = Newsletter.objects.filter(slug=options["newsletter"]).first()
        if newsletter is None:
            raise CommandError(f"There is no newsletter with the slug {options['newsletter']!r}.")
        try:
            with transaction.atomic():
                job = jobs.start_import(
                    newsletter=newsletter,
                    target_status=options["status"],
                    consent_basis=options["consent_basis"],
                    file_path=path.resolve(),
                    original_name=path.name,
                    actor="command line",
                    enqueue=False,
                )
        except jobs.ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        job = jobs.run_import(job.pk, on_chunk=self._progress)
        if job.state == SubscriberImport.State.DONE:
            self._progress(job)
        self.stdout.write(
            f"{'Done' if job.state == SubscriberImport.State.DONE else 'Stopped'}: "
            f"{job.rows_read} rows read; {job.added} added, {job.upgraded} upgraded "
            f"to active, {job.already_subscribed} already subscribed; skipped "
            f"{job.invalid} invalid, {job.duplicates} repeated, {job.suppressed} suppressed, "
            f"{job.left_alone} unsubscribed earlier. Confirmation emails queued: "
            f"{job.confirmations_queued}."
        )
        if job.skipped:
            self.stdout.write(f"The skipped rows and why: {job.report_path}")
        if job.state == SubscriberImport.State.FAILED:
            # What was written before the failure stays: each chunk commits on its own.
            raise CommandError(job.error)

    def _progress(self, job: SubscriberImport) -> None:
        self.stdout.write(f"{job.percent:3d}%  {job.rows_read} rows read, {job.added} added")
