"""SparkPost's event webhooks (developers.sparkpost.com/api/webhooks): a JSON list of
`{"msys": {"<class>_event": {...}}}`; metadata comes back in `rcpt_meta`, and a bounce
carries SparkPost's `bounce_class`."""

import secrets
from datetime import datetime

from tests.esp_payloads import ESP


class SparkPost(ESP):
    name = "SparkPost"
    tracking_url = "/anymail/sparkpost/tracking/"

    def post(self, client, payload: dict, **kwargs):
        return super().post(client, [payload], **kwargs)

    def _bounce(
        self,
        recipient: str,
        metadata: dict,
        at: datetime,
        *,
        bounce_class: str,
        reason: str,
        event_type: str = "bounce",
    ) -> dict:
        return {
            "msys": {
                "message_event": {
                    "type": event_type,
                    "bounce_class": bounce_class,
                    "campaign_id": metadata.get("message_type", ""),
                    "customer_id": "1",
                    "error_code": reason[:3],
                    "event_id": str(secrets.randbelow(10**17)),
                    "friendly_from": "hello@example.org",
                    "ip_pool": "default",
                    "message_id": secrets.token_hex(10),
                    "msg_from": "bounces@mail.news.example.org",
                    "raw_rcpt_to": recipient,
                    "raw_reason": reason,
                    "rcpt_meta": metadata,
                    "rcpt_tags": [],
                    "rcpt_to": recipient.lower(),
                    "reason": reason,
                    "routing_domain": recipient.rpartition("@")[2],
                    "sending_ip": "192.0.2.10",
                    "subject": "Welcome to Explaining Ukraine",
                    "timestamp": str(int(at.timestamp())),
                    "transmission_id": str(secrets.randbelow(10**17)),
                }
            },
            "cust": {"id": "1"},
        }

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # 10, Invalid Recipient (category Hard).
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_class="10",
            reason="550 5.1.1 <...>: Recipient address rejected: User unknown",
        )

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # 22, Mailbox Full (category Soft): SparkPost gave up after retrying.
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_class="22",
            reason="552 5.2.2 The email account that you tried to reach is over quota.",
        )

    def spam_block(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # 51, Spam Block (category Block): about our reputation, not the address.
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_class="51",
            reason="554 5.7.1 Service unavailable; client host blocked using Spamhaus",
        )

    def admin_failure(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # 25, Admin Failure (category Admin): SparkPost's own suppression list.
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_class="25",
            reason="554 5.7.1 recipient address suppressed due to customer policy",
        )

    def out_of_band_hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # A bounce message that arrived after the receiver had accepted the message.
        return self._bounce(
            recipient,
            metadata,
            at,
            bounce_class="10",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
            event_type="out_of_band",
        )
