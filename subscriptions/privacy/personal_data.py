"""Privacy requests: everything we hold about a subscriber, as JSON; erasing it; and the
reader asking for either by email link. Also the removal of sign-ups never confirmed.

Erasure deletes the person's rows everywhere an address or an IP is kept (the
subscriber with its subscriptions, consent records and event log, their emails in the
outbox, the ESP's delivery events, the admin's change history of them) and scrubs
their address from member records and from the reports of past imports; what stays is
the hash of the address on the suppression list, so the address gets no mail and a
later import skips it, and a privacy event that holds only that hash.
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import Enum
from functools import partial
from typing import TypeVar, cast

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.lists.imports import reports as import_reports
from subscriptions.mail import suppression
from subscriptions.models import (
    DeliveryEvent,
    Member,
    OutboundEmail,
    PrivacyEvent,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.signup.transitions import lock_subscribers, log_event

logger = logging.getLogger(__name__)
Kind = PrivacyEvent.Kind
Status = Subscription.Status
M = TypeVar("M", bound=models.Model)


class PrivacyAction:
    EXPORT = "export"
    ERASE = "erase"


def subscriber_data(subscriber: Subscriber) -> dict:
    """All we hold about the person behind this subscriber, as plain JSON values."""
    email = subscriber.email
    digest = suppression.address_hash(email)
    subscriptions = subscriber.subscriptions.select_related("newsletter").prefetch_related(
        "consent_records", "events"
    )
    suppressed = SuppressedAddress.objects.alias(address=Lower("email")).filter(
        Q(address=Lower(Value(email))) | Q(email_hash=digest)
    )
    return {
        "exported_at": _iso(timezone.now()),
        "subscriber": {
            "email": email,
            "name": subscriber.name,
            "attributes": subscriber.attributes,
            "language": subscriber.language,
            "created_at": _iso(subscriber.created_at),
        },
        "subscriptions": [
            {
                "newsletter": s.newsletter.name,
                "status": s.status,
                "source": s.source,
                "created_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
                "bounced_at": _iso(s.bounced_at),
                "complained_at": _iso(s.complained_at),
                "consent_records": [
                    {
                        "kind": c.kind,
                        "at": _iso(c.at),
                        "ip_address": c.ip_address,
                        "user_agent": c.user_agent,
                        "page_url": c.page_url,
                        "consent_text": c.consent_text,
                    }
                    for c in s.consent_records.all()
                ],
                "events": [
                    {
                        "kind": e.kind,
                        "from_status": e.from_status,
                        "to_status": e.to_status,
                        "actor": e.actor,
                        "at": _iso(e.at),
                    }
                    for e in s.events.all()
                ],
            }
            for s in subscriptions
        ],
        "emails": [
            {"kind": kind, "status": status, "queued_at": _iso(at), "sent_at": _iso(sent)}
            for kind, status, at, sent in OutboundEmail.objects.filter(
                subscriber=subscriber
            ).values_list("kind", "status", "created_at", "sent_at")
        ],
        "delivery_events": [
            {"esp": esp, "kind": kind, "at": _iso(at), "description": description}
            for esp, kind, at, description in _addressed(
                DeliveryEvent, "recipient", email
            ).values_list("esp", "kind", "occurred_at", "description")
        ],
        "suppression": [
            {"reason": reason, "since": _iso(at), "lifted_at": _iso(lifted)}
            for reason, at, lifted in suppressed.values_list("reason", "created_at", "lifted_at")
        ],
        "memberships": [
            {
                "status": status,
                "tier": tier,
                "amount": str(amount) if amount is not None else None,
                "currency": currency,
                "started_at": _iso(started),
                "ended_at": _iso(ended),
            }
            for status, tier, amount, currency, started, ended in _addressed(
                Member, "email", email
            ).values_list("status", "tier", "amount", "currency", "started_at", "ended_at")
        ],
        "privacy_requests": [
            {"kind": kind, "by": actor, "at": _iso(at)}
            for kind, actor, at in PrivacyEvent.objects.filter(email_hash=digest).values_list(
                "kind", "actor", "at"
            )
        ],
    }


def export_data(*, subscriber_id: int, actor: str) -> dict:
    """The subscriber's data, with the export recorded."""
    with transaction.atomic():
        subscriber = Subscriber.objects.get(pk=subscriber_id)
        data = subscriber_data(subscriber)
        _record(subscriber, Kind.EXPORTED, actor)
    return data


