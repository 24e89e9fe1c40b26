"""The edge to the ESPs: anymail's tracking and inbound signals.

anymail's webhook views (mounted at /anymail/<esp>/tracking/ and .../inbound/) check
the basic-auth secret and any provider signature, then normalise each provider's
payload to one `AnymailTrackingEvent`. This module narrows that to the events that
change something for us and stores them; the work happens in a Celery task, so the
ESP gets its 200 quickly and does not time out and retry.
"""

import json
import logging
import re

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, EventType, inbound, tracking
from anymail.webhooks import amazon_ses as anymail_ses
from anymail.webhooks import postmark as anymail_postmark
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest

from subscriptions import deliverability, services
from subscriptions.exceptions import TokenInvalid
from subscriptions.models import DeliveryEvent
from subscriptions.tokens import unsubscribe_token

logger = logging.getLogger(__name__)
Kind = DeliveryEvent.Kind

# Bounces some providers report as `bounced` although the receiving server said "try
# again later". anymail keeps the provider's own words in `esp_event`.
_POSTMARK_SOFT_TYPES = {"SoftBounce", "Transient", "DnsError", "AutoResponder"}
_SES_SOFT_TYPES = {"Transient", "Undetermined"}


def classify(event: AnymailTrackingEvent, esp_name: str) -> str | None:
    """Our kind for an anymail event, or None when it changes nothing for us."""
    if event.event_type == EventType.DELIVERED:
        return Kind.DELIVERED
    if event.event_type == EventType.DEFERRED:
        return Kind.SOFT_BOUNCE
    if event.event_type == EventType.BOUNCED:
        return Kind.SOFT_BOUNCE if _is_soft_bounce(event, esp_name) else Kind.HARD_BOUNCE
    if event.event_type == EventType.REJECTED:
        return Kind.REJECTED
    if event.event_type == EventType.COMPLAINED:
        return Kind.COMPLAINED
    if event.event_type == EventType.UNSUBSCRIBED:
        return Kind.UNSUBSCRIBED
    return None


def _is_soft_bounce(event: AnymailTrackingEvent, esp_name: str) -> bool:
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    if esp_name == "Postmark":
        return esp_event.get("Type") in _POSTMARK_SOFT_TYPES
    if esp_name == "Amazon SES":
        bounce = esp_event.get("bounce") or {}
        return bounce.get("bounceType") in _SES_SOFT_TYPES
    if esp_name == "Mailgun":
        event_data = esp_event.get("event-data") or {}
        return event_data.get("severity") == "temporary"
    return False


def stable_event_id(event: AnymailTrackingEvent, esp_name: str) -> str | None:
    """An id that is the same when the provider sends the same event again.

    anymail's `event_id` mostly is, with two exceptions: Mailgun's is the signature
    token, which a retried webhook may not repeat (its event-data id, unique within a
    day, plus the event's timestamp is stable); and Amazon SES gives every recipient of
    one notification the same id, so the recipient is added to keep them apart.
    """
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    if esp_name == "Mailgun":
        event_data = esp_event.get("event-data") or {}
        if event_data.get("id") and event_data.get("timestamp"):
            return f"{event_data['id']}:{event_data['timestamp']}"
    if esp_name == "Amazon SES" and event.event_id and event.recipient:
        return f"{event.event_id}:{event.recipient.lower()}"
    return event.event_id


class _NonJsonBodyIsBadRequest:
    """anymail 15.2 lets a non-JSON body escape these views as a 500, which an ESP
    retries for hours; a validation failure (SuspiciousOperation) answers 400."""

    def run_validators(self, request: HttpRequest) -> None:
        try:
            json.loads(request.body.decode(request.encoding or "utf-8"))
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; LookupError is an unknown
        # charset; RecursionError is nesting deeper than the parser's stack.
        except (ValueError, LookupError, RecursionError) as exc:
            raise AnymailWebhookValidationFailure("The webhook body is not JSON.") from exc
        super().run_validators(request)  # type: ignore[misc]


class PostmarkTrackingWebhookView(
    _NonJsonBodyIsBadRequest, anymail_postmark.PostmarkTrackingWebhookView
):
    pass


class PostmarkInboundWebhookView(
    _NonJsonBodyIsBadRequest, anymail_postmark.PostmarkInboundWebhookView
):
    pass


class AmazonSESTrackingWebhookView(
    _NonJsonBodyIsBadRequest, anymail_ses.AmazonSESTrackingWebhookView
):
    pass


@receiver(tracking, dispatch_uid="subscriptions.webhooks.on_tracking_event")
def on_tracking_event(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object
) -> None:
    kind = classify(event, esp_name)
    if kind is None or not event.recipient:
        return
    deliverability.record_delivery_event(
        esp=esp_name,
        kind=kind,
        event_id=stable_event_id(event, esp_name),
        recipient=event.recipient,
        occurred_at=event.timestamp,
        message_id=event.message_id,
        metadata=event.metadata if isinstance(event.metadata, dict) else {},
        description=event.description or "",
        mta_response=event.mta_response or "",
    )


_UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe\s+(?P<token>[A-Za-z0-9_\-:.]+)", re.IGNORECASE)


@receiver(inbound, dispatch_uid="subscriptions.webhooks.on_inbound_email")
def on_inbound_email(
    sender: object, event: AnymailInboundEvent, esp_name: str, **kwargs: object
) -> None:
    """Mail to UNSUBSCRIBE_MAILTO (the List-Unsubscribe mailto:) ends the subscription
    named by the token in its subject; anything else is ignored."""
    message = event.message
    if message is None or not settings.UNSUBSCRIBE_MAILTO:
        return
    recipients = {address.addr_spec.lower() for address in message.to or []}
    if settings.UNSUBSCRIBE_MAILTO.lower() not in recipients:
        return
    match = _UNSUBSCRIBE_SUBJECT.search(message.subject or "")
    if match is None:
        return
    try:
        subscription_id = unsubscribe_token.read_token(match.group("token"))
    except TokenInvalid:
        logger.info("ignored an unsubscribe email with a bad token")
        return
    services.unsubscribe(subscription_id=subscription_id, actor=f"esp:{esp_name}", via="mailto")
