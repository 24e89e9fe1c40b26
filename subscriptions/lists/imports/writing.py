"""Writing a chunk of checked import rows, set-based: a fixed handful of SQL statements
per chunk, whatever its size, instead of several ORM saves per row.

The chunk goes into a temporary staging table (COPY on PostgreSQL) together with ids
reserved for the rows it may create, so each table gets one INSERT ... SELECT. Then,
in one transaction per chunk: insert the subscribers that are new (the database's
unique index decides); look up, and lock, the few that existed already (the rule of
every service: the subscriber's row first, so a sign-up arriving at the same moment
waits instead of racing); sort those by the subscription they have (a repeat of an
address earlier in the file, pending, active, or ended, which an import never
overrides); and insert the subscriptions, their consent records, event log rows and,
for a pending import, confirmation emails held in the outbox until they are due.
(Suppressed addresses never get this far: the reader drops them.)

What differs between PostgreSQL and SQLite lives in the two small `Dialect` classes
(dialects.py), with the staging table.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from subscriptions.lists.imports.dialects import OUTBOX, STAGE, SUBSCRIBER, SUBSCRIPTION, Dialect
from subscriptions.lists.imports.reading import REPEAT, ImportRow, Rejection
from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup.addresses import mailbox_key

Status = Subscription.Status
Event = SubscriptionEvent.Kind
# The statuses, event kinds and outbox values the statements write, from the models
# (tests/test_path_parity.py holds the rows to what a sign-up writes).
PENDING, ACTIVE = f"'{Status.PENDING}'", f"'{Status.ACTIVE}'"
CONFIRMATION_KINDS = ", ".join(f"'{kind}'" for kind in OutboundEmail.CONFIRMATION_KINDS)

CONSENT = ConsentRecord._meta.db_table
EVENT = SubscriptionEvent._meta.db_table
OUTBOX_SUBSCRIPTIONS = OutboundEmail.subscriptions.through._meta.db_table

ENDED = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


@dataclass
class ChunkOutcome:
    added: int = 0
    upgraded: int = 0
    already_subscribed: int = 0
    duplicates: int = 0
    left_alone: int = 0
    confirmations: int = 0


@dataclass(frozen=True)
class JobContext:
    import_id: int
    newsletter_id: int
    target_status: str
    started_at: datetime
    now: datetime
    actor: str
    confirmations_per_day: int


def write_chunk(
    cursor,
    sql: Dialect,
    rows: Sequence[ImportRow],
    job: JobContext,
    *,
    first_due: datetime,
    gap: float,
) -> tuple[ChunkOutcome, list[Rejection]]:
    """Apply one chunk inside the caller's transaction."""
    outcome = ChunkOutcome()
    rejected: list[Rejection] = []
    sql.start_chunk(cursor)

    sql.load(cursor, *_staged(rows, job, first_due=first_due, gap=gap))
    existed = _add_subscribers(cursor, sql, len(rows), job)
    if existed:
        _sort_existing(cursor, job, outcome, rejected)

    # What is left: new subscriptions, and pending ones an active import upgrades.
    cursor.execute(
        f"UPDATE {SUBSCRIPTION} SET status = {ACTIVE}, confirmed_at = %s, updated_at = %s "
        f"FROM {STAGE} c WHERE c.existing_id IS NOT NULL AND {SUBSCRIPTION}.id = c.existing_id",
        [job.now, job.now],
    )
    outcome.upgraded = cursor.rowcount
    cursor.execute(
        f"INSERT INTO {SUBSCRIPTION} (id, subscriber_id, newsletter_id, status, source, "
        "created_at, pending_since, confirmed_at, updated_at) "
        f"SELECT new_id, subscriber_id, %s, target_status, '{Subscription.Source.IMPORT}', %s, "
        f"CASE WHEN target_status = {PENDING} THEN %s END, "
        f"CASE WHEN target_status = {ACTIVE} THEN %s END, %s "
        f"FROM {STAGE} WHERE existing_id IS NULL",
        [job.newsletter_id, job.started_at, job.now, job.now, job.now],
    )
    outcome.added = cursor.rowcount
    cursor.execute(
        f"INSERT INTO {CONSENT} (subscription_id, kind, at, ip_address, user_agent, "
        "page_url, consent_text) "
        f"SELECT COALESCE(existing_id, new_id), '{ConsentRecord.Kind.IMPORT}', "
        "COALESCE(signed_up_at, %s), "
        f"{sql.inet % 'signup_ip'}, '', %s, consent_basis FROM {STAGE}",
        [job.now, _consent_page(job)],
    )
    cursor.execute(
        f"INSERT INTO {EVENT} (subscription_id, kind, from_status, to_status, actor, detail, at) "
        "SELECT COALESCE(existing_id, new_id), "
        f"CASE WHEN target_status = {PENDING} THEN '{Event.SUBSCRIBED}' "
        f"ELSE '{Event.ACTIVATED}' END, "
        f"COALESCE(existing_status, ''), target_status, %s, {sql.json % '%s'}, %s FROM {STAGE}",
        [
            job.actor,
            json.dumps({"source": Subscription.Source.IMPORT, "import_id": job.import_id}),
            job.now,
        ],
    )
    if job.target_status == Status.PENDING:
        outcome.confirmations = _queue_confirmations(cursor, sql, job)
    return outcome, rejected


