"""Sending an issue: workers claim its readers in batches and hand each batch to the
provider over one connection.

- A batch is claimed with `FOR UPDATE SKIP LOCKED`, so workers on any number of
  machines share an issue without coordinating; a batch whose worker died is claimed
  again once its lease (`LEASE_SECONDS`) has run out.
- Who left is checked when the batch is claimed: a reader who unsubscribed, bounced,
  complained or was suppressed since the issue started is skipped.
- A copy is marked sent only after the provider accepted it. A worker that dies between
  the provider's answer and our record leaves its batch to be claimed again, so at most
  that one batch goes out twice; those copies count as sent more than once
  (`attempts > 1`) in the report, and carry the same Message-ID both times.
- A provider that refuses (429, 5xx, no connection) pauses the issue with a growing
  wait; nothing is marked failed for it, and the unsent part of the batch goes back.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone, translation

from subscriptions import languages
from subscriptions.issues import rendering
from subscriptions.mail import messages, suppression
from subscriptions.mail.retry_policy import retry_countdown
from subscriptions.models import Issue, IssueDelivery, Subscription
from subscriptions.tokens import preferences_token, unsubscribe_token

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A claimed batch not recorded within this long is taken to be lost with its worker.
LEASE_SECONDS = 300
# How long one task sends before it hands the rest to a fresh task (so a deploy's worker
# restart, or a pause, is never more than this far away).
TASK_SECONDS = 60
# Refusals in a row after which the issue waits for an editor instead of retrying.
REFUSALS_BEFORE_PAUSE = 8
MESSAGE_TYPE = "issue"

Copy = IssueDelivery.Status
_REFUSED_RECIPIENT = (AnymailRecipientsRefused, AnymailInvalidAddress)


@dataclass
class Reader:
    delivery_id: int
    subscriber_id: int
    email: str
    language: str
    subscription_id: int


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
    editions: dict[str, rendering.Edition] = {}
    while True:
        issue = Issue.objects.select_related("newsletter").filter(pk=issue_id).first()
        if issue is None or issue.status != Issue.Status.SENDING:
            return outcome
        now = timezone.now()
        if issue.paused_until and issue.paused_until > now:
            outcome.wait = (issue.paused_until - now).total_seconds()
            return outcome
        readers = claim_batch(issue, now=now)
        if not readers:
            finish_if_done(issue_id)
            return outcome
        sent, refusal = _send(issue, readers, editions)
        outcome.sent += sent
        if refusal is not None:
            outcome.wait = _pause_for_refusal(issue_id, refusal)
            return outcome
        Issue.objects.filter(pk=issue_id).update(
            progressed_at=timezone.now(), provider_refusals=0, paused_until=None
        )
        if time.monotonic() > deadline:
            outcome.more = True
            return outcome


def claim_batch(issue: Issue, *, now: datetime, size: int | None = None) -> list[Reader]:
    """Up to `size` of the issue's readers not sent to yet, claimed for this worker;
    readers who left since the issue started are marked skipped instead."""
    size = size or BATCH_SIZE
    with transaction.atomic():
        left = IssueDelivery.objects.select_for_update(skip_locked=True).filter(issue=issue)
        # Two ordered index scans, not one OR: a million queued rows must not be sorted
        # for every batch.
        stale = list(
            left.filter(status=Copy.SENDING, claimed_at__lt=now - timedelta(seconds=LEASE_SECONDS))
            .order_by("id")
            .values_list("id", "subscriber_id")[:size]
        )
        queued = list(
            left.filter(status=Copy.QUEUED)
            .order_by("id")
            .values_list("id", "subscriber_id")[: size - len(stale)]
        )
        claimed = stale + queued
        if not claimed:
            return []
        IssueDelivery.objects.filter(id__in=[pk for pk, _ in claimed]).update(
            status=Copy.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    return _still_reading(issue, dict((subscriber, pk) for pk, subscriber in claimed))


def _still_reading(issue: Issue, delivery_by_subscriber: dict[int, int]) -> list[Reader]:
    rows = Subscription.objects.filter(
        newsletter_id=issue.newsletter_id, subscriber_id__in=list(delivery_by_subscriber)
    ).values_list("subscriber_id", "id", "status", "subscriber__email", "subscriber__language")
    readers = []
    gone: dict[str, list[int]] = {}
    for subscriber_id, subscription_id, status, email, language in rows:
        delivery_id = delivery_by_subscriber.pop(subscriber_id)
        if status != Subscription.Status.ACTIVE:
            gone.setdefault(status, []).append(delivery_id)
            continue
        readers.append(Reader(delivery_id, subscriber_id, email, language, subscription_id))
    # A subscription that no longer exists (its person was erased between the claim and
    # this read; the erasure removes the copy itself as well).
    if delivery_by_subscriber:
        gone.setdefault("gone", []).extend(delivery_by_subscriber.values())
    stopped = suppression.suppressed_among([r.email for r in readers], kind=MESSAGE_TYPE)
    if stopped:
        gone.setdefault("suppressed", []).extend(
            r.delivery_id for r in readers if r.email in stopped
        )
        readers = [r for r in readers if r.email not in stopped]
    for reason, delivery_ids in gone.items():
        IssueDelivery.objects.filter(id__in=delivery_ids).update(status=Copy.SKIPPED, error=reason)
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


def message_for(issue: Issue, reader: Reader, edition: rendering.Edition) -> AnymailMessage:
    """One reader's copy: their own unsubscribe and preferences links, list headers
    (RFC 2369, RFC 2919, RFC 8058 one-click) and the metadata tracking events bring back."""
    with translation.override(languages.of_subscriber(reader.language)):
        unsubscribe = messages.reader_url(
            "subscriptions:unsubscribe", unsubscribe_token.make_token(reader.subscription_id)
        )
        preferences = messages.reader_url(
            "subscriptions:preferences", preferences_token.make_token(reader.subscriber_id)
        )
    # Which issue the reader left from, for its report (the link may carry ?lang= already).
    unsubscribe += f"{'&' if '?' in unsubscribe else '?'}issue={issue.pk}"
    html, text = edition.for_reader(unsubscribe_url=unsubscribe, preferences_url=preferences)
    list_unsubscribe = f"<{unsubscribe}>"
    if settings.UNSUBSCRIBE_MAILTO:
        token = unsubscribe_token.make_token(reader.subscription_id)
        list_unsubscribe += (
            f", <mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe%20{token}>"
        )
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    message = AnymailMessage(
        subject=edition.subject,
        body=text,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[reader.email],
        headers={
            # The same id on a copy sent twice, so mailbox providers fold the two.
            "Message-ID": f"<issue.{issue.pk}.{reader.subscriber_id}@{domain}>",
            "List-Id": messages.newsletter_list_id(issue.newsletter),
            "List-Unsubscribe": list_unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message.attach_alternative(html, "text/html")
    message.metadata = {
        "message_type": MESSAGE_TYPE,
        "issue_id": str(issue.pk),
        "subscriber_id": str(reader.subscriber_id),
        "subscription_ids": str(reader.subscription_id),
    }
    message.tags = [MESSAGE_TYPE]
    return message


def test_message(issue: Issue, edition: rendering.Edition, *, to: str) -> AnymailMessage:
    """A copy for an editor to check: the issue as readers get it, its reader links
    going nowhere, its subject marked as a test."""
    html, text = edition.for_reader(unsubscribe_url="#", preferences_url="#")
    message = AnymailMessage(
        subject=f"[Test] {edition.subject}",
        body=text,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[to],
        headers={"List-Id": messages.newsletter_list_id(issue.newsletter)},
    )
    message.attach_alternative(html, "text/html")
    message.metadata = {"message_type": "issue_test", "issue_id": str(issue.pk)}
    message.tags = ["issue_test"]
    return message


# --- internals ---------------------------------------------------------------------------


def _edition(
    issue: Issue, language: str, editions: dict[str, rendering.Edition]
) -> rendering.Edition:
    key = rendering.version(issue, languages.of_subscriber(language)).language
    if key not in editions:
        editions[key] = rendering.edition(issue, key, archive_url=archive_url(issue))
    return editions[key]


def archive_url(issue: Issue) -> str:
    """The issue's public page ("view in your browser"); none for a private newsletter."""
    if not issue.newsletter.is_public:
        return ""
    path = reverse("subscriptions:issue", args=[issue.newsletter.slug, issue.pk])
    return f"{settings.SITE_URL}{path}"


