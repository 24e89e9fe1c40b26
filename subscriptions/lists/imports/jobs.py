"""Subscriber imports as jobs: start one (an editor's upload or the command line), run
it (a Celery task, or in-process for the command), and read its report.

Running streams the file: one thread reads and checks rows (pure Python), while this
one writes each finished chunk in a transaction of its own (mostly waiting on the
database, so the two overlap on two cores). Each chunk's counters and the file line it
ends on commit with it, so the admin's progress bar is always true and an import cut
off midway resumes after its last committed chunk.
"""

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from subscriptions.lists.imports import dialects, interpreter, late_suppressions, reports, writing
from subscriptions.lists.imports.pipeline import ChunkWriter
from subscriptions.lists.imports.reading import (
    LEFT_REASONS,
    REPEAT,
    SUPPRESSED,
    Chunk,
    ImportFile,
    ImportFileError,
    Rejection,
    RowChecker,
    chunks,
)
from subscriptions.lists.imports.reports import ImportReport, report_path
from subscriptions.mail import suppression
from subscriptions.models import Newsletter, SubscriberImport, Subscription
from subscriptions.platform.leases import Namespace, lease
from subscriptions.platform.task_queue import send_to_worker
from subscriptions.signup import archiving
from subscriptions.signup.addresses import domain_rules

logger = logging.getLogger(__name__)
RUN_TASK = "subscriptions.tasks.run_subscriber_import"
# Rows an import checks and writes per transaction (BENCHMARKS.md weighs bigger ones
# against the memory they take).
CHUNK_ROWS = 20_000
# Database connections an import writes on at once (PostgreSQL): a chunk's statements
# run while the previous chunk commits. 1 writes one chunk after another.
WRITE_LANES = 2
State = SubscriberImport.State
Phase = SubscriberImport.Phase


class ImportRefused(Exception):
    """An import that may not start; the message says why, for the editor."""


class NewsletterArchived(Exception):
    """The import's newsletter was archived while it ran: no further chunk is written."""


def start_import(
    *,
    newsletter: Newsletter,
    target_status: str,
    consent_basis: str,
    file_path: Path,
    original_name: str,
    actor: str,
    enqueue: bool = True,
) -> SubscriberImport:
    """Record an import and, after commit, hand it to a worker."""
    consent_basis = consent_basis.strip()
    # Read afresh and held open until the job is recorded (archiving.py).
    if not archiving.hold_open([newsletter.pk]):
        raise ImportRefused(f"{newsletter.name} is archived: unarchive it to import into it.")
    if target_status not in (Subscription.Status.PENDING, Subscription.Status.ACTIVE):
        raise ImportRefused("Choose pending or active.")
    if target_status == Subscription.Status.ACTIVE and not consent_basis:
        raise ImportRefused(
            "Say how these people consented (for example: signed up on our old platform, "
            "double opt-in, 2019-2026): an active import records it for every row."
        )
    job = SubscriberImport.objects.create(
        newsletter=newsletter,
        target_status=target_status,
        consent_basis=consent_basis or "Imported by an editor; each reader confirms by email",
        file_path=str(file_path),
        original_name=original_name[:255],
        created_by=actor[:200],
        created_at=timezone.now(),
        bytes_total=file_path.stat().st_size,
    )
    if enqueue:
        transaction.on_commit(partial(_enqueue, job.pk), robust=True)
    return job


def _enqueue(import_id: int) -> None:
    try:
        send_to_worker(RUN_TASK, import_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweeper picks it up
        logger.warning("could not enqueue import %s; the sweeper will", import_id)


def requeue_stale_imports() -> int:
    """Enqueue imports still waiting for a worker after OUTBOX_STALE_AFTER_SECONDS."""
    stale_before = timezone.now() - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    ids = list(
        SubscriberImport.objects.filter(
            state=State.QUEUED, created_at__lt=stale_before
        ).values_list("pk", flat=True)
    )
    for import_id in ids:
        _enqueue(import_id)
    return len(ids)


def run_import(
    import_id: int, *, on_chunk: Callable[[SubscriberImport], None] | None = None
) -> SubscriberImport:
    """Run (or resume) an import to the end; idempotent once it is done, and a second
    delivery of the task while the first still runs does nothing (the lease)."""
    with lease(Namespace.SUBSCRIBER_IMPORT, import_id) as held:
        job = _claim(import_id) if held else None
        if job is None:
            return SubscriberImport.objects.get(pk=import_id)
        return _run_claimed(job, on_chunk)


def _run_claimed(job: SubscriberImport, on_chunk: Callable | None) -> SubscriberImport:
    with interpreter.set_for_bulk_work():
        return _run_opened(job, on_chunk)


def _run_opened(job: SubscriberImport, on_chunk: Callable | None) -> SubscriberImport:
    try:
        source = ImportFile(Path(job.file_path))
    except ImportFileError as exc:
        return _finish(job, state=State.FAILED, error=f"The file cannot be read: {exc}.")
    try:
        _run(job, source, on_chunk)
    except ImportFileError as exc:
        return _finish(job, state=State.FAILED, error=f"The file cannot be read: {exc}.")
    except NewsletterArchived:
        return _finish(job, state=State.FAILED, error=_archived_meanwhile(job))
    except Exception as exc:
        logger.exception("import %s failed", job.pk)
        _finish(job, state=State.FAILED, error=f"The import stopped: {type(exc).__name__}.")
        raise
    finally:
        source.close()
    _discard_upload(job)
    return _finish(job, state=State.DONE)


def _archived_meanwhile(job: SubscriberImport) -> str:
    job.refresh_from_db()
    stopped = (
        f"it stopped after line {job.lines_done} ({job.rows_read} rows read)"
        if job.lines_done
        else "it stopped before adding anyone"
    )
    return (
        f"{job.newsletter.name} was archived while the import ran: {stopped}. To finish, "
        "unarchive it and import the file again; rows already added count as already "
        "subscribed."
    )


def _discard_upload(job: SubscriberImport) -> None:
    """Once imported, the upload goes (the report keeps the rows that were skipped)."""
    reports.discard_upload(Path(job.file_path))


def _claim(import_id: int) -> SubscriberImport | None:
    with transaction.atomic():
        job = SubscriberImport.objects.select_for_update().filter(pk=import_id).first()
        if job is None or job.state in (State.DONE, State.FAILED):
            return None
        job.state, job.phase = State.RUNNING, Phase.READING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["state", "phase", "started_at"])
    return job


