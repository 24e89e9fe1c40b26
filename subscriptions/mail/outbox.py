"""The email outbox: queue a row with the state change, claim it to send, record the
outcome. A row moves queued → sending → sent, or → failed after a permanent error or
too many attempts; a redelivered or duplicated task finds it claimed or sent and does
nothing.
"""

import logging
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from subscriptions.models import GoalMilestone, OutboundEmail, Subscriber, Subscription
from subscriptions.platform.leases import Namespace, lease
from subscriptions.platform.task_queue import send_to_worker

logger = logging.getLogger(__name__)
Status = OutboundEmail.Status
SEND_TASK = "subscriptions.tasks.send_outbound_email"


def queue_email(
    *,
    kind: str,
    subscriber: Subscriber,
    subscriptions: Sequence[Subscription],
    now: datetime,
    mailbox_key: str = "",
) -> OutboundEmail:
    """Write an outbox row and enqueue its task once the transaction commits."""
    outbound = OutboundEmail.objects.create(
        kind=kind,
        to_email=subscriber.email,
        subscriber=subscriber,
        created_at=now,
        mailbox_key=mailbox_key,
    )
    outbound.subscriptions.add(*subscriptions)
    transaction.on_commit(partial(enqueue, outbound.pk), robust=True)
    return outbound


def queue_milestone_email(*, milestone: GoalMilestone, to_email: str, now: datetime) -> bool:
    """Write an outbox row telling an editor a milestone was reached, once per milestone
    and address (a database constraint); returns whether a row was written."""
    try:
        with transaction.atomic():
            outbound = OutboundEmail.objects.create(
                kind=OutboundEmail.Kind.MILESTONE,
                to_email=to_email,
                milestone=milestone,
                created_at=now,
            )
    except IntegrityError:
        return False
    transaction.on_commit(partial(enqueue, outbound.pk), robust=True)
    return True


