"""What the ESPs post to anymail's tracking webhooks, one module per provider.

Payloads follow each provider's documented examples, with our metadata echoed back the
way each ESP does it, so the events map back to our rows as they would in production.
"""

import base64
import json
from datetime import UTC, datetime

from django.test import Client

WEBHOOK_SECRET = "hook:s3cret"
MAILGUN_SIGNING_KEY = "mailgun-test-key"
SENDER = "The Kyiv Ledger <hello@example.org>"


def basic_auth(credentials: str | None) -> dict[str, str]:
    if credentials is None:
        return {}
    token = base64.b64encode(credentials.encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def iso_z(at: datetime, *, digits: int = 3) -> str:
    """ISO 8601 in UTC with a Z, as the providers write it."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[: len(stamp) - 6 + digits] + "Z"


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
