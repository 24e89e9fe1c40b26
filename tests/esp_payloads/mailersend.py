"""MailerSend's activity webhooks (developers.mailersend.com/api/v1/webhooks.html),
signed with an HMAC-SHA256 of the body in the `Signature` header; MailerSend echoes no
metadata, so events map back by address only."""

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from django.test import Client

from tests.esp_payloads import ESP, WEBHOOK_SECRET, basic_auth, iso_z

MAILERSEND_SIGNING_SECRET = "mailersend-test-secret"


def signature(body: bytes) -> str:
    """The `Signature` header: HMAC-SHA256 of the body under the signing secret."""
    return hmac.new(MAILERSEND_SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()


class MailerSend(ESP):
    name = "MailerSend"
    tracking_url = "/anymail/mailersend/tracking/"

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        # MailerSend escapes every "/" in its JSON; harmless, and it is what gets signed.
        body = json.dumps(payload).replace("/", "\\/").encode()
        return client.post(
            self.tracking_url,
            data=body,
            content_type="application/json",
            HTTP_SIGNATURE=signature(body),
            **basic_auth(auth),
        )

    def _bounce(self, activity: str, recipient: str, at: datetime, reason: str) -> dict:
        return {
            "type": f"activity.{activity}",
            "domain_id": "jy7zpl9xkdo45vx6",
            "created_at": iso_z(at),
            "webhook_id": "0p7kx4xw5qv49yjr",
            "url": "https://news.example.org/anymail/mailersend/tracking/",
            "data": {
                "object": "activity",
                "id": secrets.token_hex(12),
                "type": activity,
                "created_at": iso_z(at),
                "email": {
                    "object": "email",
                    "id": secrets.token_hex(12),
                    "created_at": iso_z(at - timedelta(seconds=4)),
                    "from": "hello@example.org",
                    "subject": "Welcome to Explaining Ukraine",
                    "status": "rejected",
                    "tags": None,
                    "message": {"object": "message", "id": secrets.token_hex(12)},
                    "recipient": {"object": "recipient", "email": recipient},
                },
                "morph": {"object": "recipient_bounce", "reason": reason},
                "template_id": "",
            },
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce("hard_bounced", recipient, at, "Host or domain name not found")

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce("soft_bounced", recipient, at, "Mailbox full")
