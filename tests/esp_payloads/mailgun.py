"""Mailgun's signed JSON webhooks (event-data plus a signature block): metadata comes
back in `user-variables`."""

import hashlib
import hmac
import secrets
from datetime import datetime
from functools import partial

from django.utils import timezone

from tests.esp_payloads import ESP, MAILGUN_SIGNING_KEY, SENDER


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

    def rejected(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # Mailgun refused to send at all; the address is only in the message's To header.
        payload = self._event(
            "rejected",
            recipient,
            metadata,
            at,
            log_level="warn",
            reject={"reason": "is on the suppression list", "description": ""},
        )
        for field in ("recipient", "recipient-domain", "envelope"):
            del payload["event-data"][field]
        return payload

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
