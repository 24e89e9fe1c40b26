"""Resend's webhooks (resend.com/docs/webhooks/event-types), delivered by Svix: the
event id is the `svix-id` header; metadata comes back in the `X-Metadata` header anymail's
Resend backend adds, and a bounce carries SES's bounce type."""

import json
import secrets
import time
import uuid
from datetime import datetime, timedelta

from django.test import Client

from tests.esp_payloads import ESP, SENDER, WEBHOOK_SECRET, basic_auth, iso_z


class Resend(ESP):
    name = "Resend"
    tracking_url = "/anymail/resend/tracking/"

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        return client.post(
            self.tracking_url,
            data=json.dumps(payload),
            content_type="application/json",
            HTTP_SVIX_ID=f"msg_{secrets.token_urlsafe(20)}",
            HTTP_SVIX_TIMESTAMP=str(int(time.time())),
            **basic_auth(auth),
        )

    def _bounce(self, recipient: str, metadata: dict, at: datetime, bounce: dict) -> dict:
        return {
            "type": "email.bounced",
            "created_at": iso_z(at),
            "data": {
                "created_at": iso_z(at - timedelta(seconds=3)),
                "email_id": str(uuid.uuid4()),
                "from": SENDER,
                "to": [recipient],
                "subject": "Welcome to Explaining Ukraine",
                "headers": [
                    {"name": "X-Metadata", "value": json.dumps(metadata)},
                    {"name": "X-Tags", "value": json.dumps([metadata.get("message_type", "")])},
                ],
                "bounce": bounce,
            },
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient,
            metadata,
            at,
            {
                "message": "The recipient's email address doesn't exist.",
                "subType": "General",
                "type": "Permanent",
            },
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient,
            metadata,
            at,
            {
                "message": "The recipient's email provider sent a bounce message because "
                "the recipient's inbox was full.",
                "subType": "MailboxFull",
                "type": "Transient",
            },
        )

    def undetermined_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient,
            metadata,
            at,
            {
                "message": "The recipient's email provider sent a general bounce message.",
                "subType": "Undetermined",
                "type": "Undetermined",
            },
        )

    def hard_bounce_without_a_type(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # How Resend's payloads looked before they named the bounce type.
        return self._bounce(
            recipient,
            metadata,
            at,
            {
                "message": "The recipient's email provider sent a hard bounce message, but "
                "didn't specify the reason for the hard bounce."
            },
        )
