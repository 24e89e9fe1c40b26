"""The reader a tracking event is about, what a webhook could change, and posting one
as production would."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.test import Client
from django.utils import timezone

from subscriptions.mail import messages
from subscriptions.models import (
    DeliveryEvent,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from tests.esp_payloads import ESP
from tests.factories import SubscriberFactory, SubscriptionFactory

Status = Subscription.Status


@dataclass
class Reader:
    email: str
    active: Subscription
    pending: Subscription
    ended: Subscription
    welcome_email: OutboundEmail
    metadata: dict[str, str]

    def statuses(self) -> dict[str, str]:
        return {
            name: Subscription.objects.get(pk=subscription.pk).status
            for name, subscription in [
                ("active", self.active),
                ("pending", self.pending),
                ("ended", self.ended),
            ]
        }


def make_reader() -> Reader:
    """Ann: active in one newsletter (and sent its welcome email), pending in a second,
    unsubscribed from a third."""
    now = timezone.now()
    subscriber = SubscriberFactory(email="ann@example.org")
    active = SubscriptionFactory(
        subscriber=subscriber, status=Status.ACTIVE, pending_since=None, confirmed_at=now
    )
    pending = SubscriptionFactory(subscriber=subscriber)
    ended = SubscriptionFactory(
        subscriber=subscriber, status=Status.UNSUBSCRIBED, unsubscribed_at=now
    )
    welcome = OutboundEmail.objects.create(
        kind=OutboundEmail.Kind.WELCOME,
        status=OutboundEmail.Status.SENT,
        to_email=subscriber.email,
        subscriber=subscriber,
        created_at=now,
        sent_at=now,
    )
    welcome.subscriptions.add(active)
    # Exactly what messages.py attaches and the ESP echoes back.
    metadata = messages.build_message(welcome).metadata
    assert metadata["subscription_ids"] == str(active.pk)
    return Reader(subscriber.email, active, pending, ended, welcome, metadata)


def world() -> dict:
    """Everything a webhook could change."""
    return {
        "delivery_events": list(DeliveryEvent.objects.values_list("esp", "event_id", "kind")),
        "subscriptions": sorted(Subscription.objects.values_list("pk", "status")),
        "subscription_events": SubscriptionEvent.objects.count(),
        "suppressed": list(SuppressedAddress.objects.values_list("email", "reason")),
        "subscribers": Subscriber.objects.count(),
    }


def minutes_ago(minutes: int) -> datetime:
    return timezone.now().replace(microsecond=0) - timedelta(minutes=minutes)


def post_processed(esp: ESP, client: Client, payload: dict, capture, **kwargs):
    """Post a webhook and run what it queued on commit, as production would."""
    with capture(execute=True):
        response = esp.post(client, payload, **kwargs)
    assert response.status_code == 200, response.content
    return response


def log_of(subscription: Subscription, kind: str) -> list[SubscriptionEvent]:
    return list(SubscriptionEvent.objects.filter(subscription=subscription, kind=kind))