def _finish(job: SubscriberImport, *, state: str, error: str = "") -> SubscriberImport:
    SubscriberImport.objects.filter(pk=job.pk).update(
        state=state, phase=Phase.FINISHED, error=error, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def _run(job: SubscriberImport, source: ImportFile, on_chunk: Callable | None) -> None:
    seen_through = late_suppressions.latest_entry_id()
    suppressed, suppressed_hashes = suppression.in_force_keys()
    checker = RowChecker(
        columns=source.columns,
        target_status=job.target_status,
        consent_basis=job.consent_basis,
        rules=domain_rules(),
        suppressed=suppressed,
        suppressed_hashes=suppressed_hashes,
    )
    meanwhile = late_suppressions.LateSuppressions(checker, after_id=seen_through)
    report = ImportReport(report_path(job), append=job.lines_done > 0)
    SubscriberImport.objects.filter(pk=job.pk).update(report_path=str(report.path))
    sql = dialects.dialect()
    pace = _ConfirmationPace(
        started_at=job.started_at or timezone.now(),
        queued=job.confirmations_queued,
        gap=60.0 / max(1, settings.IMPORT_CONFIRMATIONS_PER_MINUTE),
    )
    import_id, newsletter_id, target_status = job.pk, job.newsletter_id, job.target_status
    started_at, bytes_total = job.started_at or timezone.now(), job.bytes_total

    def prepare() -> None:
        with connection.cursor() as cursor:
            sql.start_import(cursor)

    def write(chunk: Chunk) -> list[Rejection]:
        # Held open until this chunk commits, so an archive waits for it (archiving.py).
        if not archiving.hold_open([newsletter_id]):
            raise NewsletterArchived
        meanwhile.drop_from(chunk)
        now = timezone.now()
        context = writing.JobContext(
            import_id=import_id,
            newsletter_id=newsletter_id,
            target_status=target_status,
            started_at=started_at,
            now=now,
            actor=f"import:{import_id}",
            confirmations_per_day=settings.CONFIRMATION_EMAILS_PER_DAY,
        )
        with connection.cursor() as cursor:
            outcome, rejected = writing.write_chunk(
                cursor, sql, chunk.rows, context, first_due=pace.next_due(now), gap=pace.gap
            )
        _count(import_id, bytes_total, chunk, outcome)
        pace.queued += outcome.confirmations
        return rejected

    def committed(chunk: Chunk, rejected: list[Rejection]) -> None:
        report.write(chunk.rejections + rejected)
        if on_chunk is not None:
            job.refresh_from_db()
            on_chunk(job)

    try:
        checked = chunks(source, checker, size=CHUNK_ROWS, skip_through=job.lines_done)
        writer = ChunkWriter(prepare=prepare, write=write, committed=committed, lanes=_lanes())
        writer.run(_read_ahead(checked))
    finally:
        report.close()


def _lanes() -> int:
    """How many connections write at once (see pipeline.py): WRITE_LANES on
    PostgreSQL; one on SQLite, which takes one writer at a time, and inside a caller's
    transaction, whose uncommitted rows no other connection could see."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return max(1, WRITE_LANES)


@dataclass
class _ConfirmationPace:
    """A pending import's confirmations go out `gap` seconds apart, counted from the
    start of the import across its chunks (and across a resumption)."""

    started_at: datetime
    queued: int
    gap: float

    def next_due(self, now: datetime) -> datetime:
        return max(now, self.started_at + timedelta(seconds=self.gap * self.queued))


def _count(import_id: int, bytes_total: int, chunk: Chunk, outcome: writing.ChunkOutcome) -> None:
    reasons = Counter(rejection.reason for rejection in chunk.rejections)
    marked_as_left = sum(reasons[reason] for reason in LEFT_REASONS)
    invalid = len(chunk.rejections) - reasons[REPEAT] - reasons[SUPPRESSED] - marked_as_left
    SubscriberImport.objects.filter(pk=import_id).update(
        phase=Phase.WRITING if chunk.bytes_read >= bytes_total else Phase.READING,
        bytes_read=chunk.bytes_read,
        rows_read=F("rows_read") + chunk.rows_read,
        lines_done=chunk.last_line,
        added=F("added") + outcome.added,
        upgraded=F("upgraded") + outcome.upgraded,
        already_subscribed=F("already_subscribed") + outcome.already_subscribed,
        invalid=F("invalid") + invalid,
        duplicates=F("duplicates") + reasons[REPEAT] + outcome.duplicates,
        suppressed=F("suppressed") + reasons[SUPPRESSED],
        left_alone=F("left_alone") + outcome.left_alone + marked_as_left,
        confirmations_queued=F("confirmations_queued") + outcome.confirmations,
    )


_DONE = object()


def _read_ahead(source: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    """Read and check the next chunks in a thread while the caller writes this one.

    The checking is Python and the writing mostly waiting on the database, so on two
    cores they overlap; the bounded queue keeps memory at a few chunks.
    """
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in source:
                while not stop.is_set():
                    try:
                        ahead.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer to raise
            ahead.put(exc)

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)
