"""Celery tasks: thin, idempotent, and taking ids. The outbox row is the truth; a task
delivered twice finds it claimed or sent and does nothing."""

import logging
import random
import smtplib

from celery import shared_task
from django.conf import settings

from subscriptions import emails, outbox

logger = logging.getLogger(__name__)

# Backoff base and ceiling in seconds; the ceiling stays well below Redis's
# visibility_timeout so a waiting retry is never redelivered as a duplicate.
RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 600


def is_permanent_failure(exc: BaseException) -> bool:
    """4xx answers other than 429 will not get better by trying again."""
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return 400 <= status < 500 and status != 429
    return isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused)


def retry_countdown(attempts: int) -> float:
    """Exponential backoff with full jitter (spreads retries after an ESP outage)."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


@shared_task(bind=True, acks_late=True, max_retries=None)
def send_outbound_email(self, outbound_email_id: int) -> str:
    outbound = outbox.claim(outbound_email_id)
    if outbound is None:
        return "skipped"
    try:
        message = emails.build_message(outbound)
        message.send()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        error = f"{type(exc).__name__}: {exc}"
        if is_permanent_failure(exc) or outbound.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            logger.warning("outbound email %s failed: %s", outbound.pk, error)
            outbox.mark_failed(outbound, error=error)
            return "failed"
        outbox.release_for_retry(outbound, error=error)
        raise self.retry(countdown=retry_countdown(outbound.attempts), exc=exc) from exc
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


@shared_task
def requeue_stale_outbound_emails() -> int:
    return outbox.requeue_stale()
