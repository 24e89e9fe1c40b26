"""Mailtrap's webhooks (docs.mailtrap.io/email-api-smtp/advanced/webhooks): `{"events":
[...]}`; metadata comes back in `custom_variables`, and a soft bounce is its own event."""

import secrets
import uuid
from datetime import datetime

from tests.esp_payloads import ESP


class Mailtrap(ESP):
    name = "Mailtrap"
    tracking_url = "/anymail/mailtrap/tracking/"

    def post(self, client, payload: dict, **kwargs):
        return super().post(client, {"events": [payload]}, **kwargs)

    def _bounce(
        self, event: str, recipient: str, metadata: dict, at: datetime, code: int, answer: str
    ) -> dict:
        return {
            "event": event,
            "message_id": str(uuid.uuid4()),
            "sending_stream": "transactional",
            "email": recipient,
            "timestamp": int(at.timestamp()),
            "event_id": str(uuid.uuid4()),
            "category": metadata.get("message_type", ""),
            "custom_variables": metadata,
            "response": answer,
            "response_code": code,
            "bounce_category": "unknown_user" if code >= 500 else "mailbox_full",
            "sending_domain_name": "news.example.org",
            "ip": f"192.0.2.{secrets.randbelow(250)}",
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "bounce", recipient, metadata, at, 550, "550 5.1.1 User unknown in virtual table"
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "soft bounce", recipient, metadata, at, 452, "452 4.2.2 Mailbox full, try later"
        )
