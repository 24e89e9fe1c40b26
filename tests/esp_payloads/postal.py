"""Postal's webhooks (docs.postalserver.io/developer/webhooks): one JSON event whose
`payload` carries the message and, for a delivery, Postal's status."""

import secrets
import uuid
from datetime import datetime

from tests.esp_payloads import ESP


class Postal(ESP):
    name = "Postal"
    tracking_url = "/anymail/postal/tracking/"

    def _delivery(
        self, recipient: str, metadata: dict, at: datetime, *, event: str, status: str, output: str
    ) -> dict:
        return {
            "event": event,
            "timestamp": at.timestamp(),
            "uuid": str(uuid.uuid4()),
            "payload": {
                "message": {
                    "id": secrets.randbelow(10**6),
                    "token": secrets.token_urlsafe(8),
                    "direction": "outgoing",
                    "message_id": f"{uuid.uuid4()}@news.example.org",
                    "to": recipient,
                    "from": "hello@example.org",
                    "subject": "Welcome to Explaining Ukraine",
                    "timestamp": at.timestamp() - 2,
                    "spam_status": "NotChecked",
                    "tag": metadata.get("message_type", ""),
                },
                "status": status,
                "details": f"{status} delivering to mx.example.org",
                "output": output,
                "sent_with_ssl": True,
                "timestamp": at.timestamp(),
                "time": 0.21,
            },
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._delivery(
            recipient,
            metadata,
            at,
            event="MessageDeliveryFailed",
            status="HardFail",
            output="550 5.1.1 The email account that you tried to reach does not exist.",
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._delivery(
            recipient,
            metadata,
            at,
            event="MessageDelayed",
            status="SoftFail",
            output="452 4.2.2 The email account that you tried to reach is over quota.",
        )
