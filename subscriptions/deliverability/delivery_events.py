"""ESP-driven state changes: bounces, complaints, unsubscribes at the provider.

`record_delivery_event` runs inside the webhook request and only stores the event
(idempotent on the provider's event id); `apply_delivery_event` runs in a Celery task
and does the work under the subscriber's row lock, once per event.
"""

import hashlib
import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.mail import suppression
from subscriptions.models import (
    DeliveryEvent,
    Issue,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.platform.task_queue import send_to_worker
from subscriptions.signup.addresses import normalize_email
from subscriptions.signup.transitions import change_status, lock_subscribers

logger = logging.getLogger(__name__)
PROCESS_TASK = "subscriptions.tasks.process_delivery_event"
Kind = DeliveryEvent.Kind
Status = Subscription.Status
Event = SubscriptionEvent.Kind

_SUPPRESSING_KINDS: dict[str, tuple[str, str, str]] = {
    Kind.HARD_BOUNCE: (Status.BOUNCED, Event.BOUNCED, SuppressedAddress.Reason.HARD_BOUNCE),
    Kind.REJECTED: (Status.BOUNCED, Event.BOUNCED, SuppressedAddress.Reason.REJECTED),
    Kind.COMPLAINED: (Status.COMPLAINED, Event.COMPLAINED, SuppressedAddress.Reason.COMPLAINT),
}


def record_delivery_event(
    *,
    esp: str,
    kind: str,
    event_id: str | None,
    recipient: str,
    occurred_at: datetime | None,
    message_id: str | None,
    metadata: dict,
    description: str = "",
    mta_response: str = "",
) -> DeliveryEvent | None:
    """Store an event once and enqueue its processing; None if it was seen before."""
    now = timezone.now()
    occurred_at = occurred_at or now
    address = _stored_form(recipient)
    if not event_id:
        # Some providers give no id for some events; derive a stable one so a replay of
        # the same payload is still recognised.
        basis = f"{esp}|{kind}|{address}|{occurred_at.isoformat()}|{message_id or ''}"
        event_id = "derived:" + hashlib.sha256(basis.encode()).hexdigest()
    try:
        with transaction.atomic():
            event = DeliveryEvent.objects.create(
                esp=esp[:50],
                event_id=str(event_id)[:255],
                kind=kind,
                recipient=address,
                occurred_at=occurred_at,
                received_at=now,
                outbound_email_id=_outbound_email_id(metadata),
                subscription_ids=_subscription_ids(metadata),
                issue_id=_issue_id(metadata),
                description=description[:500],
                mta_response=mta_response[:5000],
            )
            transaction.on_commit(partial(enqueue, event.pk), robust=True)
    except IntegrityError:
        return None
    return event


def enqueue(delivery_event_id: int) -> None:
    try:
        send_to_worker(PROCESS_TASK, delivery_event_id)
    except Exception:  # noqa: BLE001 - the sweeper picks unprocessed events up
        logger.warning("could not enqueue delivery event %s", delivery_event_id, exc_info=True)


def apply_delivery_event(delivery_event_id: int) -> bool:
    """Act on a stored event; returns False if it was already processed."""
    now = timezone.now()
    with transaction.atomic():
        event = DeliveryEvent.objects.select_for_update().filter(pk=delivery_event_id).first()
        if event is None or event.processed_at is not None:
            return False
        found = (
            Subscriber.objects.alias(email_ci=Lower("email"))
            .filter(email_ci=Lower(Value(event.recipient)))
            .values_list("pk", flat=True)
            .first()
        )
        subscriber: Subscriber | None = None
        if found is not None:
            (subscriber,) = lock_subscribers({found})
        actor = f"esp:{event.esp}"[:200]
        kind = event.kind
        reason = None
        if kind == Kind.SOFT_BOUNCE and _soft_bounces_in_a_row(event) >= settings.SOFT_BOUNCE_LIMIT:
            kind = Kind.HARD_BOUNCE
            reason = SuppressedAddress.Reason.SOFT_BOUNCES
        if kind in _SUPPRESSING_KINDS:
            status, log_kind, default_reason = _SUPPRESSING_KINDS[kind]
            suppression.suppress(
                email=event.recipient, reason=reason or default_reason, source_event=event
            )
            if subscriber is not None:
                _end_subscriptions(subscriber, None, status, log_kind, actor, now, event)
        elif kind == Kind.UNSUBSCRIBED and subscriber is not None:
            _end_subscriptions(
                subscriber,
                event.subscription_ids or None,
                Status.UNSUBSCRIBED,
                Event.UNSUBSCRIBED,
                actor,
                now,
                event,
            )
        event.processed_at = now
        event.save(update_fields=["processed_at"])
    return True


def requeue_unprocessed(*, now: datetime | None = None) -> int:
    """Enqueue events whose task never ran (the broker was down)."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    ids = list(
        DeliveryEvent.objects.filter(
            processed_at__isnull=True, received_at__lt=stale_before
        ).values_list("pk", flat=True)[:1000]
    )
    for delivery_event_id in ids:
        enqueue(delivery_event_id)
    return len(ids)


def _end_subscriptions(
    subscriber: Subscriber,
    only_ids: list[int] | None,
    status: str,
    log_kind: str,
    actor: str,
    now: datetime,
    event: DeliveryEvent,
) -> None:
    subscriptions = Subscription.objects.filter(
        subscriber=subscriber, status__in=[Status.ACTIVE, Status.PENDING]
    )
    if only_ids:
        subscriptions = subscriptions.filter(pk__in=only_ids)
    detail = {"delivery_event_id": event.pk, "esp_event_id": event.event_id}
    if event.description:
        detail["description"] = event.description
    for subscription in subscriptions:
        change_status(subscription, status, log_kind, actor, now, detail=detail)


def _soft_bounces_in_a_row(event: DeliveryEvent) -> int:
    """Soft bounces for this address since its last delivery, within the window."""
    window_start = event.occurred_at - timedelta(days=settings.SOFT_BOUNCE_WINDOW_DAYS)
    same_address = DeliveryEvent.objects.alias(recipient_ci=Lower("recipient")).filter(
        recipient_ci=Lower(Value(event.recipient)),
        occurred_at__gte=window_start,
        occurred_at__lte=event.occurred_at,
    )
    last_delivery = same_address.filter(kind=Kind.DELIVERED).aggregate(at=Max("occurred_at"))["at"]
    soft = same_address.filter(kind=Kind.SOFT_BOUNCE)
    if last_delivery is not None:
        soft = soft.filter(Q(occurred_at__gt=last_delivery))
    return soft.count()


def _stored_form(recipient: str) -> str:
    try:
        return normalize_email(recipient)
    except ValidationError:
        return recipient.strip()[:254]


def _outbound_email_id(metadata: dict) -> int | None:
    try:
        outbound_email_id = int(metadata.get("outbound_email_id", ""))
    except (TypeError, ValueError):
        return None
    return (
        outbound_email_id if OutboundEmail.objects.filter(pk=outbound_email_id).exists() else None
    )


def _issue_id(metadata: dict) -> int | None:
    try:
        issue_id = int(metadata.get("issue_id", ""))
    except (TypeError, ValueError):
        return None
    return issue_id if Issue.objects.filter(pk=issue_id).exists() else None


def _subscription_ids(metadata: dict) -> list[int]:
    raw = metadata.get("subscription_ids", "")
    if not isinstance(raw, str):
        return []
    return [int(part) for part in raw.split(",") if part.strip().isdigit()][:100]
