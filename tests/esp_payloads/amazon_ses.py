"""Amazon SES event publishing through SNS: a Notification whose Message is the SES
event. anymail's SES webhook reads metadata from the `X-Metadata` header its backend
adds (in `mail.headers`), not from `mail.tags`."""

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta

from django.test import Client

from tests.esp_payloads import ESP, SENDER, WEBHOOK_SECRET, basic_auth, iso_z


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

    def rejected(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # SES accepted the message, found a virus in it and did not send it.
        return self._notification(
            {
                "eventType": "Reject",
                "mail": self._mail(recipient, metadata, at),
                "reject": {"reason": "Bad content"},
            },
            at,
        )

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

    def delivery_delay(
        self,
        recipient: str,
        metadata: dict,
        at: datetime,
        *,
        delay_type: str = "MailboxFull",
        also_to: tuple[str, ...] = (),
    ) -> dict:
        """SES still retrying: the receiving server would not take the message yet. Any
        `also_to` addresses were destinations of the message but not delayed."""
        mail = self._mail(recipient, metadata, at)
        mail["destination"] = [recipient, *also_to]
        return self._notification(
            {
                "eventType": "DeliveryDelay",
                "mail": mail,
                "deliveryDelay": {
                    "timestamp": iso_z(at),
                    "delayType": delay_type,
                    "expirationTime": iso_z(at + timedelta(hours=8)),
                    "delayedRecipients": [
                        {
                            "emailAddress": recipient,
                            "status": "4.2.2",
                            "diagnosticCode": "smtp; 452 4.2.2 The email account that you "
                            "tried to reach is over quota.",
                        }
                    ],
                    "reportingMTA": "a1-23.smtp-out.eu-west-1.amazonses.com",
                },
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
