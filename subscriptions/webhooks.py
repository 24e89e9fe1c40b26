"""The edge to the ESPs: anymail's tracking and inbound signals.

anymail's webhook views (mounted at /anymail/<esp>/tracking/ and .../inbound/) check
the basic-auth secret and any provider signature, then normalise each provider's
payload to one `AnymailTrackingEvent`. This module narrows that, with each provider's
rule in `subscriptions.esp_events`, to the events that change something for us and
stores them; the work happens in a Celery task, so the ESP gets its 200 quickly and does
not time out and retry.
"""

import json
import logging
import re

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking
from anymail.webhooks import amazon_ses as anymail_ses
from anymail.webhooks import postmark as anymail_postmark
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest

from subscriptions import deliverability, esp_events, services
from subscriptions.exceptions import TokenInvalid
from subscriptions.tokens import unsubscribe_token

logger = logging.getLogger(__name__)


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
    rule = esp_events.for_esp(esp_name)
    kind = rule.kind(event)
    if kind is None or not event.recipient:
        return
    description, mta_response = rule.details(event)
    deliverability.record_delivery_event(
        esp=esp_name,
        kind=kind,
        event_id=rule.event_id(event),
        recipient=event.recipient,
        occurred_at=event.timestamp,
        message_id=event.message_id,
        metadata=event.metadata if isinstance(event.metadata, dict) else {},
        description=description,
        mta_response=mta_response,
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
