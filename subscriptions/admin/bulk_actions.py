"""Editors' actions on many subscriptions at once, as the admin's "Select all" makes
them on a list of a million: up to INLINE_LIMIT are changed in the
request, more by the worker, in batches of BATCH.

Every change goes through the same service as a single one (the subscriber locked,
the event log written, a repeat changing nothing), so a batch delivered twice, or an
action run again after the task queue could not be reached, does no harm.
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice

from subscriptions.models import Subscription
from subscriptions.platform.task_queue import send_to_worker
from subscriptions.signup import services

logger = logging.getLogger(__name__)
# An action on more subscriptions (or people) than this, as "Select all" makes on a long
# list, is done by the worker in batches of BATCH; up to this many in the request, whose
# editor waits for the page.
INLINE_LIMIT = 500
BATCH = 1_000
UNSUBSCRIBE_TASK = "subscriptions.tasks.unsubscribe_subscriptions"
RESEND_TASK = "subscriptions.tasks.resend_confirmation_emails"
Status = Subscription.Status


@dataclass(frozen=True)
class BulkOutcome:
    """What an action did in the request, handed to the worker, and could not hand."""

    changed: int = 0
    # Resending: people whose confirmation the per-address cap held back.
    capped: int = 0
    queued: int = 0
    batches: int = 0
    not_queued: int = 0


def unsubscribe(subscription_ids: Iterable[int], *, actor: str) -> BulkOutcome:
    """End the subscriptions (bounced and complained ones keep their status)."""
    return _now_or_by_the_worker(
        subscription_ids,
        lambda batch: BulkOutcome(changed=unsubscribe_batch(batch, actor=actor)),
        UNSUBSCRIBE_TASK,
        actor,
    )


def resend_confirmations(subscriber_ids: Iterable[int], *, actor: str) -> BulkOutcome:
    """A new confirmation email to each person with a pending subscription (one email
    for all of theirs), within the per-address cap."""

    def run(batch: list[int]) -> BulkOutcome:
        sent, capped = resend_batch(batch, actor=actor)
        return BulkOutcome(changed=sent, capped=capped)

    return _now_or_by_the_worker(subscriber_ids, run, RESEND_TASK, actor)


def unsubscribe_batch(subscription_ids: list[int], *, actor: str) -> int:
    """How many of the subscriptions this ended."""
    return sum(
        services.unsubscribe(subscription_id=subscription_id, actor=actor, via="admin")
        for subscription_id in subscription_ids
    )


def resend_batch(subscriber_ids: list[int], *, actor: str) -> tuple[int, int]:
    """(confirmation emails queued, people the cap held back)."""
    pending: dict[int, list[int]] = {}
    for subscriber_id, subscription_id in (
        Subscription.objects.filter(subscriber_id__in=subscriber_ids, status=Status.PENDING)
        .order_by("subscriber_id", "pk")
        .values_list("subscriber_id", "pk")
    ):
        pending.setdefault(subscriber_id, []).append(subscription_id)
    sent = capped = 0
    for subscription_ids in pending.values():
        if services.resend_confirmation(subscription_ids=subscription_ids, actor=actor):
            sent += 1
        else:
            capped += 1
    return sent, capped


def _now_or_by_the_worker(
    ids: Iterable[int],
    run: Callable[[list[int]], BulkOutcome],
    task_name: str,
    actor: str,
) -> BulkOutcome:
    ids = iter(ids)
    first = list(islice(ids, INLINE_LIMIT + 1))
    if len(first) <= INLINE_LIMIT:
        return run(first)
    queued = batches = 0
    pending = _batches(chain(first, ids), BATCH)
    for batch in pending:
        try:
            send_to_worker(task_name, batch, actor)
        except Exception:  # noqa: BLE001 - any broker failure: the editor is told, and may run it again
            logger.warning("could not hand an admin action's batch to the worker")
            not_queued = len(batch) + sum(len(rest) for rest in pending)
            return BulkOutcome(queued=queued, batches=batches, not_queued=not_queued)
        queued += len(batch)
        batches += 1
    return BulkOutcome(queued=queued, batches=batches)


def _batches(ids: Iterator[int], size: int) -> Iterator[list[int]]:
    while batch := list(islice(ids, size)):
        yield batch
