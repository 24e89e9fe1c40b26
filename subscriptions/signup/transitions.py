"""The primitives every state change is made of: lock the subscriber, change a
subscription's status with its timestamp, write the event log and the consent record.

Services in `signup/services.py` (reader- and editor-driven) and
`deliverability/delivery_events.py` (ESP-driven) are built from these; nothing else
should call them.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Lower
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)

Status = Subscription.Status
Event = SubscriptionEvent.Kind

# Shown in the reader's language, and recorded in it (the words they saw).
DEFAULT_CONSENT_TEXT = _(
    "We'll email you a link to confirm first. You can unsubscribe at any time with one "
    "click from any email."
)
# What a consent text recorded from another site (the API's `consent_text`) may hold.
MAX_CONSENT_TEXT_LENGTH = 2000


def confirmation_prompt(newsletter_names: list[str]) -> str:
    """The words on the confirm page, recorded with the confirmation as what the reader
    agreed to."""
    return _("Confirm your subscription to: %(names)s") % {"names": ", ".join(newsletter_names)}


@dataclass(frozen=True)
class ConsentContext:
    """What the reader saw and where they were; recorded as proof of consent."""

    ip_address: str | None = None
    user_agent: str = ""
    page_url: str = ""
    # The words as shown, translated when the record is written.
    consent_text: str | Promise = DEFAULT_CONSENT_TEXT


def lock_or_create_subscriber(address: str, *, language: str = "") -> Subscriber:
    """Return the subscriber for this address, row-locked until the transaction ends;
    a new one is created speaking `language`."""
    query = Subscriber.objects.select_for_update().alias(email_ci=Lower("email"))
    match = Q(email_ci=Lower(Value(address)))
    subscriber = query.filter(match).first()
    if subscriber is not None:
        return subscriber
    try:
        # The savepoint lets a lost insert race fall back to the winner's row.
        with transaction.atomic():
            return Subscriber.objects.create(email=address, language=language)
    except IntegrityError:
        return query.get(match)


def lock_subscribers(subscriber_ids: set[int]) -> list[Subscriber]:
    # Ordered, so two services locking the same rows can never deadlock.
    return list(Subscriber.objects.select_for_update().filter(pk__in=subscriber_ids).order_by("pk"))


def change_status(
    subscription: Subscription,
    target: str,
    kind: str,
    actor: str,
    now: datetime,
    detail: dict | None = None,
) -> None:
    previous = subscription.status
    subscription.status = target
    stamp_field = {
        Status.PENDING: "pending_since",
        Status.ACTIVE: "confirmed_at",
        Status.UNSUBSCRIBED: "unsubscribed_at",
        Status.BOUNCED: "bounced_at",
        Status.COMPLAINED: "complained_at",
    }[Status(target)]
    setattr(subscription, stamp_field, now)
    subscription.save(update_fields=["status", "source", stamp_field, "updated_at"])
    log_event(subscription, kind, previous, target, actor, now, detail or {})


def log_event(
    subscription: Subscription,
    kind: str,
    from_status: str,
    to_status: str,
    actor: str,
    now: datetime,
    detail: dict | None = None,
) -> None:
    SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:200],
        detail=detail or {},
        at=now,
    )


def record_consent(
    subscription: Subscription, kind: str, consent: ConsentContext, now: datetime
) -> None:
    ConsentRecord.objects.create(
        subscription=subscription,
        kind=kind,
        at=now,
        ip_address=consent.ip_address or None,
        user_agent=consent.user_agent[:500],
        page_url=consent.page_url[:2000],
        consent_text=str(consent.consent_text),
    )


def start_subscription(
    subscriber: Subscriber,
    newsletter: Newsletter,
    subscription: Subscription | None,
    *,
    source: str,
    actor: str,
    now: datetime,
    verified: bool = False,
) -> Subscription:
    """Start (or start again) a subscription: pending when the newsletter asks for
    confirmation and nothing verified the address, else active; logged."""
    needs_confirmation = newsletter.double_opt_in and not verified
    target = Status.PENDING if needs_confirmation else Status.ACTIVE
    if subscription is None:
        subscription = Subscription.objects.create(
            subscriber=subscriber,
            newsletter=newsletter,
            status=target,
            source=source,
            pending_since=now if target == Status.PENDING else None,
            confirmed_at=now if target == Status.ACTIVE else None,
        )
        kind = Event.SUBSCRIBED if target == Status.PENDING else Event.ACTIVATED
        log_event(subscription, kind, "", target, actor, now, {"source": source})
        return subscription
    if subscription.status == Status.PENDING and target == Status.PENDING:
        log_event(subscription, Event.RESUBMITTED, Status.PENDING, Status.PENDING, actor, now)
        return subscription
    subscription.source = source
    kind = Event.SUBSCRIBED if target == Status.PENDING else Event.ACTIVATED
    change_status(subscription, target, kind, actor, now, detail={"source": source})
    return subscription
