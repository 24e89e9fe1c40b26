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
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from subscriptions.leases import Namespace, lease
from subscriptions.models import GoalMilestone, OutboundEmail, Subscriber, Subscription
from subscriptions.task_queue import send_to_worker

logger = logging.getLogger(__name__)
Status = OutboundEmail.Status


def queue_email(
    *,
    kind: str,
    subscriber: Subscriber,
    subscriptions: Sequence[Subscription],
    now: datetime,
) -> OutboundEmail:
    """Write an outbox row and enqueue its task once the transaction commits."""
    outbound = OutboundEmail.objects.create(
        kind=kind, to_email=subscriber.email, subscriber=subscriber, created_at=now
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


def enqueue(outbound_email_id: int) -> None:
    """Hand a row to Celery. If the broker is down the row stays queued and the
    sweeper enqueues it later, so the caller's request still succeeds."""
    from subscriptions.tasks import send_outbound_email

    try:
        # One LPUSH: every sign-up comes through here (see task_queue).
        send_to_worker(send_outbound_email, outbound_email_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweeper is the safety net
        logger.warning(
            "could not enqueue outbound email %s; the sweeper will retry",
            outbound_email_id,
            exc_info=True,
        )


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


def requeue_stale(*, now: datetime | None = None) -> int:
    """Enqueue rows whose task is lost: never enqueued (the broker was down), a retry
    overdue (its task never came back), or a send whose worker died; and rows held back
    until due (a pending import's confirmations) once they are due, oldest due first.

    A row whose retry is not yet overdue is left alone, however long its backoff: the
    retry's own task is waiting in the broker, and a second enqueue would start a second
    chain of retries and cut the backoff short. A task that is merely late (a long queue)
    may still get a duplicate, which the claim and the send lease make a no-op.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    due_ids = list(
        OutboundEmail.objects.filter(
            # Held back and never tried (a pending import's): due is due.
            Q(status=Status.QUEUED, attempts=0, next_attempt_at__lte=now)
            # A retry: its own task is due then; only if that is long overdue was it lost.
            | Q(status=Status.QUEUED, attempts__gt=0, next_attempt_at__lt=stale_before)
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: due_per_sweep()]
    )
    lost_ids = list(
        OutboundEmail.objects.filter(
            Q(status=Status.QUEUED, next_attempt_at__isnull=True, created_at__lt=stale_before)
            | Q(status=Status.SENDING, claimed_at__lt=stale_before)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:LOST_PER_SWEEP]
    )
    for outbound_email_id in due_ids + lost_ids:
        enqueue(outbound_email_id)
    count = len(due_ids) + len(lost_ids)
    if count:
        logger.info("re-enqueued %d stale or due outbound emails", count)
    return count


def due_per_sweep() -> int:
    """How many due rows one sweep enqueues: twice what a pending import makes due
    between two sweeps at IMPORT_CONFIRMATIONS_PER_MINUTE, so the sweeper keeps its
    pace and drains a backlog (the sweeper was down) at about that pace again, not in
    one burst; never fewer than 1,000."""
    per_sweep = settings.IMPORT_CONFIRMATIONS_PER_MINUTE * _sweep_interval_seconds() / 60
    return max(1000, math.ceil(2 * per_sweep))


def _sweep_interval_seconds() -> float:
    return float(settings.OUTBOX_SWEEP_INTERVAL)
