"""Admin actions on many people or subscriptions ("Select all" on a long list): up to
bulk_actions.INLINE_LIMIT are changed in the request, more go to the worker in batches
through the same services; a task queue that cannot be reached is reported to the
editor, nothing half-done, and running the action again finishes the job."""

import pytest
from celery.signals import task_postrun
from django.contrib.messages import get_messages
from django.urls import reverse

from newsroom.celery import app as celery_app
from subscriptions import tasks
from subscriptions.admin import bulk_actions
from subscriptions.models import OutboundEmail, Subscription, SubscriptionEvent
from tests.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
Status = Subscription.Status
ACTOR = "admin:admin"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")
SUBSCRIPTIONS = reverse("admin:subscriptions_subscription_changelist")


@pytest.fixture(autouse=True)
def _small_limits(monkeypatch):
    monkeypatch.setattr(bulk_actions, "INLINE_LIMIT", 3)
    monkeypatch.setattr(bulk_actions, "BATCH", 2)


@pytest.fixture
def batches_run():
    """The batches the tasks ran, as (task name, ids, actor, result)."""
    ran = []

    def record(sender, args, retval, **kwargs) -> None:
        ran.append((sender.name.rsplit(".", 1)[1], *args, retval))

    for task in (tasks.unsubscribe_subscriptions, tasks.resend_confirmation_emails):
        task_postrun.connect(record, sender=task, weak=False)
    yield ran
    for task in (tasks.unsubscribe_subscriptions, tasks.resend_confirmation_emails):
        task_postrun.disconnect(record, sender=task)


def select_all(client, changelist: str, action: str, **filters: str):
    """The action on every row of the (filtered) list, as "Select all" sends it."""
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return client.post(
        f"{changelist}?{query}" if query else changelist,
        {"action": action, "select_across": "1", "index": "0", "_selected_action": ["0"]},
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def statuses() -> dict[str, str]:
    return dict(Subscription.objects.values_list("subscriber__email", "status"))


def test_up_to_the_limit_the_request_itself_unsubscribes(admin_client, batches_run) -> None:
    for i in range(3):
        SubscriptionFactory(subscriber__email=f"reader{i}@example.org", status=Status.ACTIVE)

    response = select_all(admin_client, SUBSCRIBERS, "unsubscribe_from_all")

    assert response.status_code == 302
    assert set(statuses().values()) == {Status.UNSUBSCRIBED}
    assert batches_run == []
    assert messages_of(response) == ["Unsubscribed 3 subscription(s)."]


def test_over_the_limit_the_worker_unsubscribes_in_batches_through_the_service(
    admin_client, batches_run
) -> None:
    subscriptions = [
        SubscriptionFactory(subscriber__email=f"reader{i}@example.org", status=Status.ACTIVE)
        for i in range(5)
    ]
    bounced = SubscriptionFactory(subscriber__email="gone@example.org", status=Status.BOUNCED)

    response = select_all(admin_client, SUBSCRIBERS, "unsubscribe_from_all")

    assert response.status_code == 302
    ids = [s.pk for s in subscriptions]
    assert batches_run == [
        ("unsubscribe_subscriptions", ids[0:2], ACTOR, 2),
        ("unsubscribe_subscriptions", ids[2:4], ACTOR, 2),
        ("unsubscribe_subscriptions", ids[4:5], ACTOR, 1),
    ]
    assert statuses() == {
        **{f"reader{i}@example.org": Status.UNSUBSCRIBED for i in range(5)},
        "gone@example.org": Status.BOUNCED,
    }
    assert sorted(
        SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.UNSUBSCRIBED).values_list(
            "subscription_id", "actor", "detail"
        )
    ) == [(pk, ACTOR, {"via": "admin"}) for pk in ids]
    assert bounced.pk not in [pk for _, batch, _, _ in batches_run for pk in batch]
    assert messages_of(response) == [
        "Unsubscribing 5 subscription(s) in the background (3 batch(es) on the worker); "
        "the list shows the changes as they finish."
    ]


