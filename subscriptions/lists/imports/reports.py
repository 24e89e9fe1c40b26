"""An import's report of skipped rows (line, email, reason), kept on disk for the
editor to download, and kept no longer than needed: deleted after
IMPORT_REPORT_RETENTION_DAYS, and a person's lines scrubbed when they are erased."""

import csv
import io
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from subscriptions.lists.csv_cells import csv_safe, csv_unguarded
from subscriptions.lists.imports.reading import Rejection
from subscriptions.models import SubscriberImport
from subscriptions.signup.addresses import normalize_email

logger = logging.getLogger(__name__)
HEADER = ["line", "email", "reason"]


def report_path(job: SubscriberImport) -> Path:
    return Path(settings.IMPORT_DIR) / f"import-{job.pk}-report.csv"


class ImportReport:
    """The rows an import skipped, with the reason for each: line, email, reason."""

    def __init__(self, path: Path, *, append: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        fresh = not append or not path.exists()
        self._file = path.open("a" if not fresh else "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if fresh:
            self._writer.writerow(HEADER)

    def write(self, rejections: list[Rejection]) -> None:
        self._writer.writerows(
            (r.line, csv_safe(r.email), r.reason) for r in sorted(rejections, key=_by_line)
        )
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _by_line(rejection: Rejection) -> int:
    return rejection.line


def discard_old_reports(*, now: datetime | None = None) -> int:
    """Delete the skipped-row reports of imports finished more than
    IMPORT_REPORT_RETENTION_DAYS ago, and the uploads a failed import left behind:
    they name people. Returns how many reports went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.IMPORT_REPORT_RETENTION_DAYS)
    finished = SubscriberImport.objects.filter(finished_at__lt=cutoff)
    for file_path in finished.values_list("file_path", flat=True):
        discard_upload(Path(file_path))
    old = finished.exclude(report_path="")
    discarded = 0
    for job in old:
        Path(job.report_path).unlink(missing_ok=True)
        discarded += 1
    old.update(report_path="")
    return discarded


def discard_upload(path: Path) -> None:
    """An uploaded file is a copy of a list of people. A file the command line named is
    the operator's own and stays."""
    if path.parent == Path(settings.IMPORT_DIR) and path.name.startswith("upload-"):
        path.unlink(missing_ok=True)


def scrub_address(address: str) -> int:
    """Drop an erased person's lines from the reports of finished imports (a running
    import's report is still being written; its later rows are skipped as erased).
    Returns how many lines went."""
    removed = 0
    finished = SubscriberImport.objects.filter(finished_at__isnull=False).exclude(report_path="")
    for path in finished.values_list("report_path", flat=True):
        try:
            removed += _scrub_file(Path(path), address.strip().lower())
        except OSError:
            logger.exception("could not scrub an erased address from %s", path)
    return removed


def _scrub_file(path: Path, address: str) -> int:
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8")
    local_part = address.rpartition("@")[0]
    # Most reports never name the person: a plain search rules them out before any row
    # is parsed (an ASCII local part is only lower-cased by the normaliser).
    if local_part.isascii() and local_part not in text.lower():
        return 0
    rows = list(csv.reader(io.StringIO(text, newline="")))
    kept = [row for row in rows if not _names(row, address)]
    if len(kept) == len(rows):
        return 0
    # Written beside it and moved over it, so a download never reads half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w", newline="", encoding="utf-8") as target:
        csv.writer(target).writerows(kept)
    os.replace(temporary, path)
    return len(rows) - len(kept)


def _names(row: list[str], address: str) -> bool:
    if len(row) < 2 or row == HEADER:
        return False
    cell = csv_unguarded(row[1]).strip()
    try:
        stored = normalize_email(cell)
    except ValidationError:
        stored = cell
    return stored.lower() == address
