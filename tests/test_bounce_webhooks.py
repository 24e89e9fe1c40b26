"""The ESPs tell us about bounces, complaints and unsubscribes through anymail's
webhooks. Only authenticated posts count; each event is stored once and acted on in a
task; an address that hard-bounces, complains or soft-bounces too often gets no more
mail, and an unsubscribe at the ESP ends just the subscription the email was for.

Payloads follow each provider's documented examples, with our metadata echoed back
the way each ESP does it: Postmark `Metadata`, Mailgun `user-variables`, and for
Amazon SES the `X-Metadata` header anymail's SES backend adds (anymail's SES webhook
reads metadata from `mail.headers`, not from `mail.tags`).
"""

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.test import Client
from django.utils import timezone

from subscriptions import deliverability, emails
from subscriptions.models import (
    DeliveryEvent,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from tests.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

Status = Subscription.Status
Kind = DeliveryEvent.Kind
Reason = SuppressedAddress.Reason

WEBHOOK_SECRET = "hook:s3cret"
MAILGUN_SIGNING_KEY = "mailgun-test-key"
SENDER = "The Kyiv Ledger <hello@example.org>"


@pytest.fixture(autouse=True)
def _anymail_settings(settings):
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.SOFT_BOUNCE_WINDOW_DAYS = 30


def basic_auth(credentials: str | None) -> dict[str, str]:
    if credentials is None:
        return {}
    token = base64.b64encode(credentials.encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def iso_z(at: datetime, *, digits: int = 3) -> str:
    """ISO 8601 in UTC with a Z, as the providers write it."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[: len(stamp) - 6 + digits] + "Z"


# --- the providers ------------------------------------------------------------------------


class ESP:
    """How one provider posts a tracking event; subclasses build its payloads."""

    name: str
    tracking_url: str

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        return client.post(
            self.tracking_url,
            data=json.dumps(payload),
            content_type="application/json",
            **basic_auth(auth),
        )


class Postmark(ESP):
    name = "Postmark"
    tracking_url = "/anymail/postmark/tracking/"
    _bounce_ids = itertools.count(4323372036854775807)

    def _bounce(
        self, record_type: str, bounce_type: str, type_code: int, name: str, description: str
    ):
        def build(recipient: str, metadata: dict, at: datetime, details: str = "") -> dict:
            return {
                "RecordType": record_type,
                "MessageStream": "outbound",
                "ID": next(self._bounce_ids),
                "Type": bounce_type,
                "TypeCode": type_code,
                "Name": name,
                "Tag": metadata.get("message_type", ""),
                "MessageID": str(uuid.uuid4()),
                "Metadata": metadata,
                "ServerID": 23,
                "Description": description,
                "Details": details or "smtp;550 5.1.1 The email account does not exist.",
                "Email": recipient,
                "From": "hello@example.org",
                "BouncedAt": iso_z(at, digits=7),
                "DumpAvailable": True,
                "Inactive": bounce_type != "SoftBounce",
                "CanActivate": True,
                "Subject": "Welcome to Explaining Ukraine",
                "Content": "Return-Path: <>\r\nReceived: ...",
            }

        return build

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "HardBounce",
            1,
            "Hard bounce",
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        )(recipient, metadata, at)

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "SoftBounce",
            4096,
            "Soft bounce/Undeliverable",
            "Unable to temporarily deliver this email.",
        )(recipient, metadata, at, details="smtp;452 4.2.2 The email account is over quota.")

    def complaint(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "SpamComplaint",
            "SpamComplaint",
            512,
            "Spam complaint",
            "The subscriber explicitly marked this message as spam.",
        )(recipient, metadata, at, details="Test spam complaint details")

    def delivered(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # A Delivery record carries no ID of its own.
        return {
            "RecordType": "Delivery",
            "ServerID": 23,
            "MessageStream": "outbound",
            "MessageID": str(uuid.uuid4()),
            "Recipient": recipient,
            "Tag": metadata.get("message_type", ""),
            "DeliveredAt": iso_z(at, digits=7),
            "Details": "smtp;250 2.0.0 OK  1612460832 d12si1236524qkf.193 - gsmtp",
            "Metadata": metadata,
        }

    def unsubscribed(
        self, recipient: str, metadata: dict, at: datetime, *, suppress_sending: bool = True
    ) -> dict:
        # The reader used Postmark's unsubscribe link; no ID here either.
        return {
            "RecordType": "SubscriptionChange",
            "MessageID": str(uuid.uuid4()),
            "ServerID": 23,
            "MessageStream": "broadcast",
            "ChangedAt": iso_z(at, digits=7),
            "Recipient": recipient,
            "Origin": "Recipient",
            "SuppressSending": suppress_sending,
            "SuppressionReason": "ManualSuppression" if suppress_sending else None,
            "Tag": metadata.get("message_type", ""),
            "Metadata": metadata,
        }

    def resubscribed(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self.unsubscribed(recipient, metadata, at, suppress_sending=False)

    def opened(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return {
            "RecordType": "Open",
            "MessageStream": "outbound",
            "FirstOpen": True,
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X"},
            "Platform": "WebMail",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) Chrome/35.0",
            "ReadSeconds": 5,
            "Geo": {"CountryISOCode": "UA", "Country": "Ukraine", "City": "Kyiv"},
            "MessageID": str(uuid.uuid4()),
            "Metadata": metadata,
            "ReceivedAt": iso_z(at, digits=7),
            "Tag": metadata.get("message_type", ""),
            "Recipient": recipient,
        }

    def clicked(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return {
            "RecordType": "Click",
            "MessageStream": "outbound",
            "ClickLocation": "HTML",
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X"},
            "Platform": "Desktop",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) Chrome/35.0",
            "OriginalLink": "https://news.example.org/newsletters/explaining-ukraine/",
            "Geo": {"CountryISOCode": "UA", "Country": "Ukraine", "City": "Kyiv"},
            "MessageID": str(uuid.uuid4()),
            "Metadata": metadata,
            "ReceivedAt": iso_z(at, digits=7),
            "Tag": metadata.get("message_type", ""),
            "Recipient": recipient,
        }


class Mailgun(ESP):
    name = "Mailgun"
    tracking_url = "/anymail/mailgun/tracking/"

    def sign(
        self,
        event_data: dict,
        *,
        key: str = MAILGUN_SIGNING_KEY,
        timestamp: str | None = None,
        token: str | None = None,
    ) -> dict:
        """Wrap event-data in the signature block Mailgun sends: HMAC-SHA256 of
        timestamp + token under the webhook signing key."""
        timestamp = timestamp or str(int(timezone.now().timestamp()))
        token = token or secrets.token_hex(25)
        signature = hmac.new(
            key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
        ).hexdigest()
        return {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event_data,
        }

    def _event(self, event: str, recipient: str, metadata: dict, at: datetime, **extra) -> dict:
        return self.sign(
            {
                "event": event,
                "id": secrets.token_urlsafe(16),
                "timestamp": at.timestamp(),
                "log-level": extra.pop("log_level", "info"),
                "recipient": recipient,
                "recipient-domain": recipient.rpartition("@")[2],
                "envelope": {
                    "sender": "bounce@mg.news.example.org",
                    "transport": "smtp",
                    "targets": recipient,
                },
                "flags": {
                    "is-routed": False,
                    "is-authenticated": True,
                    "is-system-test": False,
                    "is-test-mode": False,
                },
                "message": {
                    "headers": {
                        "to": recipient,
                        "message-id": f"{secrets.token_hex(8)}@mg.news.example.org",
                        "from": SENDER,
                        "subject": "Welcome to Explaining Ukraine",
                    },
                    "attachments": [],
                    "size": 4822,
                },
                "storage": {
                    "url": "https://se.api.mailgun.net/v3/domains/mg.news.example.org/messages/x",
                    "key": "message_key",
                },
                "campaigns": [],
                "tags": [metadata.get("message_type", "")],
                "user-variables": metadata,
                **extra,
            }
        )

    def _failed(
        self, severity: str, reason: str, code: int, message: str, description: str
    ) -> partial:
        return partial(
            self._event,
            "failed",
            log_level="error" if severity == "permanent" else "warn",
            severity=severity,
            reason=reason,
            **{
                "delivery-status": {
                    "attempt-no": 1,
                    "message": message,
                    "code": code,
                    "description": description,
                    "session-seconds": 1.2,
                    "mx-host": "mx.example.org",
                }
            },
        )

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._failed(
            "permanent",
            "bounce",
            550,
            "5.1.1 The email account that you tried to reach does not exist.",
            "",
        )(recipient, metadata, at)

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._failed(
            "temporary",
            "generic",
            452,
            "4.2.2 The email account that you tried to reach is over quota.",
            "",
        )(recipient, metadata, at)

    def complaint(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event("complained", recipient, metadata, at, log_level="warn")

    def delivered(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "delivered",
            recipient,
            metadata,
            at,
            **{
                "delivery-status": {
                    "tls": True,
                    "mx-host": "mx.example.org",
                    "code": 250,
                    "description": "",
                    "session-seconds": 0.43,
                    "utf8": True,
                    "attempt-no": 1,
                    "message": "OK",
                    "certificate-verified": True,
                }
            },
        )

    def unsubscribed(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "unsubscribed",
            recipient,
            metadata,
            at,
            ip="192.0.2.44",
            geolocation={"country": "UA", "region": "30", "city": "Kyiv"},
            **{
                "client-info": {
                    "client-os": "Linux",
                    "device-type": "desktop",
                    "client-name": "Firefox",
                    "client-type": "browser",
                    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                }
            },
        )

    def opened(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event("opened", recipient, metadata, at, ip="192.0.2.44")

    def clicked(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "clicked", recipient, metadata, at, url="https://news.example.org/newsletters/"
        )


class AmazonSES(ESP):
    name = "Amazon SES"
    tracking_url = "/anymail/amazon_ses/tracking/"
    topic_arn = "arn:aws:sns:eu-west-1:123456789012:newsroom-ses-events"

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        # SNS posts text/plain and repeats the message type and id in headers.
        return client.post(
            self.tracking_url,
            data=json.dumps(payload),
            content_type="text/plain; charset=UTF-8",
            HTTP_X_AMZ_SNS_MESSAGE_TYPE=payload["Type"],
            HTTP_X_AMZ_SNS_MESSAGE_ID=payload["MessageId"],
            HTTP_X_AMZ_SNS_TOPIC_ARN=self.topic_arn,
            HTTP_X_AMZ_SNS_SUBSCRIPTION_ARN=f"{self.topic_arn}:{uuid.uuid4()}",
            HTTP_USER_AGENT="Amazon Simple Notification Service Agent",
            **basic_auth(auth),
        )

    def _notification(self, ses_event: dict, at: datetime) -> dict:
        return {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": self.topic_arn,
            "Message": json.dumps(ses_event),
            "Timestamp": iso_z(at),
            "SignatureVersion": "1",
            "Signature": base64.b64encode(secrets.token_bytes(64)).decode(),
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/"
            "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={self.topic_arn}:{uuid.uuid4()}",
        }

    def _mail(self, recipient: str, metadata: dict, at: datetime) -> dict:
        message_id = f"0102018c{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
        return {
            "timestamp": iso_z(at - timedelta(seconds=2)),
            "source": SENDER,
            "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
            "sendingAccountId": "123456789012",
            "messageId": message_id,
            "destination": [recipient],
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": SENDER},
                {"name": "To", "value": recipient},
                {"name": "Subject", "value": "Welcome to Explaining Ukraine"},
                {"name": "MIME-Version", "value": "1.0"},
                {"name": "Content-Type", "value": 'multipart/alternative; boundary="===b=="'},
                # anymail's SES backend carries metadata and tags in these headers:
                {"name": "X-Metadata", "value": json.dumps(metadata, separators=(",", ":"))},
                {"name": "X-Tag", "value": metadata.get("message_type", "")},
            ],
            "commonHeaders": {
                "from": [SENDER],
                "to": [recipient],
                "messageId": message_id,
                "subject": "Welcome to Explaining Ukraine",
            },
            "tags": {
                "ses:configuration-set": ["newsroom"],
                "ses:source-ip": ["192.0.2.10"],
                "ses:from-domain": ["example.org"],
                "ses:caller-identity": ["newsroom-mailer"],
            },
        }

    def _bounce(self, bounce_type: str, sub_type: str, action: str, status: str, code: str):
        def build(recipient: str, metadata: dict, at: datetime) -> dict:
            return self._notification(
                {
                    "eventType": "Bounce",
                    "bounce": {
                        "bounceType": bounce_type,
                        "bounceSubType": sub_type,
                        "bouncedRecipients": [
                            {
                                "emailAddress": recipient,
                                "action": action,
                                "status": status,
                                "diagnosticCode": code,
                            }
                        ],
                        "timestamp": iso_z(at),
                        "feedbackId": f"0102018c{secrets.token_hex(8)}-000000",
                        "reportingMTA": "dsn; a1-23.smtp-out.eu-west-1.amazonses.com",
                    },
                    "mail": self._mail(recipient, metadata, at),
                },
                at,
            )

        return build

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Permanent", "General", "failed", "5.1.1", "smtp; 550 5.1.1 user unknown"
        )(recipient, metadata, at)

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Transient", "MailboxFull", "delayed", "4.2.2", "smtp; 452 4.2.2 mailbox full"
        )(recipient, metadata, at)

    def complaint(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._notification(
            {
                "eventType": "Complaint",
                "complaint": {
                    "complainedRecipients": [{"emailAddress": recipient}],
                    "timestamp": iso_z(at),
                    "feedbackId": f"0102018c{secrets.token_hex(8)}-000000",
                    "userAgent": "Yahoo!-Mail-Feedback/2.0",
                    "complaintFeedbackType": "abuse",
                    "arrivalDate": iso_z(at - timedelta(minutes=5)),
                },
                "mail": self._mail(recipient, metadata, at),
            },
            at,
        )

    def delivered(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._notification(
            {
                "eventType": "Delivery",
                "mail": self._mail(recipient, metadata, at),
                "delivery": {
                    "timestamp": iso_z(at),
                    "processingTimeMillis": 546,
                    "recipients": [recipient],
                    "smtpResponse": "250 2.6.0 Message received",
                    "reportingMTA": "a1-23.smtp-out.eu-west-1.amazonses.com",
                },
            },
            at,
        )

    def opened(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._notification(
            {
                "eventType": "Open",
                "mail": self._mail(recipient, metadata, at),
                "open": {
                    "ipAddress": "192.0.2.44",
                    "timestamp": iso_z(at),
                    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
                },
            },
            at,
        )

    def clicked(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._notification(
            {
                "eventType": "Click",
                "mail": self._mail(recipient, metadata, at),
                "click": {
                    "ipAddress": "192.0.2.44",
                    "link": "https://news.example.org/newsletters/",
                    "linkTags": {},
                    "timestamp": iso_z(at),
                    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
                },
            },
            at,
        )


POSTMARK, MAILGUN, SES = Postmark(), Mailgun(), AmazonSES()
ALL_ESPS = pytest.mark.parametrize("esp", [POSTMARK, MAILGUN, SES], ids=lambda e: e.name)


# --- the reader the events are about ------------------------------------------------------


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


@pytest.fixture
def reader() -> Reader:
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
    # Exactly what emails.py attaches and the ESP echoes back.
    metadata = emails.build_message(welcome).metadata
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


# --- hard bounces and authentication -----------------------------------------------------


@ALL_ESPS
def test_an_authenticated_hard_bounce_bounces_every_open_subscription_and_suppresses_the_address(
    esp, client, reader, django_capture_on_commit_callbacks
):
    bounced_at = minutes_ago(5)

    post_processed(
        esp,
        client,
        esp.hard_bounce(reader.email, reader.metadata, bounced_at),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (esp.name, Kind.HARD_BOUNCE, reader.email)
    assert event.occurred_at == bounced_at
    assert event.outbound_email_id == reader.welcome_email.pk
    assert event.subscription_ids == [reader.active.pk]
    assert event.processed_at is not None
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}
    for subscription in (reader.active, reader.pending):
        subscription.refresh_from_db()
        assert subscription.bounced_at is not None
        (logged,) = log_of(subscription, SubscriptionEvent.Kind.BOUNCED)
        assert logged.actor == f"esp:{esp.name}"
        assert logged.to_status == Status.BOUNCED
        assert logged.detail["delivery_event_id"] == event.pk
    assert log_of(reader.ended, SubscriptionEvent.Kind.BOUNCED) == []
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event, entry.lifted_at) == (
        reader.email,
        Reason.HARD_BOUNCE,
        event,
        None,
    )


@ALL_ESPS
@pytest.mark.parametrize("credentials", [None, "hook:wrong"], ids=["no-auth", "wrong-password"])
def test_an_unauthenticated_hard_bounce_is_refused_and_changes_nothing(
    esp, credentials, client, reader, django_capture_on_commit_callbacks
):
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = esp.post(
            client, esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)), auth=credentials
        )

    # anymail refuses with SuspiciousOperation (400); SES first asks for credentials
    # with a 401 challenge, as SNS sends basic auth only after one.
    expected = 401 if esp is SES and credentials is None else 400
    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
    assert callbacks == []
    assert world() == before
    assert reader.statuses()["active"] == Status.ACTIVE


@pytest.mark.parametrize("forgery", ["other-key", "other-timestamp", "other-token"])
def test_a_mailgun_post_with_good_basic_auth_but_a_bad_signature_is_refused(
    forgery, client, reader, django_capture_on_commit_callbacks
):
    event_data = MAILGUN.hard_bounce(reader.email, reader.metadata, minutes_ago(1))["event-data"]
    if forgery == "other-key":
        payload = MAILGUN.sign(event_data, key="not-the-signing-key")
    else:
        payload = MAILGUN.sign(event_data)
        field = forgery.removeprefix("other-")
        payload["signature"][field] = MAILGUN.sign({})["signature"][field] + "0"
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = MAILGUN.post(client, payload)

    assert response.status_code == 400
    assert callbacks == []
    assert world() == before


# --- complaints and unsubscribes ----------------------------------------------------------


@ALL_ESPS
def test_a_complaint_marks_the_subscriptions_complained_and_suppresses_the_address(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.complaint(reader.email, reader.metadata, minutes_ago(2)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert event.kind == Kind.COMPLAINED
    assert reader.statuses() == {
        "active": "complained",
        "pending": "complained",
        "ended": "unsubscribed",
    }
    reader.active.refresh_from_db()
    assert reader.active.complained_at is not None
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.COMPLAINED)
    assert logged.actor == f"esp:{esp.name}"
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event) == (
        reader.email,
        Reason.COMPLAINT,
        event,
    )


@pytest.mark.parametrize("esp", [POSTMARK, MAILGUN], ids=lambda e: e.name)
def test_an_unsubscribe_at_the_esp_ends_only_the_subscription_the_email_was_for(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.unsubscribed(reader.email, reader.metadata, minutes_ago(3)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.kind, event.subscription_ids) == (Kind.UNSUBSCRIBED, [reader.active.pk])
    assert reader.statuses() == {
        "active": "unsubscribed",
        "pending": "pending",
        "ended": "unsubscribed",
    }
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.UNSUBSCRIBED)
    assert logged.actor == f"esp:{esp.name}"
    assert logged.from_status == Status.ACTIVE
    assert log_of(reader.pending, SubscriptionEvent.Kind.UNSUBSCRIBED) == []
    assert not SuppressedAddress.objects.exists()


# --- soft bounces -------------------------------------------------------------------------


@ALL_ESPS
def test_soft_bounces_below_the_limit_only_store_delivery_events(
    esp, client, reader, django_capture_on_commit_callbacks
):
    for minutes in (50, 40):
        post_processed(
            esp,
            client,
            esp.soft_bounce(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    events = list(DeliveryEvent.objects.values_list("kind", flat=True))
    assert events == [Kind.SOFT_BOUNCE, Kind.SOFT_BOUNCE]
    assert not DeliveryEvent.objects.filter(processed_at__isnull=True).exists()
    assert reader.statuses() == {"active": "active", "pending": "pending", "ended": "unsubscribed"}
    assert not SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.BOUNCED).exists()
    assert not SuppressedAddress.objects.exists()


@ALL_ESPS
def test_the_third_soft_bounce_in_a_row_suppresses_and_bounces(
    esp, client, reader, django_capture_on_commit_callbacks
):
    for minutes in (50, 40, 30):
        post_processed(
            esp,
            client,
            esp.soft_bounce(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    third = DeliveryEvent.objects.order_by("occurred_at").last()
    entry = SuppressedAddress.objects.get()
    assert (entry.reason, entry.source_event) == (Reason.SOFT_BOUNCES, third)
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.BOUNCED)
    assert (logged.actor, logged.detail["delivery_event_id"]) == (f"esp:{esp.name}", third.pk)


@ALL_ESPS
def test_a_delivery_between_soft_bounces_resets_the_count(
    esp, client, reader, django_capture_on_commit_callbacks
):
    timeline = [
        (esp.soft_bounce, 60),
        (esp.soft_bounce, 50),
        (esp.delivered, 45),
        (esp.soft_bounce, 40),
        (esp.soft_bounce, 30),
    ]
    for build, minutes in timeline:
        post_processed(
            esp,
            client,
            build(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    assert DeliveryEvent.objects.filter(kind=Kind.SOFT_BOUNCE).count() == 4
    assert DeliveryEvent.objects.filter(kind=Kind.DELIVERED).count() == 1
    assert not SuppressedAddress.objects.exists()
    assert reader.statuses()["active"] == Status.ACTIVE

    # The third since the delivery is the one that counts.
    post_processed(
        esp,
        client,
        esp.soft_bounce(reader.email, reader.metadata, minutes_ago(20)),
        django_capture_on_commit_callbacks,
    )

    assert SuppressedAddress.objects.get().reason == Reason.SOFT_BOUNCES
    assert reader.statuses()["active"] == Status.BOUNCED


# --- replays ------------------------------------------------------------------------------


@ALL_ESPS
def test_a_replayed_hard_bounce_is_stored_and_acted_on_once(
    esp, client, reader, django_capture_on_commit_callbacks
):
    payload = esp.hard_bounce(reader.email, reader.metadata, minutes_ago(5))

    post_processed(esp, client, payload, django_capture_on_commit_callbacks)
    post_processed(esp, client, payload, django_capture_on_commit_callbacks)

    assert DeliveryEvent.objects.count() == 1
    assert len(log_of(reader.active, SubscriptionEvent.Kind.BOUNCED)) == 1
    assert len(log_of(reader.pending, SubscriptionEvent.Kind.BOUNCED)) == 1
    assert SuppressedAddress.objects.count() == 1


@pytest.mark.parametrize(
    ("event", "kind"),
    [("delivered", Kind.DELIVERED), ("unsubscribed", Kind.UNSUBSCRIBED)],
)
def test_a_replayed_postmark_event_without_an_id_is_stored_once_under_a_derived_id(
    event, kind, client, reader, django_capture_on_commit_callbacks
):
    build = getattr(POSTMARK, event)
    payload = build(reader.email, reader.metadata, minutes_ago(5))
    assert "ID" not in payload

    post_processed(POSTMARK, client, payload, django_capture_on_commit_callbacks)
    post_processed(POSTMARK, client, payload, django_capture_on_commit_callbacks)

    stored = DeliveryEvent.objects.get()
    assert stored.kind == kind
    assert stored.event_id.startswith("derived:")
    assert len(log_of(reader.active, SubscriptionEvent.Kind.UNSUBSCRIBED)) == (
        1 if kind == Kind.UNSUBSCRIBED else 0
    )

    # A different event of the same kind is not mistaken for the replay.
    post_processed(
        POSTMARK,
        client,
        build(reader.email, reader.metadata, minutes_ago(1)),
        django_capture_on_commit_callbacks,
    )
    assert DeliveryEvent.objects.count() == 2


# --- webhook secret rotation -------------------------------------------------------------


@ALL_ESPS
@pytest.mark.parametrize(
    ("credentials", "accepted"),
    [("hook:old", True), ("hook:new", True), ("hook:s3cret", False), ("hook:older", False)],
)
def test_while_rotating_both_webhook_secrets_work_and_no_other(
    esp, credentials, accepted, client, reader, settings, django_capture_on_commit_callbacks
):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ["hook:old", "hook:new"]}

    with django_capture_on_commit_callbacks(execute=True):
        response = esp.post(
            client,
            esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)),
            auth=credentials,
        )

    assert response.status_code == (200 if accepted else 400)
    assert DeliveryEvent.objects.count() == (1 if accepted else 0)
    assert SuppressedAddress.objects.count() == (1 if accepted else 0)
    assert reader.statuses()["active"] == (Status.BOUNCED if accepted else Status.ACTIVE)


# --- the request itself only records -----------------------------------------------------


@ALL_ESPS
def test_the_webhook_request_only_stores_the_event_and_queues_its_processing(
    esp, client, reader, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = esp.post(client, esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)))

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.processed_at is None
    assert reader.statuses()["active"] == Status.ACTIVE
    assert not SuppressedAddress.objects.exists()
    assert not SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.BOUNCED).exists()
    (enqueue,) = callbacks
    assert isinstance(enqueue, partial)
    assert (enqueue.func, enqueue.args) == (deliverability.enqueue, (event.pk,))

    enqueue()  # what the commit would have run

    event.refresh_from_db()
    assert event.processed_at is not None
    assert reader.statuses()["active"] == Status.BOUNCED


# --- addresses we don't know, events we don't act on, bad bodies --------------------------


@ALL_ESPS
def test_a_hard_bounce_for_an_unknown_address_still_suppresses_it(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.hard_bounce("Stranger@Example.NET", {}, minutes_ago(1)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.recipient, event.processed_at is not None) == ("Stranger@example.net", True)
    assert (event.outbound_email_id, event.subscription_ids) == (None, [])
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason) == ("Stranger@example.net", Reason.HARD_BOUNCE)
    assert not Subscriber.objects.filter(email__iexact="stranger@example.net").exists()
    assert reader.statuses()["active"] == Status.ACTIVE


@pytest.mark.parametrize(
    ("esp", "event"),
    [
        (POSTMARK, "opened"),
        (POSTMARK, "clicked"),
        (POSTMARK, "resubscribed"),
        (MAILGUN, "opened"),
        (MAILGUN, "clicked"),
        (SES, "opened"),
        (SES, "clicked"),
    ],
    ids=lambda value: value.name if isinstance(value, ESP) else value,
)
def test_events_that_change_nothing_for_us_store_nothing(
    esp, event, client, reader, django_capture_on_commit_callbacks
):
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = esp.post(
            client, getattr(esp, event)(reader.email, reader.metadata, minutes_ago(1))
        )

    assert response.status_code == 200
    assert callbacks == []
    assert world() == before


@pytest.mark.parametrize(
    "esp",
    [POSTMARK, MAILGUN, SES],
    ids=lambda e: e.name,
)
def test_a_malformed_body_answers_400_and_stores_nothing(esp, reader):
    client = Client(raise_request_exception=False)
    before = world()

    response = client.post(
        esp.tracking_url,
        data=b'{"RecordType": "Bounce", "Email": "ann@example.org"',  # cut off
        content_type="text/plain" if esp is SES else "application/json",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        **basic_auth(WEBHOOK_SECRET),
    )

    assert world() == before
    assert response.status_code == 400


def test_event_ids_stay_stable_when_a_provider_retries_or_names_several_recipients():
    from anymail.signals import AnymailTrackingEvent

    from subscriptions.webhooks import stable_event_id

    def mailgun(token: str) -> AnymailTrackingEvent:
        return AnymailTrackingEvent(
            event_type="bounced",
            event_id=token,
            recipient="ann@example.org",
            esp_event={"event-data": {"id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": 1521243339.9}},
        )

    def ses(recipient: str) -> AnymailTrackingEvent:
        return AnymailTrackingEvent(event_type="bounced", event_id="sns-1", recipient=recipient)

    # A retried Mailgun webhook is signed with a new token but is the same event.
    assert stable_event_id(mailgun("token-1"), "Mailgun") == stable_event_id(
        mailgun("token-2"), "Mailgun"
    )
    # One SES notification naming two recipients is two events.
    assert stable_event_id(ses("a@example.org"), "Amazon SES") != stable_event_id(
        ses("b@example.org"), "Amazon SES"
    )
    assert stable_event_id(ses("a@example.org"), "Postmark") == "sns-1"
