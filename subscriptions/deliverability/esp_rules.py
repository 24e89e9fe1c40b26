"""What an ESP's tracking event means for us: one small rule per provider.

anymail normalises every provider's payload to an `AnymailTrackingEvent`, and for most
events its `event_type` is all we need. Bounces are the exception: several providers
report soft and hard bounces alike as `bounced`, and a few events that matter arrive as
`unknown` or `failed`. A provider's rule reads the payload anymail keeps in `esp_event`
to tell them apart; a provider without a rule gets anymail's normalisation as it is.

Hard means the address itself is no good, so it is suppressed at once. Soft is anything
that may pass (a full mailbox, a block for our content or reputation, a delay): it is
counted, and SOFT_BOUNCE_LIMIT of them in a row suppress the address.
"""

from typing import Any, ClassVar

from anymail.signals import AnymailTrackingEvent, EventType

from subscriptions.models import DeliveryEvent

Kind = DeliveryEvent.Kind


def _payload(event: AnymailTrackingEvent) -> dict[str, Any]:
    # Mailgun's legacy webhooks give a QueryDict (a dict); anything else says nothing.
    return event.esp_event if isinstance(event.esp_event, dict) else {}


class ESPEvents:
    """anymail's normalisation as it is; subclasses refine it for one provider."""

    by_event_type: ClassVar[dict[str, str]] = {
        EventType.DELIVERED: Kind.DELIVERED,
        EventType.DEFERRED: Kind.SOFT_BOUNCE,
        EventType.BOUNCED: Kind.HARD_BOUNCE,
        EventType.REJECTED: Kind.REJECTED,
        EventType.COMPLAINED: Kind.COMPLAINED,
        EventType.UNSUBSCRIBED: Kind.UNSUBSCRIBED,
    }

    def kind(self, event: AnymailTrackingEvent) -> str | None:
        """Our kind for the event, or None when it changes nothing for us."""
        kind = self.by_event_type.get(event.event_type)
        if kind == Kind.HARD_BOUNCE and self.is_soft_bounce(_payload(event)):
            return Kind.SOFT_BOUNCE
        return kind

    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        """Whether the payload of a `bounced` event says the bounce may pass."""
        return False

    def event_id(self, event: AnymailTrackingEvent) -> str | None:
        """An id that is the same when the provider sends the same event again."""
        return event.event_id

    def details(self, event: AnymailTrackingEvent) -> tuple[str, str]:
        """The description and the receiving server's answer, kept for editors."""
        return event.description or "", event.mta_response or ""


class AmazonSES(ESPEvents):
    # SES's bounceType is Permanent, Transient, or Undetermined (SES could not tell from
    # the bounce message); only Permanent says the address is no good.
    soft_bounce_types = frozenset({"Transient", "Undetermined"})
    # A DeliveryDelay notification (anymail: `unknown`) is SES still retrying a message
    # the receiving server would not take yet: a soft bounce. Two of its delayTypes are
    # trouble inside SES, which says nothing about the address and, counted, could
    # suppress many readers after one SES incident.
    delays_inside_ses = frozenset({"InternalFailure", "SendingDeferral"})

    def kind(self, event: AnymailTrackingEvent) -> str | None:
        delay = self._delay(event)
        if delay is not None:
            return None if delay.get("delayType") in self.delays_inside_ses else Kind.SOFT_BOUNCE
        return super().kind(event)

    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return (esp_event.get("bounce") or {}).get("bounceType") in self.soft_bounce_types

    def event_id(self, event: AnymailTrackingEvent) -> str | None:
        # anymail gives every recipient of one SNS notification the notification's id.
        if event.event_id and event.recipient:
            return f"{event.event_id}:{event.recipient.lower()}"
        return event.event_id

    def details(self, event: AnymailTrackingEvent) -> tuple[str, str]:
        # anymail describes a DeliveryDelay only as an unknown event type.
        delay = self._delay(event)
        if delay is None:
            return super().details(event)
        recipient = self._delayed_recipients(delay)[(event.recipient or "").lower()]
        return f"DeliveryDelay: {delay.get('delayType', '')}", recipient.get("diagnosticCode", "")

    @classmethod
    def _delay(cls, event: AnymailTrackingEvent) -> dict[str, Any] | None:
        """The deliveryDelay object, if this is a DeliveryDelay for this recipient.

        anymail sends the notification once for every destination of the message, but
        only those among its delayedRecipients were delayed.
        """
        esp_event = _payload(event)
        if esp_event.get("eventType") != "DeliveryDelay":
            return None
        delay = esp_event.get("deliveryDelay") or {}
        delayed = (event.recipient or "").lower() in cls._delayed_recipients(delay)
        return delay if delayed else None

    @staticmethod
    def _delayed_recipients(delay: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            (recipient.get("emailAddress") or "").lower(): recipient
            for recipient in delay.get("delayedRecipients") or []
        }


