"""Mandrill's message-event webhooks (mailchimp.com/developer/transactional/docs/webhooks):
a form post whose `mandrill_events` field is a JSON list, signed with the webhook key
over the URL (basic auth included) and the sorted fields; metadata comes back in
`msg.metadata`, and there is no event id."""

import hashlib
import hmac
import json
import secrets
from base64 import b64encode
from datetime import datetime

from django.http import HttpResponse
from django.test import Client

from tests.esp_payloads import ESP, WEBHOOK_SECRET, basic_auth

MANDRILL_WEBHOOK_KEY = "mandrill-test-key"


def post_events(
    client: Client, url: str, events: str, *, auth: str | None = WEBHOOK_SECRET
) -> HttpResponse:
    """Post a `mandrill_events` field to `url` (the test client's host), signed."""
    credentials = f"{auth}@" if auth else ""
    signed = f"http://{credentials}testserver{url}mandrill_events{events}"
    signature = b64encode(
        hmac.new(MANDRILL_WEBHOOK_KEY.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()
    return client.post(
        url,
        data={"mandrill_events": events},
        HTTP_X_MANDRILL_SIGNATURE=signature,
        **basic_auth(auth),
    )


class Mandrill(ESP):
    name = "Mandrill"
    tracking_url = "/anymail/mandrill/"

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        return post_events(client, self.tracking_url, json.dumps([payload]), auth=auth)

    def _bounce(
        self,
        event: str,
        recipient: str,
        metadata: dict,
        at: datetime,
        description: str,
        diag: str,
        bgtools_code: int,
    ) -> dict:
        message_id = secrets.token_hex(16)
        return {
            "event": event,
            "_id": message_id,
            "ts": int(at.timestamp()),
            "msg": {
                "ts": int(at.timestamp()) - 5,
                "_id": message_id,
                "state": "bounced" if event == "hard_bounce" else "soft-bounced",
                "subject": "Welcome to Explaining Ukraine",
                "email": recipient,
                "sender": "hello@example.org",
                "tags": [metadata.get("message_type", "")],
                "metadata": metadata,
                "opens": [],
                "clicks": [],
                "smtp_events": [],
                "resends": [],
                "bounce_description": description,
                "bgtools_code": bgtools_code,
                "diag": diag,
                "template": None,
            },
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "hard_bounce",
            recipient,
            metadata,
            at,
            "bad_mailbox",
            "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            10,
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "soft_bounce",
            recipient,
            metadata,
            at,
            "mailbox_full",
            "smtp;552 5.2.2 The email account that you tried to reach is over quota.",
            22,
        )
