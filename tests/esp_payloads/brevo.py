"""Brevo's transactional webhooks (developers.brevo.com/docs/transactional-webhooks):
one flat JSON event; metadata comes back as the JSON string in `X-Mailin-custom`, and
there is no event id."""

import json
import random
from datetime import datetime

from tests.esp_payloads import ESP


class Brevo(ESP):
    name = "Brevo"
    tracking_url = "/anymail/brevo/tracking/"

    def _event(self, event: str, recipient: str, metadata: dict, at: datetime, reason: str):
        timestamp = int(at.timestamp())
        return {
            "event": event,
            "email": recipient,
            "id": 9999999,  # the Brevo account, not the event
            "date": at.strftime("%Y-%m-%d %H:%M:%S"),
            "ts": timestamp,
            "ts_event": timestamp,
            "ts_epoch": timestamp * 1000,  # the one UTC field, in milliseconds
            "message-id": f"<2026{random.randrange(10**12):012d}.1@smtp-relay.mailin.fr>",
            "subject": "Welcome to Explaining Ukraine",
            "X-Mailin-custom": json.dumps(metadata),
            "tags": [metadata.get("message_type", "")],
            "sending_ip": "185.41.28.109",
            "reason": reason,
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "hard_bounce",
            recipient,
            metadata,
            at,
            " RecipientError: 550 5.5.0 Requested action not taken: mailbox unavailable.",
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "soft_bounce",
            recipient,
            metadata,
            at,
            "RecipientError: 452 4.2.2 The email account that you tried to reach is over quota.",
        )

    def invalid_email(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._event(
            "invalid_email", recipient, metadata, at, "The email address is not valid."
        )
