"""A checkout paid by a delayed method (SEPA Direct Debit, say) makes a member only when
the money arrives: Stripe completes the checkout with `payment_status: "unpaid"`, and
later sends `checkout.session.async_payment_succeeded` or `..._failed` for the same
session. Until then nobody is counted, and no replay or order of arrival counts anyone
early or twice."""

import itertools
from decimal import Decimal

import pytest

from subscriptions.membership import milestones
from subscriptions.models import Member, MemberCount, MemberEvent, MembershipGoal, StripeEvent
from tests.stripe_payloads import SECRET, checkout_session, event, post_event, subscription

pytestmark = pytest.mark.django_db
T0 = 1_764_000_000
DAYS = 86_400


@pytest.fixture(autouse=True)
def _stripe(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    milestones.save_goal(MembershipGoal(target=20_000))


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Post a signed event as Stripe would, running what the commit hands on (the Redis
    copy of the count) as production does; returns the outcome the view answered."""

    def deliver(stripe_event: dict) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, stripe_event)
        assert response.status_code == 200
        return response.json()["status"]

    return deliver


def counts(client) -> tuple[int, int, int]:
    """The count row, what readers see (the Redis copy where there is one), and the
    active members in the database: all three must agree."""
    row = MemberCount.objects.get(pk=1).active
    shown = client.get("/api/v1/goal").json()["members"]
    return row, shown, Member.objects.filter(status=Member.Status.ACTIVE).count()


def session(payment_status: str, sub_id: str = "sub_1", **fields: object) -> dict:
    """The one Checkout Session of a reader's sign-up, as each event carries it."""
    return checkout_session(
        sub_id, payment_status=payment_status, session_id=f"cs_{sub_id}", **fields
    )


def completed_unpaid(at: int = T0, sub_id: str = "sub_1") -> dict:
    return event("checkout.session.completed", session("unpaid", sub_id), created=at)


def payment_succeeded(at: int = T0 + 3 * DAYS, sub_id: str = "sub_1") -> dict:
    return event("checkout.session.async_payment_succeeded", session("paid", sub_id), created=at)


def payment_failed(at: int = T0 + 3 * DAYS, sub_id: str = "sub_1") -> dict:
    return event("checkout.session.async_payment_failed", session("unpaid", sub_id), created=at)


def subscription_event(kind: str, status: str, at: int, sub_id: str = "sub_1") -> dict:
    return event(f"customer.subscription.{kind}", subscription(sub_id, status), created=at)


def transitions() -> list[tuple[str, str]]:
    return list(MemberEvent.objects.order_by("pk").values_list("from_status", "to_status"))


def test_an_unpaid_completed_checkout_is_recorded_but_makes_no_active_member(
    client, deliver
) -> None:
    outcome = deliver(
        event(
            "checkout.session.completed",
            session("unpaid", email="Ann@Example.ORG", amount_total=1250),
            created=T0,
        )
    )

    assert outcome == "recorded"
    member = Member.objects.get()
    assert (member.status, member.external_id) == ("past_due", "sub_1")
    assert (member.email, member.name) == ("Ann@example.org", "Ann Reader")
    assert (member.amount, member.currency) == (Decimal("12.50"), "EUR")
    assert StripeEvent.objects.get().type == "checkout.session.completed"
    assert counts(client) == (0, 0, 0)


def test_the_payment_succeeding_later_makes_the_member_active_and_counts_it_once(
    client, deliver
) -> None:
    unpaid, succeeded = completed_unpaid(), payment_succeeded()

    deliver(unpaid)
    assert counts(client) == (0, 0, 0)
    assert deliver(succeeded) == "applied"
    assert (deliver(succeeded), deliver(unpaid)) == ("duplicate", "duplicate")

    member = Member.objects.get()
    assert (member.status, member.email, member.ended_at) == ("active", "ann@example.org", None)
    assert counts(client) == (1, 1, 1)
    assert transitions() == [("", "past_due"), ("past_due", "active")]


def test_the_payment_failing_later_ends_it_without_ever_counting_it(client, deliver) -> None:
    unpaid, failed = completed_unpaid(), payment_failed()

    deliver(unpaid)
    assert counts(client) == (0, 0, 0)
    assert deliver(failed) == "applied"
    assert (deliver(failed), deliver(unpaid)) == ("duplicate", "duplicate")

    member = Member.objects.get()
    assert member.status == "cancelled"
    assert member.ended_at is not None
    assert counts(client) == (0, 0, 0)
    assert transitions() == [("", "past_due"), ("past_due", "cancelled")]


@pytest.mark.parametrize(
    ("payment_status", "ours"),
    [
        ("paid", "active"),
        # A free trial, or a coupon that covers the first invoice: Stripe calls the
        # subscription `trialing` or `active`, both active members here.
        ("no_payment_required", "active"),
        ("unpaid", "past_due"),
        ("something_new", "past_due"),
    ],
)
def test_a_completed_checkout_makes_an_active_member_only_when_nothing_is_left_to_pay(
    client, deliver, payment_status: str, ours: str
) -> None:
    deliver(event("checkout.session.completed", session(payment_status), created=T0))

    assert Member.objects.get().status == ours
    expected = 1 if ours == "active" else 0
    assert counts(client) == (expected, expected, expected)


def test_a_subscription_created_incomplete_is_counted_when_the_payment_arrives(
    client, deliver
) -> None:
    """The order Stripe sends a SEPA sign-up in: the subscription waits as incomplete,
    the checkout completes unpaid, and days later the payment succeeds and the
    subscription turns active."""
    deliver(subscription_event("created", "incomplete", T0))
    assert counts(client) == (0, 0, 0)
    deliver(completed_unpaid(T0))
    assert counts(client) == (0, 0, 0)
    deliver(payment_succeeded(T0 + 3 * DAYS))
    assert counts(client) == (1, 1, 1)
    deliver(subscription_event("updated", "active", T0 + 3 * DAYS))

    member = Member.objects.get()
    assert (member.status, member.email, member.tier) == (
        "active",
        "ann@example.org",
        "Monthly supporter",
    )
    assert counts(client) == (1, 1, 1)
    assert transitions() == [("", "past_due"), ("past_due", "active")]


def test_a_subscription_that_stripe_calls_active_counts_even_before_the_checkout_says_paid(
    client, deliver
) -> None:
    deliver(subscription_event("updated", "active", T0 + 3 * DAYS))
    assert deliver(completed_unpaid(T0)) == "recorded"

    assert (Member.objects.get().status, Member.objects.get().email) == (
        "active",
        "ann@example.org",
    )
    assert counts(client) == (1, 1, 1)


def test_a_failed_payment_arriving_first_leaves_the_member_ended_and_uncounted(
    client, deliver
) -> None:
    deliver(payment_failed(T0 + 3 * DAYS))
    deliver(completed_unpaid(T0))
    assert deliver(subscription_event("created", "incomplete", T0)) == "stale"

    member = Member.objects.get()
    assert (member.status, member.email) == ("cancelled", "ann@example.org")
    assert counts(client) == (0, 0, 0)
    assert transitions() == [("", "cancelled")]


def test_a_failed_payment_ends_a_membership_an_older_event_had_counted(client, deliver) -> None:
    deliver(subscription_event("created", "active", T0))
    assert counts(client) == (1, 1, 1)

    deliver(payment_failed(T0 + 3 * DAYS))

    assert Member.objects.get().status == "cancelled"
    assert counts(client) == (0, 0, 0)


def test_a_late_payment_success_does_not_revive_a_cancelled_subscription(client, deliver) -> None:
    deliver(completed_unpaid(T0))
    deliver(subscription_event("deleted", "canceled", T0 + DAYS))
    deliver(payment_succeeded(T0 + 3 * DAYS))

    assert Member.objects.get().status == "cancelled"
    assert counts(client) == (0, 0, 0)


def test_delayed_payment_events_of_a_one_off_donation_are_ignored(client, deliver) -> None:
    for kind in ("async_payment_succeeded", "async_payment_failed"):
        donation = checkout_session(None, mode="payment")
        assert deliver(event(f"checkout.session.{kind}", donation, created=T0)) == "ignored"

    assert not Member.objects.exists()
    assert not StripeEvent.objects.exists()


# --- every order of arrival ------------------------------------------------------------

PAID = [
    subscription_event("created", "incomplete", T0),
    completed_unpaid(T0),
    payment_succeeded(T0 + 3 * DAYS),
    subscription_event("updated", "active", T0 + 3 * DAYS + 1),
]
FAILED = [
    subscription_event("created", "incomplete", T0),
    completed_unpaid(T0),
    payment_failed(T0 + 3 * DAYS),
    subscription_event("updated", "incomplete_expired", T0 + 3 * DAYS + 1),
]
# The events of PAID that say the money arrived.
SAY_PAID = {2, 3}


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=str)
def test_in_any_order_a_sepa_sign_up_counts_once_and_only_after_the_payment(
    client, deliver, order: tuple[int, ...]
) -> None:
    counted = 0
    for index in order:
        deliver(PAID[index])
        counted = max(counted, int(index in SAY_PAID))
        assert counts(client) == (counted, counted, counted), f"after event {index}"

    member = Member.objects.get()
    assert (member.status, member.email, member.name) == (
        "active",
        "ann@example.org",
        "Ann Reader",
    )
    assert [to for _, to in transitions()].count("active") == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=str)
def test_in_any_order_a_failed_sepa_sign_up_is_never_counted_and_ends_cancelled(
    client, deliver, order: tuple[int, ...]
) -> None:
    for index in order:
        deliver(FAILED[index])
        assert counts(client) == (0, 0, 0), f"after event {index}"

    member = Member.objects.get()
    assert (member.status, member.email) == ("cancelled", "ann@example.org")
    assert member.ended_at is not None