def _staged(
    rows: Sequence[ImportRow], job: JobContext, *, first_due: datetime, gap: float
) -> tuple[Sequence[tuple], Sequence[str]]:
    """Rows as the staging table takes them, and its columns they fill: for a pending
    import with the time each row's confirmation may go out (a big one sends at the
    configured pace) and the mailbox it goes to (the sign-up's cap counts by it); an
    active import's rows go as the reader made them."""
    if job.target_status != Status.PENDING:
        return rows, ImportRow._fields
    due = [
        (*row, first_due + timedelta(seconds=gap * index), mailbox_key(row.email))
        for index, row in enumerate(rows)
    ]
    return due, (*ImportRow._fields, "due_at", "mailbox_key")


def _add_subscribers(cursor, sql: Dialect, count: int, job: JobContext) -> bool:
    """Insert the new subscribers under their reserved ids; point the rows whose
    address existed already at the existing subscriber, and lock those. Returns
    whether any existed."""
    cursor.execute(
        f"INSERT INTO {SUBSCRIBER} (id, email, name, attributes, created_at) "
        f"SELECT subscriber_id, email, name, {sql.json % 'attributes'}, %s FROM {STAGE} "
        "WHERE true ON CONFLICT (LOWER(email)) DO NOTHING",
        [job.started_at],
    )
    if cursor.rowcount == count:
        return False  # every address was new: the usual case, settled without a lookup
    cursor.execute(
        f"SELECT email_ci, line FROM {STAGE} c WHERE NOT EXISTS "
        f"(SELECT 1 FROM {SUBSCRIBER} s WHERE s.id = c.subscriber_id)"
    )
    existed = dict(cursor.fetchall())
    found = []
    addresses = list(existed)
    for start in range(0, len(addresses), 5_000):  # within every database's parameter cap
        batch = addresses[start : start + 5_000]
        cursor.execute(
            f"SELECT id, LOWER(email), created_at FROM {SUBSCRIBER} WHERE LOWER(email) IN "
            f"({', '.join(['%s'] * len(batch))})",
            batch,
        )
        found += cursor.fetchall()
    sql.lock(cursor, sorted(subscriber_id for subscriber_id, _, _ in found))
    # A subscriber this very import created (its timestamp is the import's) is the
    # same address earlier in the file: a repeat, wherever in the file, even after a
    # resumed import.
    cursor.executemany(
        f"UPDATE {STAGE} SET subscriber_id = %s, existed = true, "
        "existing_status = CASE WHEN %s THEN 'repeat' END WHERE line = %s",
        [
            (subscriber_id, created_at == job.started_at, existed[address])
            for subscriber_id, address, created_at in found
        ],
    )
    # A subscriber with a name keeps it; one without gets the file's.
    cursor.execute(
        f"UPDATE {SUBSCRIBER} SET name = c.name FROM {STAGE} c WHERE c.existed "
        f"AND {SUBSCRIBER}.id = c.subscriber_id AND {SUBSCRIBER}.name = '' AND c.name <> ''"
    )
    return True


