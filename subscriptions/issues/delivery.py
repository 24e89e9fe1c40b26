"""Sending an issue: workers claim its readers in batches and hand each batch to the
provider (`transport.py`).

- A batch is claimed with `FOR UPDATE SKIP LOCKED`, so workers on any number of
  machines share an issue without coordinating; a batch whose worker died is claimed
  again once its lease (`LEASE_SECONDS`) has run out.
- Who left is checked when the batch is claimed: a reader who unsubscribed, bounced,
  complained or was suppressed since the issue started is skipped.
- A copy is marked sent only after the provider accepted it. A worker that dies between
  the provider's answer and our record leaves its batch to be claimed again, so at most
  that one batch goes out twice (a worker process sends one batch at a time, whatever
  its concurrency: `send_batches_alone`); those copies count as sent more than once
  (`attempts > 1`) in the report (sent one by one, both carry the same Message-ID).
- A provider that refuses (429, 5xx, no connection) pauses the issue with a growing
  wait; nothing is marked failed for it, and the unsent part of the batch goes back.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from subscriptions.issues import claim_statement, copies, throttle, transport
from subscriptions.issues.copies import Reader
from subscriptions.mail import suppression
from subscriptions.mail.retry_policy import retry_countdown
from subscriptions.models import Issue, IssueDelivery, Subscriber, Subscription

logger = logging.getLogger(__name__)

# A claimed batch not recorded within this long is taken to be lost with its worker.
LEASE_SECONDS = 300
# How long one task sends before it hands the rest to a fresh task (so a deploy's worker
# restart, or a pause, is never more than this far away).
TASK_SECONDS = 60
# Refusals in a row after which the issue waits for an editor instead of retrying.
REFUSALS_BEFORE_PAUSE = 8
# How soon a task that found its process already sending tries again.
BUSY_RETRY_SECONDS = 2.0
# The longest a task is put off: a longer wait (an hour's cap) is waited in steps, each
# under the broker's redelivery time (CELERY_BROKER_TRANSPORT_OPTIONS' visibility
# timeout), past which Redis would hand the waiting task out a second time.
LONGEST_TASK_WAIT = 600.0
_one_batch_at_a_time = threading.Lock()

Copy = IssueDelivery.Status


@dataclass
class Outcome:
    """What a task should do next: `wait` seconds and come back, go on, or stop."""

    sent: int = 0
    wait: float | None = None
    more: bool = False


def send_batches(issue_id: int, *, budget_seconds: float = TASK_SECONDS) -> Outcome:
    """Claim and send batches of the issue until none is left, the issue is paused or
    cancelled, or the time budget is spent."""
    outcome = Outcome()
    deadline = time.monotonic() + budget_seconds
    editions: copies.Editions | None = None
    while True:
        issue = Issue.objects.select_related("newsletter").filter(pk=issue_id).first()
        if issue is None or issue.status != Issue.Status.SENDING:
            return outcome
        editions = editions or copies.Editions(issue)
        now = timezone.now()
        if issue.paused_until and issue.paused_until > now:
            outcome.wait = (issue.paused_until - now).total_seconds()
            return outcome
        size = transport.batch_size()
        hour_wait, ticket = throttle.take_hour(size)
        if hour_wait:
            if not finish_if_done(issue_id):  # a full hour is no reason to wait if all went
                outcome.wait = _wait_for_the_hour(issue_id, hour_wait)
            return outcome
        try:
            readers = claim_batch(issue, now=now, size=size)
        except BaseException:
            throttle.settle_hour(ticket, 0)  # nothing was claimed, so nothing went
            raise
        if not readers:
            throttle.settle_hour(ticket, 0)
            if readers is None:
                finish_if_done(issue_id)
                return outcome
            continue  # everyone in it left since the issue started
        throttle.wait_for(len(readers))
        # Should handing over fail midway, the room stays taken: the provider may have
        # taken the batch, and it goes again once its lease runs out.
        handed = _hand_over(issue, readers, editions)
        throttle.settle_hour(ticket, len(handed.sent) + len(handed.refused))
        outcome.sent += len(handed.sent)
        if handed.stopped_by is not None:
            outcome.wait = _pause_for_refusal(issue_id, handed.stopped_by)
            return outcome
        Issue.objects.filter(pk=issue_id).update(
            progressed_at=timezone.now(), provider_refusals=0, paused_until=None
        )
        if time.monotonic() > deadline:
            outcome.more = True
            return outcome


def send_batches_alone(issue_id: int) -> Outcome:
    """`send_batches`, unless this process is already sending (another task of its
    thread pool, for this issue or another): then come back shortly, when another
    worker may have taken the task. So a process that dies can leave at most the one
    batch it had in flight sent and unrecorded."""
    if not _one_batch_at_a_time.acquire(blocking=False):
        return Outcome(wait=BUSY_RETRY_SECONDS)
    try:
        return send_batches(issue_id)
    finally:
        _one_batch_at_a_time.release()


def claim_batch(issue: Issue, *, now: datetime, size: int | None = None) -> list[Reader] | None:
    """Up to `size` of the issue's readers not sent to yet, claimed for this worker;
    readers who left since the issue started are marked skipped instead (so a batch may
    be empty). None when there was nothing left to claim."""
    size = size or transport.batch_size()
    stale_before = now - timedelta(seconds=LEASE_SECONDS)
    if connection.vendor == "postgresql":
        rows = claim_statement.claim(issue, now=now, stale_before=stale_before, size=size)
    else:
        rows = _claim_with_the_orm(issue, now=now, stale_before=stale_before, size=size)
    return _still_reading(rows) if rows else None


def _claim_with_the_orm(
    issue: Issue, *, now: datetime, stale_before: datetime, size: int
) -> list[claim_statement.Row]:
    """`claim_statement.claim`'s rows, the ORM's way (tests/test_issue_claims.py holds
    the two to the same answers)."""
    with transaction.atomic():
        left = IssueDelivery.objects.select_for_update(skip_locked=True).filter(issue=issue)
        # Two ordered index scans, not one OR: a million queued rows must not be sorted
        # for every batch.
        stale = list(
            left.filter(status=Copy.SENDING, claimed_at__lt=stale_before)
            .order_by("id")
            .values_list("id", "subscriber_id")[:size]
        )
        queued = list(
            left.filter(status=Copy.QUEUED)
            .order_by("id")
            .values_list("id", "subscriber_id")[: size - len(stale)]
        )
        # In id order, as the statement returns them.
        claimed = sorted(stale + queued)
        if not claimed:
            return []
        IssueDelivery.objects.filter(id__in=[pk for pk, _ in claimed]).update(
            status=Copy.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    subscriptions = {
        subscriber_id: (subscription_id, status)
        for subscriber_id, subscription_id, status in Subscription.objects.filter(
            newsletter_id=issue.newsletter_id, subscriber_id__in=[s for _, s in claimed]
        ).values_list("subscriber_id", "id", "status")
    }
    people = {
        pk: (email, language)
        for pk, email, language in Subscriber.objects.filter(
            pk__in=[s for _, s in claimed]
        ).values_list("pk", "email", "language")
    }
    return [
        claim_statement.Row(
            delivery_id,
            subscriber_id,
            *subscriptions.get(subscriber_id, (None, None)),
            *people.get(subscriber_id, (None, "")),
        )
        for delivery_id, subscriber_id in claimed
    ]


def _still_reading(rows: list[claim_statement.Row]) -> list[Reader]:
    """The claimed copies to send: the rule of who still reads, in one place for both
    ways of claiming. A reader whose subscription is no longer active, or gone (their
    person erased since), or whose address is suppressed, is skipped with the reason."""
    readers = []
    gone: dict[str, list[int]] = {}
    for row in rows:
        if row.subscription_id is None or row.email is None:
            gone.setdefault("gone", []).append(row.delivery_id)
        elif row.status != Subscription.Status.ACTIVE:
            gone.setdefault(str(row.status), []).append(row.delivery_id)
        else:
            readers.append(
                Reader(
                    row.delivery_id, row.subscriber_id, row.email, row.language, row.subscription_id
                )
            )
    stopped = suppression.suppressed_among([r.email for r in readers], kind=copies.MESSAGE_TYPE)
    if stopped:
        gone.setdefault("suppressed", []).extend(
            r.delivery_id for r in readers if r.email in stopped
        )
        readers = [r for r in readers if r.email not in stopped]
    for reason, delivery_ids in gone.items():
        _set(delivery_ids, status=Copy.SKIPPED, error=reason)
    return readers


def finish_if_done(issue_id: int) -> bool:
    """Mark the issue sent once no copy is left to send; returns whether it was."""
    with transaction.atomic():
        issue = Issue.objects.select_for_update().filter(pk=issue_id).first()
        if issue is None or issue.status != Issue.Status.SENDING:
            return False
        if IssueDelivery.objects.filter(
            issue_id=issue_id, status__in=(Copy.QUEUED, Copy.SENDING)
        ).exists():
            return False
        now = timezone.now()
        issue.status = Issue.Status.SENT
        issue.finished_at = now
        issue.progressed_at = now
        issue.save(update_fields=["status", "finished_at", "progressed_at", "updated_at"])
    logger.info("issue %s: sent", issue_id)
    return True


# --- internals ---------------------------------------------------------------------------


def _hand_over(issue: Issue, readers: list[Reader], editions: copies.Editions) -> transport.Handed:
    handed = transport.Handed(not_sent=[r.delivery_id for r in readers])
    try:
        handed = transport.hand_over(issue, readers, editions)
    finally:
        # What the provider took is recorded whatever happened after; the rest goes back.
        _record(handed.sent, handed.refused)
        _give_back(handed.not_sent)
    return handed


def _record(sent: list[int], refused: list[tuple[int, str]]) -> None:
    _set(sent, status=Copy.SENT, sent_at=timezone.now())
    for delivery_id, error in refused:
        _set([delivery_id], status=Copy.FAILED, error=error)


def _give_back(delivery_ids: list[int]) -> None:
    """Unsent copies return to the queue, their claim not counted against them."""
    IssueDelivery.objects.filter(id__in=delivery_ids, status=Copy.SENDING).update(
        status=Copy.QUEUED, claimed_at=None, attempts=F("attempts") - 1
    )


def _set(delivery_ids: list[int], **values: object) -> None:
    """Update a batch's copies by id: on PostgreSQL with one array parameter, not an
    IN list of a thousand (whose placeholders the driver and the planner each parse)."""
    if not delivery_ids:
        return
    if connection.vendor == "postgresql":
        claim_statement.update(delivery_ids, values)
    else:
        IssueDelivery.objects.filter(id__in=delivery_ids).update(**values)


def _wait_for_the_hour(issue_id: int, seconds: float) -> float:
    """The hourly cap is reached: the issue waits (shown to editors) until it has room."""
    until = timezone.now() + timedelta(seconds=seconds)
    Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING).update(
        paused_until=until,
        # Not quiet while it waits: the sweep hands it on only if no task comes back.
        progressed_at=until,
        last_error=(
            f"The hourly cap of {throttle.per_hour():,} messages "
            f"(ISSUE_MESSAGES_PER_HOUR) is reached; sending goes on at "
            f"{timezone.localtime(until):%H:%M} ({timezone.get_current_timezone_name()})."
        ),
    )
    logger.info("issue %s: at the hourly cap, waiting %.0f s", issue_id, seconds)
    return seconds


def _pause_for_refusal(issue_id: int, refusal: Exception) -> float | None:
    """Wait before the next batch, longer after each refusal in a row; returns seconds.
    After `REFUSALS_BEFORE_PAUSE` in a row it is no outage but a cause for someone to
    fix (a revoked API key, a sender the provider does not accept): the issue is paused
    for an editor to resume, and None returned."""
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=issue_id)
        issue.provider_refusals += 1
        issue.last_error = f"The provider said: {type(refusal).__name__}: {refusal}"[:500]
        wait: float | None = retry_countdown(issue.provider_refusals)
        if issue.provider_refusals >= REFUSALS_BEFORE_PAUSE:
            issue.status = Issue.Status.PAUSED
            issue.paused_until = None
            wait = None
        else:
            issue.paused_until = timezone.now() + timedelta(seconds=wait or 0)
        issue.save(
            update_fields=[
                "provider_refusals",
                "paused_until",
                "last_error",
                "status",
                "updated_at",
            ]
        )
    logger.warning(
        "issue %s: the provider refused (%s); %s",
        issue_id,
        issue.last_error,
        "paused for an editor" if wait is None else f"waiting {wait:.0f} s",
    )
    return wait