def erase_subscriber(*, subscriber_id: int, actor: str) -> bool:
    """Erase the subscriber's personal data; returns whether there was anything to erase."""
    with transaction.atomic():
        locked = lock_subscribers({subscriber_id})
        if not locked:
            return False
        (subscriber,) = locked
        email = subscriber.email
        digest = suppression.address_hash(email)
        suppression.replace_address_with_hash(email, actor=actor)
        _addressed(DeliveryEvent, "recipient", email).delete()
        # Every row with a subscriber is addressed to that subscriber's address (which
        # never changes), so theirs are found by the subscriber; the only others to the
        # address are milestone notices to an editor who reads under it.
        OutboundEmail.objects.alias(address=Lower("to_email")).filter(
            Q(subscriber=subscriber) | Q(subscriber__isnull=True, address=Lower(Value(email)))
        ).delete()
        _addressed(Member, "email", email).update(email="", name="")
        _forget_admin_history(subscriber)
        PrivacyEvent.objects.create(
            subscriber=None,
            email_hash=digest,
            kind=Kind.ERASED,
            actor=actor[:200],
            at=timezone.now(),
        )
        subscriber.delete()
        # Files are not rolled back with the transaction: only once it holds.
        transaction.on_commit(partial(import_reports.scrub_address, email), robust=True)
    logger.info("erased a subscriber's personal data at the request of %s", actor)
    return True


def _addressed(model: type[M], field: str, email: str) -> QuerySet[M]:
    """The rows whose `field` holds this address, in any case.

    Compared as LOWER() = LOWER(), the form of the expression indexes on these columns:
    Django's `__iexact` is UPPER() = UPPER() on PostgreSQL, which no index serves, and
    the erasure holds the person's row lock while it reads.
    """
    return cast(
        QuerySet[M],
        model._default_manager.alias(address=Lower(field)).filter(address=Lower(Value(email))),
    )


def _forget_admin_history(subscriber: Subscriber) -> None:
    """The admin's change history names objects by their str(), an address here."""
    subscription_ids = [str(pk) for pk in subscriber.subscriptions.values_list("pk", flat=True)]
    types = ContentType.objects.get_for_models(Subscriber, Subscription)
    LogEntry.objects.filter(
        Q(content_type=types[Subscriber], object_id=str(subscriber.pk))
        | Q(content_type=types[Subscription], object_id__in=subscription_ids)
    ).delete()


class Requested(Enum):
    SENT = "sent"
    # Today's share went out already (the page answers as for SENT).
    CAPPED = "capped"
    # The address's mail server refuses our mail: no link can reach it.
    UNDELIVERABLE = "undeliverable"


