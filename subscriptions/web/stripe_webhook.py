"""`POST /webhooks/stripe/`: the payment platform tells us who became, stayed or stopped
being a member.

The signature is checked with the official `stripe` library against
STRIPE_WEBHOOK_SECRET before anything is read; a bad one is a 400 and nothing is
stored. Each event we act on is normalised here into one `PaymentChange` and applied
by `members.apply_payment_change`, which makes replays and reordering harmless. A
checkout paid by a delayed method completes unpaid and counts no one until
`checkout.session.async_payment_succeeded` (or the subscription turning active) says the
money arrived; `checkout.session.async_payment_failed` ends it. Event types we do not
act on answer 200 (so Stripe stops retrying) and are ignored.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from subscriptions.membership import members
from subscriptions.membership.members import PaymentChange
from subscriptions.models import Member
from subscriptions.signup.addresses import normalize_email

logger = logging.getLogger(__name__)
# How old a signed event may be: Stripe's own default tolerance against replays.
TOLERANCE_SECONDS = 300
Status = Member.Status

# Stripe's subscription statuses, in ours. `incomplete` (the first payment has not
# gone through) and `paused` are not active members yet, so they count as past due.
SUBSCRIPTION_STATUS = {
    "active": Status.ACTIVE,
    "trialing": Status.ACTIVE,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,
    "incomplete": Status.PAST_DUE,
    "paused": Status.PAST_DUE,
    "canceled": Status.CANCELLED,
    "incomplete_expired": Status.CANCELLED,
}


class MalformedEvent(Exception):
    """A correctly signed event that lacks what its type promises."""


# Stripe's own webhooks carry no cookies and no CSRF token; the signature is the
# authorisation.
@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    payload = request.body
    if not settings.STRIPE_WEBHOOK_SECRET:
        # An empty secret would let anyone sign; refuse everything until one is set.
        logger.error("stripe webhook: STRIPE_WEBHOOK_SECRET is not set; event refused")
        return _error("This endpoint is not configured.")
    try:
        stripe.WebhookSignature.verify_header(
            payload,
            request.headers.get("Stripe-Signature"),
            settings.STRIPE_WEBHOOK_SECRET,
            TOLERANCE_SECONDS,
        )
    except stripe.SignatureVerificationError:
        return _error("The Stripe-Signature header does not verify.")
    try:
        event = json.loads(payload)
        change = to_payment_change(event)
    except (ValueError, RecursionError, MalformedEvent) as exc:
        logger.warning("stripe webhook: a signed event we cannot read: %s", exc)
        return _error("The event is not a Stripe event we can read.")
    if change is None:
        return JsonResponse({"status": "ignored"})
    return JsonResponse({"status": members.apply_payment_change(change)})


def _error(message: str) -> JsonResponse:
    return JsonResponse({"errors": {"__all__": [message]}}, status=400)


def to_payment_change(event: object) -> PaymentChange | None:
    """The change an event asks for, None for events we do not act on, or
    `MalformedEvent`."""
    if not isinstance(event, dict):
        raise MalformedEvent("not an object")
    handler = _HANDLERS.get(str(event.get("type")))
    if handler is None:
        return None
    try:
        obj = event["data"]["object"]
        common = {
            "event_id": str(event["id"]),
            "event_type": str(event["type"]),
            "occurred_at": _timestamp(event["created"]),
        }
        return handler(obj, common)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MalformedEvent(f"{event.get('type')}: {type(exc).__name__}") from exc


# Checkout's `payment_status`, and whether it means the reader has paid what membership
# asks now. Stripe's Checkout guide ("Fulfill orders") fulfils every completed session
# that is not `unpaid`: `no_payment_required` is a session whose first payment is due
# later (a free trial) or covered (a 100% coupon), and its subscription is `trialing`
# or `active`, which SUBSCRIPTION_STATUS already counts as active; counting it here
# too keeps the two events in agreement. `unpaid` (a delayed method such as SEPA
# Direct Debit, whose money arrives days later) and any value Stripe may add are not.
_NOTHING_LEFT_TO_PAY = {"paid", "no_payment_required"}


def _checkout_session(session: dict, common: dict) -> PaymentChange | None:
    """`checkout.session.completed` and `...async_payment_succeeded`: an active member
    once the session is paid; before that (`unpaid`) the member and the reader's details
    are recorded with no status claimed, so the member waits, uncounted, for the
    payment's own event or the subscription's."""
    change = _from_session(session, common)
    if change is None or session.get("payment_status") not in _NOTHING_LEFT_TO_PAY:
        return change
    return replace(change, status=Status.ACTIVE)


def _checkout_payment_failed(session: dict, common: dict) -> PaymentChange | None:
    """`checkout.session.async_payment_failed`: the first payment of a delayed method
    was refused. Stripe's guide has the merchant ask the reader for a new order (a new
    checkout, so a new subscription id), and a subscription whose first payment is not
    made good ends as `incomplete_expired`, a status Stripe calls terminal: this
    membership is over, and stays cancelled like any other."""
    change = _from_session(session, common)
    return None if change is None else replace(change, status=Status.CANCELLED)


def _from_session(session: dict, common: dict) -> PaymentChange | None:
    """The reader's details a Checkout Session carries, claiming no status yet."""
    # One-off donations (mode "payment") are not memberships.
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return None
    details = session.get("customer_details") or {}
    return PaymentChange(
        **common,
        external_id=_subscription_id(session["subscription"]),
        email=_email(details.get("email") or session.get("customer_email")),
        name=str(details.get("name") or "")[:200],
        amount=_money(session.get("amount_total"), session.get("currency")),
        currency=str(session.get("currency") or "")[:3],
    )


