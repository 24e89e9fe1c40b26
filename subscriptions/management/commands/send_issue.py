"""`python manage.py send_issue NEWSLETTER_SLUG --subject "..." --body FILE.md`: write an
issue and send it now, or at `--at` (ISO 8601 with its offset), for a CMS or a cron job.
`--dry-run` prints how many readers it would go to and changes nothing. Exits with
status 1 and a message for an unknown newsletter, an unreadable or empty body, a time
without an offset or in the past, or a newsletter with no readers.
"""

from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from subscriptions.exceptions import IssueInvalid, IssueNotSendable
from subscriptions.issues import services
from subscriptions.models import Newsletter


class Command(BaseCommand):
    help = "Write an issue of a newsletter from a Markdown file and send it (or schedule it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("newsletter", metavar="NEWSLETTER_SLUG")
        parser.add_argument("--subject", required=True)
        parser.add_argument("--body", required=True, type=Path, metavar="FILE.md")
        parser.add_argument("--preheader", default="")
        parser.add_argument("--at", default="", metavar="2026-12-10T07:00:00+02:00")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        slug = str(options["newsletter"])
        newsletter = Newsletter.objects.current().filter(slug=slug).first()
        if newsletter is None:
            raise CommandError(f"No newsletter has the slug {slug!r}.")
        body = _read(options["body"])  # type: ignore[arg-type]
        at = _when(str(options["at"]))
        subject = str(options["subject"])
        try:
            services.check_content(subject=subject, body=body)
        except IssueInvalid as exc:
            raise CommandError(str(exc)) from exc
        readers = services.audience_count(newsletter)
        if options["dry_run"]:
            self.stdout.write(f"{newsletter.name}: would go to {readers} reader(s). Nothing sent.")
            return
        try:
            with transaction.atomic():
                issue = services.create_issue(
                    newsletter=newsletter,
                    subject=subject,
                    body=body,
                    preheader=str(options["preheader"]),
                    actor="command:send_issue",
                )
                if at is None:
                    issue = services.send_now(issue_id=issue.pk, actor="command:send_issue")
                else:
                    issue = services.schedule(issue_id=issue.pk, at=at, actor="command:send_issue")
        except (IssueInvalid, IssueNotSendable) as exc:
            raise CommandError(str(exc)) from exc
        if at is None:
            self.stdout.write(f"Issue {issue.pk}: sending to {issue.audience} reader(s).")
        else:
            self.stdout.write(
                f"Issue {issue.pk}: scheduled for {timezone.localtime(at).isoformat()} "
                f"({readers} reader(s) today)."
            )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from exc


def _when(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"--at {raw!r} is not an ISO 8601 time.") from exc
    if timezone.is_naive(at):
        raise CommandError("--at needs its offset from UTC, e.g. 2026-12-10T07:00:00+02:00.")
    if at <= timezone.now():
        raise CommandError(f"--at {raw} has passed; choose a later time.")
    return at