class Brevo(ESPEvents):
    # Brevo names the bounce in its event: soft_bounce, hard_bounce, invalid_email.
    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return esp_event.get("event") == "soft_bounce"


class Mailgun(ESPEvents):
    # anymail already turns severity "temporary" into `deferred`, so a Mailgun `bounced`
    # is permanent; legacy webhooks sent "bounced" only for permanent failures too.
    def event_id(self, event: AnymailTrackingEvent) -> str | None:
        # anymail's id is the signature token, which a retried webhook may not repeat;
        # the event-data id (unique within a day) plus the event's timestamp is stable.
        event_data = _payload(event).get("event-data") or {}
        if event_data.get("id") and event_data.get("timestamp"):
            return f"{event_data['id']}:{event_data['timestamp']}"
        return event.event_id


class Mailjet(ESPEvents):
    # Mailjet flags each bounce with hard_bounce (greylisting is `deferred` already).
    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return esp_event.get("hard_bounce") is False


class MailerSend(ESPEvents):
    # MailerSend's activity type is soft_bounced or hard_bounced.
    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return (esp_event.get("data") or {}).get("type") == "soft_bounced"


class Mandrill(ESPEvents):
    # Mandrill's event is soft_bounce or hard_bounce.
    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return esp_event.get("event") == "soft_bounce"


class Postal(ESPEvents):
    # Postal's SoftFail is `deferred` already. HardFail, Postal giving up on a message
    # the receiving server refused for good, arrives as anymail's `failed`, which would
    # otherwise be dropped. A bounce message Postal receives later (MessageBounced) does
    # not say which it is; like anymail we take it as hard: a bounce after the message
    # was accepted is normally final.
    def kind(self, event: AnymailTrackingEvent) -> str | None:
        status = (_payload(event).get("payload") or {}).get("status")
        if event.event_type == EventType.FAILED and status == "HardFail":
            return Kind.HARD_BOUNCE
        return super().kind(event)


class Postmark(ESPEvents):
    # anymail already makes Transient, DnsError and OpenRelayTest `deferred` and
    # AutoResponder `autoresponded`. Of the Types it leaves `bounced`, SoftBounce (mailbox
    # full, over quota) and VirusNotification (about our message, not the address) may
    # pass; HardBounce and any Type Postmark adds later count as hard.
    soft_bounce_types = frozenset({"SoftBounce", "VirusNotification"})

    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return esp_event.get("Type") in self.soft_bounce_types


class Resend(ESPEvents):
    # Resend passes on SES's bounce type (Permanent, Transient, Undetermined). Older
    # payloads carry only a message; Resend documents email.bounced as a permanent
    # rejection, so those count as hard.
    soft_bounce_types = frozenset({"Transient", "Undetermined"})

    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        bounce = (esp_event.get("data") or {}).get("bounce") or {}
        return bounce.get("type") in self.soft_bounce_types


class SendGrid(ESPEvents):
    # A SendGrid bounce event has type "bounce" (the receiver refused the address for
    # good) or "blocked" (it refused the message for now: reputation, content, limits).
    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        return esp_event.get("type") == "blocked"


class SparkPost(ESPEvents):
    # SparkPost's bounce classes fall in categories Hard, Admin, Soft, Block and
    # Undetermined; SparkPost says only Hard and Admin are suppression-level, the rest
    # "usually temporary" (support.sparkpost.com/docs/deliverability/bounce-classification-codes).
    # A bounce without a class stays hard, as anymail has it.
    hard_bounce_classes = frozenset({"10", "25", "26", "30", "90"})

    def is_soft_bounce(self, esp_event: dict[str, Any]) -> bool:
        # {"msys": {"message_event": {...}}}: one event class, named by its key.
        message = next(iter((esp_event.get("msys") or {}).values()), None) or {}
        bounce_class = message.get("bounce_class")
        return bounce_class is not None and str(bounce_class) not in self.hard_bounce_classes


# Keyed by anymail's esp_name. Mailtrap and Unisender Go need no rule: anymail already
# reports their soft bounces as `deferred` (Mailtrap's "suspension", mail to the domain
# held back, too, which we count like any delay).
_RULES: dict[str, ESPEvents] = {
    "Amazon SES": AmazonSES(),
    "Brevo": Brevo(),
    "SendinBlue": Brevo(),  # anymail's old name for Brevo, still at /anymail/sendinblue/
    "Mailgun": Mailgun(),
    "Mailjet": Mailjet(),
    "MailerSend": MailerSend(),
    "Mandrill": Mandrill(),
    "Postal": Postal(),
    "Postmark": Postmark(),
    "Resend": Resend(),
    "SendGrid": SendGrid(),
    "SparkPost": SparkPost(),
}
_AS_ANYMAIL_HAS_IT = ESPEvents()


def for_esp(esp_name: str) -> ESPEvents:
    """The rule for a provider, by anymail's esp_name."""
    return _RULES.get(esp_name, _AS_ANYMAIL_HAS_IT)