def _subscription_changed(subscription: dict, common: dict) -> PaymentChange:
    price = _first_price(subscription)
    ended = subscription.get("ended_at") or subscription.get("canceled_at")
    return PaymentChange(
        **common,
        external_id=str(subscription["id"]),
        status=SUBSCRIPTION_STATUS.get(subscription["status"], Status.PAST_DUE),
        tier=str(price.get("nickname") or price.get("lookup_key") or "")[:100],
        amount=_money(price.get("unit_amount"), price.get("currency")),
        currency=str(price.get("currency") or "")[:3],
        started_at=_timestamp(subscription["start_date"])
        if subscription.get("start_date")
        else None,
        ended_at=_timestamp(ended) if ended else None,
    )


def _subscription_deleted(subscription: dict, common: dict) -> PaymentChange:
    return replace(_subscription_changed(subscription, common), status=Status.CANCELLED)


_HANDLERS: dict[str, Callable[[dict, dict], PaymentChange | None]] = {
    "checkout.session.completed": _checkout_session,
    "checkout.session.async_payment_succeeded": _checkout_session,
    "checkout.session.async_payment_failed": _checkout_payment_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
}


def _subscription_id(value: object) -> str:
    # Expanded objects carry the id inside.
    return str(value["id"] if isinstance(value, dict) else value)


def _first_price(subscription: dict) -> dict:
    items = (subscription.get("items") or {}).get("data") or []
    return (items[0].get("price") or {}) if items else {}


def _timestamp(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


# Stripe gives amounts in the currency's smallest unit: cents, except for these.
_ZERO_DECIMAL_CURRENCIES = {
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
    "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
}  # fmt: skip


def _money(smallest_units: Any, currency: object) -> Decimal | None:
    if smallest_units is None:
        return None
    amount = Decimal(int(smallest_units))
    if str(currency).lower() not in _ZERO_DECIMAL_CURRENCIES:
        amount /= 100
    # Member.amount holds ten digits; anything larger is not a membership fee.
    return amount if 0 <= amount < 10**8 else None


def _email(raw: object) -> str:
    try:
        return normalize_email(raw)
    except ValidationError:
        return ""