def _send(
    issue: Issue, readers: list[Reader], editions: dict[str, rendering.Edition]
) -> tuple[int, Exception | None]:
    """Send the batch over one connection; returns (sent, the provider's refusal)."""
    sent: list[int] = []
    refused: list[tuple[int, str]] = []
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # noqa: BLE001 - no connection: the provider's part
        _give_back([r.delivery_id for r in readers])
        return 0, exc
    refusal: Exception | None = None
    try:
        for position, reader in enumerate(readers):
            try:
                message = message_for(issue, reader, _edition(issue, reader.language, editions))
                message.connection = connection
                message.send()
            except _REFUSED_RECIPIENT as exc:
                refused.append((reader.delivery_id, f"{type(exc).__name__}: {exc}"[:500]))
            except Exception as exc:  # noqa: BLE001 - anything else stops the batch
                refusal = exc
                _give_back([r.delivery_id for r in readers[position:]])
                break
            else:
                sent.append(reader.delivery_id)
    finally:
        # What the provider accepted is recorded whatever happened after.
        _record(sent, refused)
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - the batch is recorded; a close that fails loses nothing
            logger.warning("issue %s: closing the connection failed", issue.pk, exc_info=True)
    return len(sent), refusal


def _record(sent: list[int], refused: list[tuple[int, str]]) -> None:
    now = timezone.now()
    if sent:
        IssueDelivery.objects.filter(id__in=sent).update(status=Copy.SENT, sent_at=now)
    for delivery_id, error in refused:
        IssueDelivery.objects.filter(id=delivery_id).update(status=Copy.FAILED, error=error)


def _give_back(delivery_ids: list[int]) -> None:
    """Unsent copies return to the queue, their claim not counted against them."""
    IssueDelivery.objects.filter(id__in=delivery_ids, status=Copy.SENDING).update(
        status=Copy.QUEUED, claimed_at=None, attempts=F("attempts") - 1
    )


def _pause_for_refusal(issue_id: int, refusal: Exception) -> float | None:
    """Wait before the next batch, longer after each refusal in a row; returns seconds.
    After `REFUSALS_BEFORE_PAUSE` in a row it is no outage but a cause for someone to
    fix (a revoked API key, a sender the provider does not accept): the issue is paused
    for an editor to resume, and None returned."""
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=issue_id)
        issue.provider_refusals += 1
        issue.last_error = f"{type(refusal).__name__}: {refusal}"[:500]
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
