"""Stripe webhook payloads in the shape Stripe sends them (API version 2024+), signed
the way Stripe signs them: `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of
"<t>.<body>" under the endpoint secret>`."""

import hashlib
import hmac
import itertools
import json
import time

from django.test import Client

SECRET = "whsec_test_0123456789abcdef"
WEBHOOK = "/webhooks/stripe/"
_ids = itertools.count(1)


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def post_event(client: Client, event: dict, **signing: object):
    body = json.dumps(event)
    return client.post(
        WEBHOOK,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, **signing),
    )


def event(event_type: str, obj: dict, *, created: int, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{next(_ids):06d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }


def subscription(
    sub_id: str,
    status: str = "active",
    *,
    amount: int = 500,
    currency: str = "eur",
    nickname: str = "Monthly supporter",
    start_date: int = 1_760_000_000,
    canceled_at: int | None = None,
    ended_at: int | None = None,
) -> dict:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": f"cus_{sub_id[4:]}",
        "status": status,
        "start_date": start_date,
        "canceled_at": canceled_at,
        "ended_at": ended_at,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id[4:]}",
                    "object": "subscription_item",
                    "price": {
                        "id": "price_monthly",
                        "object": "price",
                        "currency": currency,
                        "nickname": nickname,
                        "unit_amount": amount,
                        "recurring": {"interval": "month"},
                    },
                }
            ],
        },
    }


def checkout_session(
    sub_id: str | None,
    *,
    email: str = "ann@example.org",
    name: str = "Ann Reader",
    mode: str = "subscription",
    amount_total: int = 500,
    currency: str = "eur",
    payment_status: str = "paid",
    session_id: str | None = None,
) -> dict:
    """A completed Checkout Session. Stripe sends the same session again, under the same
    id, in `checkout.session.async_payment_succeeded` or `..._failed` when a delayed
    payment method (SEPA Direct Debit, say) settles."""
    return {
        "id": session_id or f"cs_test_{next(_ids):06d}",
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "payment_status": payment_status,
        "subscription": sub_id,
        "customer": "cus_test",
        "customer_details": {"email": email, "name": name},
        "amount_total": amount_total,
        "currency": currency,
    }
