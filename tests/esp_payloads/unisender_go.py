"""Unisender Go's status callbacks (godocs.unisender.ru/web-api-ref#callback-format):
signed by an MD5 of the body with the `auth` field set to the API key; metadata comes
back in `metadata`, and there is no event id."""

import hashlib
import json
import secrets
from datetime import UTC, datetime

from django.test import Client

from tests.esp_payloads import ESP, WEBHOOK_SECRET, basic_auth

UNISENDER_GO_API_KEY = "unisender-go-test-api-key"


class UnisenderGo(ESP):
    name = "Unisender Go"
    tracking_url = "/anymail/unisender_go/tracking/"

    def post(self, client: Client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
        body = json.dumps(
            {
                "auth": UNISENDER_GO_API_KEY,
                "events_by_user": [
                    {
                        "user_id": 5960000,
                        "project_id": "6118471",
                        "project_name": "Newsroom",
                        "events": [
                            {"event_name": "transactional_email_status", "event_data": payload}
                        ],
                    }
                ],
            }
        )
        signed = body.replace(UNISENDER_GO_API_KEY, hashlib.md5(body.encode()).hexdigest())  # noqa: S324 - Unisender Go's scheme
        return client.post(
            self.tracking_url, data=signed, content_type="application/json", **basic_auth(auth)
        )

    def _status(
        self, status: str, recipient: str, metadata: dict, at: datetime, delivery: str, answer: str
    ) -> dict:
        return {
            "job_id": f"1a{secrets.token_hex(6)}",
            "metadata": metadata,
            "email": recipient,
            "status": status,
            "event_time": at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "url": None,
            "delivery_info": {
                "delivery_status": delivery,
                "destination_response": answer,
                "user_agent": None,
                "ip": "192.0.2.44",
            },
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._status(
            "hard_bounced", recipient, metadata, at, "err_user_unknown", "550 5.1.1 No such user"
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._status(
            "soft_bounced", recipient, metadata, at, "err_will_retry", "451 4.7.1 Try again later"
        )