def request_by_email(*, subscriber_id: int, action: str, now: datetime | None = None) -> Requested:
    """The reader asked, from the preferences page: mail a confirmation link to the
    address, so only its owner can export or erase. Sent even to an address that
    complained or unsubscribed (it is about their own data); not to one whose mail
    server refuses our mail. Capped per day."""
    from subscriptions.mail import outbox

    now = now or timezone.now()
    kind = {
        PrivacyAction.EXPORT: OutboundEmail.Kind.PRIVACY_EXPORT,
        PrivacyAction.ERASE: OutboundEmail.Kind.PRIVACY_ERASURE,
    }[action]
    with transaction.atomic():
        (subscriber,) = lock_subscribers({subscriber_id})
        if suppression.is_suppressed(subscriber.email, kind=kind):
            return Requested.UNDELIVERABLE
        sent_today = OutboundEmail.objects.filter(
            subscriber=subscriber,
            kind__in=[OutboundEmail.Kind.PRIVACY_EXPORT, OutboundEmail.Kind.PRIVACY_ERASURE],
            created_at__gte=now - timedelta(days=1),
        ).count()
        if sent_today >= settings.PRIVACY_EMAILS_PER_DAY:
            return Requested.CAPPED
        outbox.queue_email(kind=kind, subscriber=subscriber, subscriptions=[], now=now)
        requested = (
            Kind.EXPORT_REQUESTED if action == PrivacyAction.EXPORT else (Kind.ERASURE_REQUESTED)
        )
        _record(subscriber, requested, "reader")
    return Requested.SENT


def expire_unconfirmed(*, now: datetime | None = None) -> int:
    """End pending periods never confirmed after PENDING_EXPIRY_DAYS (data kept no
    longer than needed). A sign-up from nothing is removed, with the subscriber when it
    leaves them with nothing; a reader who had left (unsubscribed, bounced) and signed
    up again without confirming goes back to how they left, history kept, so a later
    import still knows they left. Returns the pending periods ended."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PENDING_EXPIRY_DAYS)
    expired = Subscription.objects.filter(
        status=Subscription.Status.PENDING, pending_since__lt=cutoff
    )
    ended = 0
    while True:
        with transaction.atomic():
            subscriber_ids = set(expired.values_list("subscriber_id", flat=True)[:1000])
            if not subscriber_ids:
                return ended
            # Locked as every service locks them, then read again: a confirmation that
            # committed in between is not undone.
            lock_subscribers(subscriber_ids)
            batch = list(expired.filter(subscriber_id__in=subscriber_ids))
            before = _status_before_pending(batch)
            removed = {s.pk for s in batch if before.get(s.pk, "") in ("", Status.PENDING)}
            Subscription.objects.filter(pk__in=removed).delete()
            for subscription in batch:
                if subscription.pk not in removed:
                    _end_pending_period(subscription, before[subscription.pk], now)
            _remove_empty_subscribers(subscriber_ids)
        ended += len(batch)


def _status_before_pending(subscriptions: list[Subscription]) -> dict[int, str]:
    """Each subscription's status before its current pending period: the latest event
    into pending from another status ("" for a sign-up from nothing)."""
    entries = (
        SubscriptionEvent.objects.filter(subscription__in=subscriptions, to_status=Status.PENDING)
        .exclude(from_status=Status.PENDING)
        .order_by("subscription_id", "-at", "-pk")
        .values_list("subscription_id", "from_status")
    )
    before: dict[int, str] = {}
    for subscription_id, from_status in entries:
        before.setdefault(subscription_id, from_status)
    return before


def _end_pending_period(subscription: Subscription, previous: str, now: datetime) -> None:
    # Back to the earlier status with its own timestamp untouched: when they left is
    # part of the record.
    Subscription.objects.filter(pk=subscription.pk).update(status=previous, updated_at=now)
    log_event(
        subscription,
        SubscriptionEvent.Kind.EXPIRED,
        Status.PENDING,
        previous,
        "system",
        now,
        {"pending_since": _iso(subscription.pending_since), "days": settings.PENDING_EXPIRY_DAYS},
    )


def _remove_empty_subscribers(subscriber_ids: Iterable[int]) -> None:
    Subscriber.objects.filter(pk__in=list(subscriber_ids), subscriptions__isnull=True).delete()


def _record(subscriber: Subscriber, kind: str, actor: str) -> None:
    PrivacyEvent.objects.create(
        subscriber=subscriber,
        email_hash=suppression.address_hash(subscriber.email),
        kind=kind,
        actor=actor[:200],
        at=timezone.now(),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