def enqueue(outbound_email_id: int) -> bool:
    """Hand a row to Celery; returns whether the broker took it. If the broker is down
    the row stays queued, marked due at once, so the next sweep (or the worker, as soon
    as it reconnects) sends it; the caller's request still succeeds."""
    try:
        # One LPUSH: every sign-up comes through here (see task_queue).
        send_to_worker(SEND_TASK, outbound_email_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweeper is the safety net
        logger.warning(
            "could not enqueue outbound email %s; it is sent once the broker is back",
            outbound_email_id,
            exc_info=True,
        )
        _mark_due_now(outbound_email_id)
        return False
    return True


def _mark_due_now(outbound_email_id: int) -> None:
    """A row whose task never reached the broker is due at once, not once it looks lost
    (OUTBOX_STALE_AFTER_SECONDS): the sign-up knows its enqueue failed. A row already
    due (held back by an import, or in a retry's backoff) keeps its time."""
    try:
        OutboundEmail.objects.filter(
            pk=outbound_email_id, status=Status.QUEUED, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now())
    except DatabaseError:
        # The database went too: the sweeper still finds the row once it looks lost.
        logger.warning("could not mark outbound email %s due", outbound_email_id)


def send_lease(outbound_email_id: int) -> AbstractContextManager[bool]:
    """Held while a row is being sent (see `leases`): a second delivery of the task
    that cannot take it skips the row instead of mailing twice."""
    return lease(Namespace.OUTBOUND_EMAIL, outbound_email_id)


def claim(
    outbound_email_id: int, *, task_id: str = "", now: datetime | None = None
) -> OutboundEmail | None:
    """Mark a row as being sent and return it, or None if there is nothing to do.

    Call it holding `send_lease` (the worker's task takes both in one statement, see
    `sending`). A row another task claimed recently is left alone (a duplicate
    delivery). A row claimed by this same task id is ours from a worker that
    died mid-send (acks_late redelivered it; the lease shows the first delivery is
    gone), and one claimed longer ago than OUTBOX_STALE_AFTER_SECONDS was abandoned;
    both are taken over.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    claimable = Q(status=Status.QUEUED) | Q(status=Status.SENDING, claimed_at__lte=stale_before)
    if task_id:
        claimable |= Q(status=Status.SENDING, claimed_by_task=task_id)
    # One UPDATE decides: the row's lock makes a second claim at the same moment wait,
    # then find the row claimed (the database re-checks the conditions on the new row).
    claimed = OutboundEmail.objects.filter(claimable, pk=outbound_email_id).update(
        status=Status.SENDING,
        claimed_at=now,
        claimed_by_task=task_id[:255],
        next_attempt_at=None,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    # With its subscriber, whose language the message is written in.
    return OutboundEmail.objects.select_related("subscriber").get(pk=outbound_email_id)


def mark_sent(outbound: OutboundEmail, *, esp_message_id: str = "") -> None:
    OutboundEmail.objects.filter(pk=outbound.pk, status=Status.SENDING).update(
        status=Status.SENT,
        sent_at=timezone.now(),
        esp_message_id=esp_message_id[:255],
        last_error="",
    )


def mark_failed(outbound: OutboundEmail, *, error: str) -> None:
    OutboundEmail.objects.filter(pk=outbound.pk, status=Status.SENDING).update(
        status=Status.FAILED, last_error=error[:2000]
    )


def mark_suppressed(outbound: OutboundEmail) -> None:
    OutboundEmail.objects.filter(pk=outbound.pk, status=Status.SENDING).update(
        status=Status.SUPPRESSED, last_error="The address is on the suppression list."
    )


def retry(outbound_email_ids: list[int]) -> int:
    """Give failed or suppressed rows another go (an editor's action); returns how many.

    A row still suppressed at send time is suppressed again, so this never mails a
    suppressed address.
    """
    with transaction.atomic():
        ids = list(
            OutboundEmail.objects.select_for_update()
            .filter(pk__in=outbound_email_ids, status__in=[Status.FAILED, Status.SUPPRESSED])
            .values_list("pk", flat=True)
        )
        OutboundEmail.objects.filter(pk__in=ids).update(
            status=Status.QUEUED,
            claimed_at=None,
            # Due now; should the enqueue below fail, the sweeper takes the row up.
            next_attempt_at=timezone.now(),
            attempts=0,
            last_error="",
        )
        for outbound_email_id in ids:
            transaction.on_commit(partial(enqueue, outbound_email_id), robust=True)
    return len(ids)


def release_for_retry(outbound: OutboundEmail, *, error: str, retry_in: float) -> None:
    """Put a row back in the queue after a transient error, due again in `retry_in`
    seconds, when the task's own retry runs."""
    OutboundEmail.objects.filter(pk=outbound.pk, status=Status.SENDING).update(
        status=Status.QUEUED,
        last_error=error[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=retry_in),
    )


# Rows whose task was lost (never enqueued, or their worker died) that one sweep takes;
# after a long broker outage the next sweeps take the rest.
LOST_PER_SWEEP = 1000
# A send claimed this long ago whose send lease is free lost its worker (PostgreSQL):
# long enough for a send that is merely slow to still hold its lease.
DEAD_SENDER_AFTER = timedelta(seconds=5)
# Sends whose worker may have died that one sweep looks at.
DEAD_SENDERS_PER_SWEEP = 100
# Rows handed to the broker per batch after it lost everything it held.
RESET_BATCH = 1000


def requeue_stale(*, now: datetime | None = None) -> int:
    """Enqueue rows whose task is lost: never enqueued (the broker was down: due at
    once, see `enqueue`), queued so long that the broker must have lost it, a retry
    overdue (its task never came back), or a send whose worker died; and rows held back
    until due (a pending import's confirmations) once they are due, oldest due first.

    A row whose retry is not yet overdue is left alone, however long its backoff: the
    retry's own task is waiting in the broker, and a second enqueue would start a second
    chain of retries and cut the backoff short. A row this sweep hands to the broker is
    not handed again until OUTBOX_STALE_AFTER_SECONDS later, so a long queue is not
    flooded with duplicates; a duplicate that does arrive is a no-op (claim and lease).
    """
    now = now or timezone.now()
    # First, so a send taken back here is not also found below as a stale claim.
    taken_back = release_dead_senders(now=now)
    stale_before = now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    not_handed_lately = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale_before)
    due_ids = list(
        OutboundEmail.objects.filter(
            # Held back and never tried (a pending import's), or never enqueued: due is due.
            Q(status=Status.QUEUED, attempts=0, next_attempt_at__lte=now)
            # A retry: its own task is due then; only if that is long overdue was it lost.
            | Q(status=Status.QUEUED, attempts__gt=0, next_attempt_at__lt=stale_before),
            not_handed_lately,
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: due_per_sweep()]
    )
    lost_ids = list(
        OutboundEmail.objects.filter(
            Q(status=Status.QUEUED, next_attempt_at__isnull=True)
            & (
                Q(enqueued_at__isnull=True, created_at__lt=stale_before)
                | Q(enqueued_at__lt=stale_before)
            )
            | Q(status=Status.SENDING, claimed_at__lt=stale_before) & not_handed_lately
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:LOST_PER_SWEEP]
    )
    count = _hand_over(taken_back + due_ids + lost_ids, now=now)
    if count:
        logger.info("re-enqueued %d stale or due outbound emails", count)
    return count


def release_dead_senders(*, now: datetime) -> list[int]:
    """Put back in the queue the sends whose worker died (killed, or its machine gone):
    on PostgreSQL a send holds its lease on the worker's own database session, so a
    lease that is free while the row still says "sending" outlived its holder. Found
    within a sweep, not after OUTBOX_STALE_AFTER_SECONDS. Returns the rows put back
    (due now, for the caller to enqueue). Elsewhere (SQLite, one machine) the stale
    claim rule above does it."""
    if connection.vendor != "postgresql":
        return []
    candidates = list(
        OutboundEmail.objects.filter(status=Status.SENDING, claimed_at__lt=now - DEAD_SENDER_AFTER)
        .order_by("claimed_at")
        .values_list("pk", flat=True)[:DEAD_SENDERS_PER_SWEEP]
    )
    released = []
    for outbound_email_id in candidates:
        with send_lease(outbound_email_id) as free:
            # Under the lease no one is sending the row: if it still says "sending", its
            # sender died before it could record the outcome.
            if free and OutboundEmail.objects.filter(
                pk=outbound_email_id, status=Status.SENDING
            ).update(status=Status.QUEUED, next_attempt_at=now):
                released.append(outbound_email_id)
    if released:
        logger.warning("took back %d outbound emails from a worker that died", len(released))
    return released


def requeue_after_broker_reset(*, now: datetime | None = None) -> int:
    """The broker lost every message it held (Redis restarted without its data): hand
    every queued row that was waiting for its task to the broker again, at once, in
    batches. Rows held back until later (an import's pace, a retry's backoff) keep
    their time; the sweeper takes them when due."""
    now = now or timezone.now()
    waiting = OutboundEmail.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=Status.QUEUED
    ).order_by("pk")
    handed, after = 0, 0
    while batch := list(waiting.filter(pk__gt=after).values_list("pk", flat=True)[:RESET_BATCH]):
        handed += _hand_over(batch, now=now)
        after = batch[-1]
    if handed:
        logger.warning("the broker lost its messages: re-enqueued %d outbound emails", handed)
    return handed


def _hand_over(outbound_email_ids: list[int], *, now: datetime) -> int:
    """Enqueue each row and record when the broker took it; returns how many it took."""
    taken = [pk for pk in outbound_email_ids if enqueue(pk)]
    if taken:
        OutboundEmail.objects.filter(pk__in=taken).update(enqueued_at=now)
    return len(taken)


def due_per_sweep() -> int:
    """How many due rows one sweep enqueues: twice what a pending import makes due
    between two sweeps at IMPORT_CONFIRMATIONS_PER_MINUTE, so the sweeper keeps its
    pace and drains a backlog (the sweeper was down) at about that pace again, not in
    one burst; never fewer than 1,000."""
    per_sweep = settings.IMPORT_CONFIRMATIONS_PER_MINUTE * _sweep_interval_seconds() / 60
    return max(1000, math.ceil(2 * per_sweep))


def _sweep_interval_seconds() -> float:
    return float(settings.OUTBOX_SWEEP_INTERVAL)