def test_the_subscription_lists_unsubscribe_takes_its_filters_to_the_worker(
    admin_client, batches_run
) -> None:
    chosen = SubscriptionFactory.create_batch(4, status=Status.ACTIVE, source="import")
    others = SubscriptionFactory.create_batch(2, status=Status.ACTIVE, source="form")

    response = select_all(admin_client, SUBSCRIPTIONS, "unsubscribe", source__exact="import")

    assert response.status_code == 302
    assert [pk for _, batch, _, _ in batches_run for pk in batch] == [s.pk for s in chosen]
    for subscription in chosen + others:
        subscription.refresh_from_db()
    assert {s.status for s in chosen} == {Status.UNSUBSCRIBED}
    assert {s.status for s in others} == {Status.ACTIVE}


def test_over_the_limit_the_worker_resends_confirmations_within_the_cap(
    admin_client, batches_run, settings
) -> None:
    settings.CONFIRMATION_EMAILS_PER_DAY = 1
    waiting = [
        SubscriptionFactory(subscriber__email=f"reader{i}@example.org", status=Status.PENDING)
        for i in range(4)
    ]
    # Two pending subscriptions, one email.
    SubscriptionFactory(subscriber=waiting[0].subscriber, status=Status.PENDING)
    SubscriptionFactory(subscriber__email="active@example.org", status=Status.ACTIVE)
    select_all(admin_client, SUBSCRIBERS, "resend_confirmation")  # the day's one email each
    assert OutboundEmail.objects.count() == 4
    late = SubscriptionFactory(subscriber__email="late@example.org", status=Status.PENDING)

    response = select_all(admin_client, SUBSCRIBERS, "resend_confirmation")

    assert OutboundEmail.objects.count() == 5
    # Six people, two a batch in id order: the four capped, the active one no work.
    assert [result for *_, result in batches_run[-3:]] == [[0, 2], [0, 2], [1, 0]]
    assert OutboundEmail.objects.filter(subscriber=late.subscriber).count() == 1
    assert messages_of(response)[-1].startswith(
        "Resending confirmation emails to 6 people in the background (3 batch(es)"
    )


def test_a_task_queue_that_cannot_be_reached_is_reported_and_nothing_changes(
    admin_client, settings
) -> None:
    for i in range(5):
        SubscriptionFactory(subscriber__email=f"reader{i}@example.org", status=Status.ACTIVE)
    broker = celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = CLOSED_PORT_REDIS
    try:
        response = select_all(admin_client, SUBSCRIBERS, "unsubscribe_from_all")
    finally:
        celery_app.conf.broker_url = broker
        celery_app.conf.task_always_eager = True

    assert response.status_code == 302
    assert set(statuses().values()) == {Status.ACTIVE}
    assert messages_of(response) == [
        "The task queue could not be reached: 5 subscription(s) were left as they were. "
        "Run the action again; it skips what is already done."
    ]

    again = select_all(admin_client, SUBSCRIBERS, "unsubscribe_from_all")

    assert set(statuses().values()) == {Status.UNSUBSCRIBED}
    assert messages_of(again)[-1].startswith("Unsubscribing 5 subscription(s)")


def test_a_batch_delivered_twice_changes_nothing_the_second_time() -> None:
    subscriptions = SubscriptionFactory.create_batch(2, status=Status.ACTIVE)
    ids = [s.pk for s in subscriptions]

    first = tasks.unsubscribe_subscriptions.apply(args=[ids, ACTOR]).get()
    second = tasks.unsubscribe_subscriptions.apply(args=[ids, ACTOR]).get()

    assert (first, second) == (2, 0)
    assert SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.UNSUBSCRIBED).count() == 2


def test_people_without_subscriptions_to_change_are_no_work(admin_client, batches_run) -> None:
    SubscriberFactory.create_batch(5)

    response = select_all(admin_client, SUBSCRIBERS, "unsubscribe_from_all")

    assert batches_run == []
    assert messages_of(response) == ["Unsubscribed 0 subscription(s)."]
