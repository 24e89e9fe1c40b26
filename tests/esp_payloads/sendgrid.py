"""SendGrid's Event Webhook (twilio.com/docs/sendgrid/for-developers/tracking-events/event):
a JSON list of flat events; our metadata (custom args) comes back merged into the event,
and a bounce's `type` is "bounce" or "blocked"."""

import secrets
from datetime import datetime

from tests.esp_payloads import ESP


class SendGrid(ESP):
    name = "SendGrid"
    tracking_url = "/anymail/sendgrid/tracking/"

    def post(self, client, payload: dict, **kwargs):
        return super().post(client, [payload], **kwargs)

    def _bounce(
        self,
        recipient: str,
        metadata: dict,
        at: datetime,
        *,
        bounce_type: str,
        status: str,
        reason: str,
        classification: str,
    ) -> dict:
        return {
            "email": recipient,
            "event": "bounce",
            "type": bounce_type,
            "bounce_classification": classification,
            "reason": reason,
            "status": status,
            "sg_event_id": secrets.token_urlsafe(36),
            "sg_message_id": f"{secrets.token_urlsafe(16)}.filterdrecv-1-2-3",
            "smtp-id": f"<{secrets.token_hex(8)}@news.example.org>",
            "timestamp": int(at.timestamp()),
            "tls": 1,
            "category": [metadata.get("message_type", "")],
            **metadata,
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_type="bounce",
            status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
            classification="Invalid Address",
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # A block: the receiver refused this message for now, for our reputation.
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_type="blocked",
            status="5.7.1",
            reason="550 5.7.1 Our system has detected an unusual rate of unsolicited mail.",
            classification="Reputation",
        )