def _sort_existing(
    cursor, job: JobContext, outcome: ChunkOutcome, rejected: list[Rejection]
) -> None:
    """Rows whose subscriber existed: find their subscription to this newsletter, and
    drop the rows that repeat the file, are subscribed already, or ended (an import
    never overrides an unsubscribe, a bounce or a complaint)."""
    cursor.execute(
        f"UPDATE {STAGE} SET existing_id = sub.id, existing_status = sub.status "
        f"FROM {SUBSCRIPTION} sub WHERE {STAGE}.existed AND {STAGE}.existing_status IS NULL "
        f"AND sub.subscriber_id = {STAGE}.subscriber_id AND sub.newsletter_id = %s",
        [job.newsletter_id],
    )
    _mark_repeats_of_earlier_chunks(cursor, job)
    cursor.execute(
        f"DELETE FROM {STAGE} WHERE existing_status IN ('repeat', {ACTIVE}, "
        f"{', '.join(repr(str(s)) for s in ENDED)}) "
        f"OR (existing_status = {PENDING} AND target_status = {PENDING}) "
        "RETURNING line, email, existing_status"
    )
    for line, email, status in cursor.fetchall():
        if status == "repeat":
            outcome.duplicates += 1
            rejected.append(Rejection(line, email, REPEAT))
        elif status in ENDED:
            outcome.left_alone += 1
            rejected.append(Rejection(line, email, f"{status} earlier: an import never re-adds it"))
        else:
            outcome.already_subscribed += 1


def _mark_repeats_of_earlier_chunks(cursor, job: JobContext) -> None:
    """A subscription this import already wrote a consent record for is an address
    earlier in the file, in an earlier chunk (a chunk holds each address once)."""
    cursor.execute(f"SELECT existing_id FROM {STAGE} WHERE existing_id IS NOT NULL")
    known = [subscription_id for (subscription_id,) in cursor.fetchall()]
    # Looked up by id, a few at a time: as one join the planner, its statistics behind
    # the import's own rows, scans every consent record instead of using the index.
    for start in range(0, len(known), 5_000):
        batch = known[start : start + 5_000]
        cursor.execute(
            f"UPDATE {STAGE} SET existing_status = 'repeat' WHERE existing_id IN "
            f"(SELECT subscription_id FROM {CONSENT} WHERE subscription_id IN "
            f"({', '.join(['%s'] * len(batch))}) "
            f"AND kind = '{ConsentRecord.Kind.IMPORT}' AND page_url = %s)",
            [*batch, _consent_page(job)],
        )


def _consent_page(job: JobContext) -> str:
    """Where an imported row's consent was given, as its consent record names it."""
    return f"import:{job.import_id}"


def _queue_confirmations(cursor, sql: Dialect, job: JobContext) -> int:
    """One confirmation email per new pending subscription, due at its staged time,
    unless its mailbox had its daily share of confirmations already: counted as the
    sign-up counts (`queued_emails.queue_confirmation_email`), by the mailbox, and by the
    subscriber for emails queued before the outbox kept mailboxes. (Variants of one
    mailbox within a single chunk are counted against what was there before it.)"""
    recent = f"o.kind IN ({CONFIRMATION_KINDS}) AND o.created_at >= %(since)s"
    cursor.execute(
        f"UPDATE {STAGE} SET capped = true WHERE existing_id IS NULL "
        f"AND target_status = {PENDING} AND (SELECT COUNT(*) FROM {OUTBOX} o "
        f"WHERE o.mailbox_key <> '' AND o.mailbox_key = {STAGE}.mailbox_key AND {recent}) "
        f"+ CASE WHEN existed THEN (SELECT COUNT(*) FROM {OUTBOX} o "
        f"WHERE o.subscriber_id = {STAGE}.subscriber_id AND o.mailbox_key = '' AND {recent}) "
        "ELSE 0 END >= %(cap)s",
        {"since": job.now - timedelta(days=1), "cap": job.confirmations_per_day},
    )
    wanted = f"existing_id IS NULL AND target_status = {PENDING} AND NOT capped"
    sql.reserve_outbound_ids(cursor, wanted)
    # `next_attempt_at` holds the row back: the sweeper sends it once it is due.
    cursor.execute(
        f"INSERT INTO {OUTBOX} (id, kind, status, to_email, mailbox_key, subscriber_id, "
        "attempts, last_error, esp_message_id, created_at, claimed_by_task, next_attempt_at) "
        f"SELECT outbound_id, '{OutboundEmail.Kind.CONFIRMATION}', "
        f"'{OutboundEmail.Status.QUEUED}', email, mailbox_key, subscriber_id, 0, '', '', %s, "
        f"'', due_at FROM {STAGE} WHERE {wanted}",
        [job.now],
    )
    queued = cursor.rowcount
    cursor.execute(
        f"INSERT INTO {OUTBOX_SUBSCRIPTIONS} (outboundemail_id, subscription_id) "
        f"SELECT outbound_id, new_id FROM {STAGE} WHERE {wanted}"
    )
    return queued
