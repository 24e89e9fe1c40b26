"""`python manage.py import_members FILE`: add members from a CSV file (for a list kept
elsewhere before, or payments outside Stripe).

Columns, by header name: `email` (required), and optionally `name`, `status`
(active, past_due or cancelled; active when empty), `tier`, `amount`, `currency`,
`external_id` and `started_at` (ISO 8601). A member already known by external id or
address is updated, not duplicated. Bad rows are reported with their line number and
skipped; the rest go in. Exit status 1 when the file cannot be read.
"""

import csv
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from subscriptions.membership import members
from subscriptions.models import Member
from subscriptions.signup.addresses import normalize_email

# Member.amount holds ten digits, two of them after the point.
MAX_AMOUNT = Decimal(10) ** 8


class BadRow(Exception):
    """A row that cannot become a member; the message says why."""


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class Command(BaseCommand):
    help = "Import members from a CSV file with an `email` column."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: object, file: Path, **options: object) -> None:
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                report = import_rows(csv.DictReader(handle), actor=f"import:{file.name}")
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        for line, reason in report.rejected:
            self.stderr.write(f"line {line}: {reason}")
        self.stdout.write(
            f"Imported {report.imported} member(s); rejected {len(report.rejected)} row(s)."
        )


def import_rows(rows: csv.DictReader, *, actor: str) -> ImportReport:
    if rows.fieldnames is None or "email" not in [h.strip().lower() for h in rows.fieldnames]:
        raise CommandError("The file needs a header row with an `email` column.")
    report = ImportReport()
    for row in rows:
        line = rows.line_num
        cleaned = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        try:
            fields = _member_fields(cleaned)
        except BadRow as exc:
            report.rejected.append((line, str(exc)))
            continue
        members.add_member(source=Member.Source.IMPORT, actor=actor, **fields)
        report.imported += 1
    return report


def _member_fields(row: dict[str, str]) -> dict:
    try:
        email = normalize_email(row.get("email", ""))
    except ValidationError as exc:
        raise BadRow(f"not a valid address: {row.get('email', '')[:100]!r}") from exc
    status = row.get("status") or Member.Status.ACTIVE
    if status not in Member.Status.values:
        raise BadRow(f"unknown status {status[:40]!r}")
    amount = None
    if row.get("amount"):
        try:
            amount = Decimal(row["amount"])
        except InvalidOperation as exc:
            raise BadRow(f"not an amount: {row['amount'][:40]!r}") from exc
        if not amount.is_finite() or not 0 <= amount < MAX_AMOUNT:
            raise BadRow(f"not an amount: {row['amount'][:40]!r}")
        amount = amount.quantize(Decimal("0.01"))
    currency = row.get("currency", "").upper()
    if currency and (len(currency) != 3 or not currency.isalpha()):
        raise BadRow(f"not a currency code: {currency[:40]!r}")
    started_at = None
    if row.get("started_at"):
        try:
            started_at = datetime.fromisoformat(row["started_at"])
        except ValueError as exc:
            raise BadRow(f"not a date: {row['started_at'][:40]!r}") from exc
        if timezone.is_naive(started_at):
            started_at = timezone.make_aware(started_at)
    return {
        "email": email,
        "name": row.get("name", "")[:200],
        "status": status,
        "tier": row.get("tier", "")[:100],
        "amount": amount,
        "currency": currency,
        "external_id": row.get("external_id", "")[:255],
        "started_at": started_at,
    }
