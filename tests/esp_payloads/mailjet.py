"""Mailjet's event API (dev.mailjet.com/email/guides/webhooks): a JSON list of flat
events; metadata comes back as the JSON string in `Payload`, a bounce says
`hard_bounce`, and there is no event id."""

import json
import secrets
from datetime import datetime

from tests.esp_payloads import ESP


class Mailjet(ESP):
    name = "Mailjet"
    tracking_url = "/anymail/mailjet/tracking/"

    def post(self, client, payload: dict, **kwargs):
        return super().post(client, [payload], **kwargs)

    def _bounce(
        self, recipient: str, metadata: dict, at: datetime, *, hard: bool, error: str, about: str
    ) -> dict:
        return {
            "event": "bounce",
            "time": int(at.timestamp()),
            "MessageID": secrets.randbelow(10**17),
            "email": recipient,
            "mj_campaign_id": 0,
            "mj_contact_id": secrets.randbelow(10**10),
            "customcampaign": metadata.get("message_type", ""),
            "CustomID": "",
            "Payload": json.dumps(metadata),
            "blocked": False,
            "hard_bounce": hard,
            "error_related_to": about,
            "error": error,
            "comment": "",
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient, metadata, at, hard=True, error="user unknown", about="recipient"
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            recipient, metadata, at, hard=False, error="quota exceeded", about="recipient"
        )
