"""Members come from Stripe: signed webhook events make, keep and end memberships, and
no replayed, reordered, forged or unreadable event can count anyone twice."""

import json
import time
from decimal import Decimal

import pytest

from subscriptions.membership import milestones
from subscriptions.models import Member, MemberCount, MemberEvent, MembershipGoal, StripeEvent
from tests.stripe_payloads import (
    SECRET,
    WEBHOOK,
    checkout_session,
    event,
    post_event,
    sign,
    subscription,
)

pytestmark = pytest.mark.django_db
T0 = 1_764_000_000


@pytest.fixture(autouse=True)
def _stripe(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    milestones.save_goal(MembershipGoal(target=20_000))


def goal_members(client) -> int:
    return client.get("/api/v1/goal").json()["members"]


def active_count() -> int:
    return MemberCount.objects.get(pk=1).active


def test_a_completed_checkout_makes_an_active_member_with_the_readers_details(client) -> None:
    response = post_event(
        client,
        event(
            "checkout.session.completed",
            checkout_session("sub_1", email="Ann@Example.ORG", amount_total=1250),
            created=T0,
        ),
    )

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    member = Member.objects.get()
    assert (member.status, member.source, member.external_id) == ("active", "stripe", "sub_1")
    assert (member.email, member.name) == ("Ann@example.org", "Ann Reader")
    assert (member.amount, member.currency) == (Decimal("12.50"), "EUR")
    assert active_count() == goal_members(client) == 1


def test_a_created_subscription_counts_once_when_its_checkout_follows(client) -> None:
    post_event(client, event("customer.subscription.created", subscription("sub_1"), created=T0))
    post_event(
        client, event("checkout.session.completed", checkout_session("sub_1"), created=T0 + 1)
    )

    member = Member.objects.get()
    assert (member.status, member.email, member.tier) == (
        "active",
        "ann@example.org",
        "Monthly supporter",
    )
    assert active_count() == goal_members(client) == 1
    assert list(MemberEvent.objects.values_list("from_status", "to_status")) == [("", "active")]


def test_a_replayed_event_changes_nothing_the_second_time(client) -> None:
    created = event("customer.subscription.created", subscription("sub_1"), created=T0)

    first = post_event(client, created)
    replay = post_event(client, created)

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json() == {"status": "duplicate"}
    assert StripeEvent.objects.count() == 1
    assert active_count() == goal_members(client) == 1


def test_a_cancel_arriving_before_its_create_leaves_the_member_cancelled(client) -> None:
    deleted = event(
        "customer.subscription.deleted",
        subscription("sub_1", "canceled", canceled_at=T0 + 60, ended_at=T0 + 60),
        created=T0 + 60,
    )
    created = event("customer.subscription.created", subscription("sub_1"), created=T0)

    post_event(client, deleted)
    late = post_event(client, created)

    assert late.status_code == 200
    member = Member.objects.get()
    assert member.status == "cancelled"
    assert member.ended_at is not None
    assert active_count() == goal_members(client) == 0


def test_a_cancelled_subscription_stays_cancelled_even_if_a_newer_event_says_active(
    client,
) -> None:
    post_event(client, event("customer.subscription.created", subscription("sub_1"), created=T0))
    post_event(
        client,
        event(
            "customer.subscription.deleted",
            subscription("sub_1", "canceled"),
            created=T0 + 10,
        ),
    )
    post_event(
        client, event("checkout.session.completed", checkout_session("sub_1"), created=T0 + 20)
    )

    assert Member.objects.get().status == "cancelled"
    assert active_count() == goal_members(client) == 0


def test_updates_follow_the_subscription_status_and_ignore_older_ones(client) -> None:
    post_event(client, event("customer.subscription.created", subscription("sub_1"), created=T0))
    post_event(
        client,
        event("customer.subscription.updated", subscription("sub_1", "past_due"), created=T0 + 20),
    )
    assert (Member.objects.get().status, active_count()) == ("past_due", 0)

    stale = post_event(
        client,
        event("customer.subscription.updated", subscription("sub_1", "active"), created=T0 + 10),
    )
    assert stale.json() == {"status": "stale"}
    assert (Member.objects.get().status, active_count()) == ("past_due", 0)

    post_event(
        client,
        event("customer.subscription.updated", subscription("sub_1", "active"), created=T0 + 30),
    )
    assert (Member.objects.get().status, active_count()) == ("active", 1)
    assert goal_members(client) == 1


@pytest.mark.parametrize(
    ("stripe_status", "ours"),
    [
        ("trialing", "active"),
        ("unpaid", "past_due"),
        ("incomplete", "past_due"),
        ("incomplete_expired", "cancelled"),
        ("something_new", "past_due"),
    ],
)
def test_stripe_statuses_map_to_ours(client, stripe_status: str, ours: str) -> None:
    post_event(
        client,
        event("customer.subscription.created", subscription("sub_1", stripe_status), created=T0),
    )

    assert Member.objects.get().status == ours
    assert active_count() == (1 if ours == "active" else 0)


def test_a_one_off_donation_checkout_is_not_a_membership(client) -> None:
    response = post_event(
        client,
        event("checkout.session.completed", checkout_session(None, mode="payment"), created=T0),
    )

    assert response.json() == {"status": "ignored"}
    assert not Member.objects.exists()
    assert not StripeEvent.objects.exists()


def test_amounts_in_zero_decimal_currencies_are_not_divided(client) -> None:
    post_event(
        client,
        event(
            "customer.subscription.created",
            subscription("sub_1", amount=500, currency="jpy"),
            created=T0,
        ),
    )

    assert (Member.objects.get().amount, Member.objects.get().currency) == (Decimal(500), "JPY")


def test_unknown_event_types_answer_200_and_store_nothing(client) -> None:
    response = post_event(client, event("invoice.paid", {"id": "in_1"}, created=T0))

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert not StripeEvent.objects.exists()


def assert_nothing_stored() -> None:
    assert not StripeEvent.objects.exists()
    assert not Member.objects.exists()
    assert active_count() == 0


@pytest.mark.parametrize(
    "signing",
    [
        {"secret": "whsec_someone_else"},
        {"timestamp": int(time.time()) - 301},  # older than Stripe's 5-minute tolerance
    ],
    ids=["wrong-secret", "too-old"],
)
def test_a_badly_signed_event_is_refused_and_stores_nothing(client, signing: dict) -> None:
    response = post_event(
        client, event("customer.subscription.created", subscription("sub_1"), created=T0), **signing
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": {"__all__": ["The Stripe-Signature header does not verify."]}
    }
    assert_nothing_stored()


def test_an_event_without_a_signature_or_with_a_tampered_body_is_refused(client) -> None:
    body = json.dumps(event("customer.subscription.created", subscription("sub_1"), created=T0))
    tampered = body.replace('"active"', '"trialing"')

    unsigned = client.post(WEBHOOK, data=body, content_type="application/json")
    forged = client.post(
        WEBHOOK, data=tampered, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )

    assert (unsigned.status_code, forged.status_code) == (400, 400)
    assert_nothing_stored()


def test_without_a_configured_secret_every_event_is_refused(client, settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = json.dumps(event("customer.subscription.created", subscription("sub_1"), created=T0))

    response = client.post(
        WEBHOOK,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, secret=""),
    )

    assert response.status_code == 400
    assert_nothing_stored()


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        json.dumps({"type": "customer.subscription.created", "id": "evt_1"}),
        json.dumps(event("customer.subscription.created", {"id": "sub_1"}, created=T0)),
        json.dumps(event("customer.subscription.updated", subscription("sub_1"), created="soon")),
        "[" * 5000 + "]" * 5000,
    ],
    ids=["not-json", "array", "no-data", "no-status", "bad-created", "deep"],
)
def test_a_signed_but_unreadable_event_is_a_400_and_stores_nothing(client, payload: str) -> None:
    response = client.post(
        WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )

    assert response.status_code == 400
    assert_nothing_stored()


def test_get_is_not_allowed(client) -> None:
    assert client.get(WEBHOOK).status_code == 405
