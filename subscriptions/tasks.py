"""Celery tasks: thin, idempotent, and taking ids. Each keeps its registered name
(`name=`), so messages already queued and the beat schedule survive a move of the code;
code below this module enqueues them by that name (platform.task_queue), never by
importing it. The outbox row is the truth; a task delivered twice finds it claimed or
sent and does nothing."""

import logging
from dataclasses import asdict

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from subscriptions.admin import bulk_actions, dashboard
from subscriptions.deliverability import delivery_events
from subscriptions.issues import delivery as issue_delivery
from subscriptions.issues import services as issue_services
from subscriptions.lists.imports import jobs as import_jobs
from subscriptions.lists.imports import reports as import_reports
from subscriptions.mail import messages, outbox, sending
from subscriptions.mail.retry_policy import is_permanent_failure, retry_countdown
from subscriptions.membership import goal_counter, milestones
from subscriptions.privacy import personal_data
from subscriptions.signup import deferred_unsubscribes

logger = logging.getLogger(__name__)


@shared_task(
    name="subscriptions.tasks.send_outbound_email", bind=True, acks_late=True, max_retries=None
)
def send_outbound_email(self, outbound_email_id: int) -> str:
    with sending.claimed_for_sending(outbound_email_id, task_id=self.request.id or "") as claimed:
        if claimed is None:
            return "skipped"
        return _send(self, claimed)


def _send(task, claimed: sending.Claimed) -> str:
    outbound = claimed.outbound
    if claimed.suppressed:
        outbox.mark_suppressed(outbound)
        return "suppressed"
    try:
        message = messages.build_message(outbound, claimed.subscriptions)
        message.send()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        error = f"{type(exc).__name__}: {exc}"
        if is_permanent_failure(exc) or outbound.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            logger.warning("outbound email %s failed: %s", outbound.pk, error)
            outbox.mark_failed(outbound, error=error)
            return "failed"
        countdown = retry_countdown(outbound.attempts)
        outbox.release_for_retry(outbound, error=error, retry_in=countdown)
        raise task.retry(countdown=countdown, exc=exc) from exc
    outbox.mark_sent(outbound, esp_message_id=_esp_message_id(message))
    return "sent"


def _esp_message_id(message: object) -> str:
    # anymail sets anymail_status; its message_id is one value, or a set when the ESP
    # gave each recipient its own id. Plain Django backends leave nothing.
    status = getattr(message, "anymail_status", None)
    message_id = getattr(status, "message_id", None)
    if message_id is None:
        return ""
    if isinstance(message_id, set):
        return ",".join(sorted(str(m) for m in message_id))
    return str(message_id)


@shared_task(name="subscriptions.tasks.send_issue", acks_late=True)
def send_issue(issue_id: int) -> int:
    """Send batches of an issue for a while, then hand the rest to a fresh task (or the
    same after the provider's wait); returns how many copies it sent. Its queue is the
    issues' own (ISSUE_QUEUE), so a worker of its own can take it (README)."""
    outcome = issue_delivery.send_batches_alone(issue_id)
    if send_issue.request.is_eager and outcome.wait is not None:
        # The embedded set-up (no broker) has no worker to come back later, and run
        # eagerly a countdown would be no wait at all, only a recursion.
        logger.warning(
            "issue %s: must wait %.0f s, and without a broker no worker comes back for it: "
            "set REDIS_URL and run a worker",
            issue_id,
            outcome.wait,
        )
    elif outcome.wait is not None:
        countdown = min(outcome.wait, issue_delivery.LONGEST_TASK_WAIT)
        send_issue.apply_async((issue_id,), countdown=countdown, queue=settings.ISSUE_QUEUE)
    elif outcome.more:
        send_issue.apply_async((issue_id,), queue=settings.ISSUE_QUEUE)
    return outcome.sent


@shared_task(
    name="subscriptions.tasks.process_delivery_event",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def process_delivery_event(delivery_event_id: int) -> bool:
    return delivery_events.apply_delivery_event(delivery_event_id)


# Registered under the name it had when it swept the outbox alone.
@shared_task(name="subscriptions.tasks.requeue_stale_outbound_emails")
def requeue_stale_work() -> int:
    """The safety net behind every enqueue: outbox rows, delivery events, imports and
    issues whose task never ran (broker down) or whose worker died; and the scheduler,
    which starts issues whose time has come."""
    return (
        outbox.requeue_stale()
        + delivery_events.requeue_unprocessed()
        + import_jobs.requeue_stale_imports()
        + len(issue_services.start_due_issues())
        + issue_services.requeue_quiet_issues()
    )


@shared_task(name="subscriptions.tasks.apply_deferred_unsubscribes")
def apply_deferred_unsubscribes() -> int:
    """Unsubscribes kept in Redis while the database was unavailable, applied now that
    it answers; a run that finds it down again leaves them for the next."""
    return deferred_unsubscribes.apply_recorded()


@shared_task(
    name="subscriptions.tasks.requeue_outbound_emails_after_broker_reset",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def requeue_outbound_emails_after_broker_reset() -> int:
    """The broker came back without the messages it held (a worker noticed on
    reconnecting): every queued email waiting for its task is enqueued again at once."""
    return outbox.requeue_after_broker_reset()


@shared_task(
    name="subscriptions.tasks.record_goal_milestones",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def record_goal_milestones() -> list[int]:
    """Record the milestones the member count has reached; idempotent."""
    return milestones.record_reached_milestones()


@shared_task(name="subscriptions.tasks.reconcile_member_count")
def reconcile_member_count() -> dict:
    """Recount members, repair the count and its Redis copy, and catch up on any
    milestone whose task never ran (broker down)."""
    result = goal_counter.reconcile()
    milestones.record_reached_milestones()
    return asdict(result)


@shared_task(name="subscriptions.tasks.run_subscriber_import", acks_late=True)
def run_subscriber_import(import_id: int) -> str:
    """Run an import to its end (or resume it after a worker died)."""
    return import_jobs.run_import(import_id).state


@shared_task(name="subscriptions.tasks.take_newsletter_snapshots")
def take_newsletter_snapshots() -> int:
    """Today's counts per newsletter, for the dashboard's growth chart."""
    return dashboard.take_snapshots()


# Registered under the name it had before it also discarded import reports.
@shared_task(name="subscriptions.tasks.expire_unconfirmed_subscriptions")
def discard_expired_personal_data() -> int:
    """Remove sign-ups never confirmed after PENDING_EXPIRY_DAYS, and import reports
    older than IMPORT_REPORT_RETENTION_DAYS (both hold personal data kept no longer
    than needed)."""
    import_reports.discard_old_reports()
    return personal_data.expire_unconfirmed()


@shared_task(
    name="subscriptions.tasks.unsubscribe_subscriptions",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def unsubscribe_subscriptions(subscription_ids: list[int], actor: str) -> int:
    """A batch of an editor's "Unsubscribe" on many; a repeat changes nothing."""
    return bulk_actions.unsubscribe_batch(subscription_ids, actor=actor)


@shared_task(
    name="subscriptions.tasks.resend_confirmation_emails",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def resend_confirmation_emails(subscriber_ids: list[int], actor: str) -> list[int]:
    """A batch of an editor's "Resend confirmation" on many people: [queued, capped]."""
    return list(bulk_actions.resend_batch(subscriber_ids, actor=actor))
