"""The ESPs tell us about bounces, complaints and unsubscribes through anymail's
webhooks. Only authenticated posts count; each event is stored once and acted on in a
task; an address that hard-bounces, complains or soft-bounces too often gets no more
mail, and an unsubscribe at the ESP ends just the subscription the email was for.

The payloads (tests/esp_payloads/) follow each provider's documented examples, with our
metadata echoed back the way each ESP does it.
"""

from datetime import timedelta
from functools import partial

import pytest
from anymail.signals import AnymailTrackingEvent
from django.test import Client
from django.utils import timezone

from subscriptions import tasks
from subscriptions.deliverability import delivery_events
from subscriptions.deliverability.esp_rules import for_esp
from subscriptions.models import (
    DeliveryEvent,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from tests.esp_payloads import ESP, MAILGUN_SIGNING_KEY, WEBHOOK_SECRET, basic_auth
from tests.esp_payloads.amazon_ses import AmazonSES
from tests.esp_payloads.mailgun import Mailgun
from tests.esp_payloads.postmark import Postmark
from tests.webhook_scene import Reader, log_of, make_reader, minutes_ago, post_processed, world

pytestmark = pytest.mark.django_db

Status = Subscription.Status
Kind = DeliveryEvent.Kind
Reason = SuppressedAddress.Reason

POSTMARK, MAILGUN, SES = Postmark(), Mailgun(), AmazonSES()
ALL_ESPS = pytest.mark.parametrize("esp", [POSTMARK, MAILGUN, SES], ids=lambda e: e.name)


@pytest.fixture(autouse=True)
def _anymail_settings(settings):
    # The providers these tests post to (conftest sends mail with anymail's test backend).
    settings.ESP_WEBHOOKS = ["postmark", "mailgun", "amazon_ses"]
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.SOFT_BOUNCE_WINDOW_DAYS = 30


@pytest.fixture
def reader() -> Reader:
    """Ann: active in one newsletter (and sent its welcome email), pending in a second,
    unsubscribed from a third."""
    return make_reader()


# --- hard bounces and authentication -----------------------------------------------------


@ALL_ESPS
def test_an_authenticated_hard_bounce_bounces_every_open_subscription_and_suppresses_the_address(
    esp, client, reader, django_capture_on_commit_callbacks
):
    bounced_at = minutes_ago(5)

    post_processed(
        esp,
        client,
        esp.hard_bounce(reader.email, reader.metadata, bounced_at),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (esp.name, Kind.HARD_BOUNCE, reader.email)
    assert event.occurred_at == bounced_at
    assert event.outbound_email_id == reader.welcome_email.pk
    assert event.subscription_ids == [reader.active.pk]
    assert event.processed_at is not None
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}
    for subscription in (reader.active, reader.pending):
        subscription.refresh_from_db()
        assert subscription.bounced_at is not None
        (logged,) = log_of(subscription, SubscriptionEvent.Kind.BOUNCED)
        assert logged.actor == f"esp:{esp.name}"
        assert logged.to_status == Status.BOUNCED
        assert logged.detail["delivery_event_id"] == event.pk
    assert log_of(reader.ended, SubscriptionEvent.Kind.BOUNCED) == []
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event, entry.lifted_at) == (
        reader.email,
        Reason.HARD_BOUNCE,
        event,
        None,
    )


@ALL_ESPS
@pytest.mark.parametrize("credentials", [None, "hook:wrong"], ids=["no-auth", "wrong-password"])
def test_an_unauthenticated_hard_bounce_is_refused_and_changes_nothing(
    esp, credentials, client, reader, django_capture_on_commit_callbacks
):
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = esp.post(
            client, esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)), auth=credentials
        )

    # anymail refuses with SuspiciousOperation (400); SES first asks for credentials
    # with a 401 challenge, as SNS sends basic auth only after one.
    expected = 401 if esp is SES and credentials is None else 400
    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
    assert callbacks == []
    assert world() == before
    assert reader.statuses()["active"] == Status.ACTIVE


@pytest.mark.parametrize("forgery", ["other-key", "other-timestamp", "other-token"])
def test_a_mailgun_post_with_good_basic_auth_but_a_bad_signature_is_refused(
    forgery, client, reader, django_capture_on_commit_callbacks
):
    event_data = MAILGUN.hard_bounce(reader.email, reader.metadata, minutes_ago(1))["event-data"]
    if forgery == "other-key":
        payload = MAILGUN.sign(event_data, key="not-the-signing-key")
    else:
        payload = MAILGUN.sign(event_data)
        field = forgery.removeprefix("other-")
        payload["signature"][field] = MAILGUN.sign({})["signature"][field] + "0"
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = MAILGUN.post(client, payload)

    assert response.status_code == 400
    assert callbacks == []
    assert world() == before


@pytest.mark.parametrize(
    ("esp", "rejection"),
    [
        (SES, "rejected"),
        (MAILGUN, "rejected"),
        (POSTMARK, "bad_email_address"),
        (POSTMARK, "manually_deactivated"),
    ],
    ids=lambda value: value.name if isinstance(value, ESP) else value,
)
def test_a_rejection_by_the_esp_bounces_the_subscriptions_and_suppresses_the_address(
    esp, rejection, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        getattr(esp, rejection)(reader.email, reader.metadata, minutes_ago(2)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (esp.name, Kind.REJECTED, reader.email)
    assert event.processed_at is not None
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.BOUNCED)
    assert logged.actor == f"esp:{esp.name}"
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event) == (
        reader.email,
        Reason.REJECTED,
        event,
    )


# --- complaints and unsubscribes ----------------------------------------------------------


@ALL_ESPS
def test_a_complaint_marks_the_subscriptions_complained_and_suppresses_the_address(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.complaint(reader.email, reader.metadata, minutes_ago(2)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert event.kind == Kind.COMPLAINED
    assert reader.statuses() == {
        "active": "complained",
        "pending": "complained",
        "ended": "unsubscribed",
    }
    reader.active.refresh_from_db()
    assert reader.active.complained_at is not None
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.COMPLAINED)
    assert logged.actor == f"esp:{esp.name}"
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event) == (
        reader.email,
        Reason.COMPLAINT,
        event,
    )


@pytest.mark.parametrize("esp", [POSTMARK, MAILGUN], ids=lambda e: e.name)
def test_an_unsubscribe_at_the_esp_ends_only_the_subscription_the_email_was_for(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.unsubscribed(reader.email, reader.metadata, minutes_ago(3)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.kind, event.subscription_ids) == (Kind.UNSUBSCRIBED, [reader.active.pk])
    assert reader.statuses() == {
        "active": "unsubscribed",
        "pending": "pending",
        "ended": "unsubscribed",
    }
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.UNSUBSCRIBED)
    assert logged.actor == f"esp:{esp.name}"
    assert logged.from_status == Status.ACTIVE
    assert log_of(reader.pending, SubscriptionEvent.Kind.UNSUBSCRIBED) == []
    assert not SuppressedAddress.objects.exists()


# --- soft bounces -------------------------------------------------------------------------


@ALL_ESPS
def test_soft_bounces_below_the_limit_only_store_delivery_events(
    esp, client, reader, django_capture_on_commit_callbacks
):
    for minutes in (50, 40):
        post_processed(
            esp,
            client,
            esp.soft_bounce(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    events = list(DeliveryEvent.objects.values_list("kind", flat=True))
    assert events == [Kind.SOFT_BOUNCE, Kind.SOFT_BOUNCE]
    assert not DeliveryEvent.objects.filter(processed_at__isnull=True).exists()
    assert reader.statuses() == {"active": "active", "pending": "pending", "ended": "unsubscribed"}
    assert not SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.BOUNCED).exists()
    assert not SuppressedAddress.objects.exists()


@ALL_ESPS
def test_the_third_soft_bounce_in_a_row_suppresses_and_bounces(
    esp, client, reader, django_capture_on_commit_callbacks
):
    for minutes in (50, 40, 30):
        post_processed(
            esp,
            client,
            esp.soft_bounce(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    third = DeliveryEvent.objects.order_by("occurred_at").last()
    entry = SuppressedAddress.objects.get()
    assert (entry.reason, entry.source_event) == (Reason.SOFT_BOUNCES, third)
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}
    (logged,) = log_of(reader.active, SubscriptionEvent.Kind.BOUNCED)
    assert (logged.actor, logged.detail["delivery_event_id"]) == (f"esp:{esp.name}", third.pk)


@ALL_ESPS
def test_a_delivery_between_soft_bounces_resets_the_count(
    esp, client, reader, django_capture_on_commit_callbacks
):
    timeline = [
        (esp.soft_bounce, 60),
        (esp.soft_bounce, 50),
        (esp.delivered, 45),
        (esp.soft_bounce, 40),
        (esp.soft_bounce, 30),
    ]
    for build, minutes in timeline:
        post_processed(
            esp,
            client,
            build(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    assert DeliveryEvent.objects.filter(kind=Kind.SOFT_BOUNCE).count() == 4
    assert DeliveryEvent.objects.filter(kind=Kind.DELIVERED).count() == 1
    assert not SuppressedAddress.objects.exists()
    assert reader.statuses()["active"] == Status.ACTIVE

    # The third since the delivery is the one that counts.
    post_processed(
        esp,
        client,
        esp.soft_bounce(reader.email, reader.metadata, minutes_ago(20)),
        django_capture_on_commit_callbacks,
    )

    assert SuppressedAddress.objects.get().reason == Reason.SOFT_BOUNCES
    assert reader.statuses()["active"] == Status.BOUNCED


# --- replays ------------------------------------------------------------------------------


@ALL_ESPS
def test_a_replayed_hard_bounce_is_stored_and_acted_on_once(
    esp, client, reader, django_capture_on_commit_callbacks
):
    payload = esp.hard_bounce(reader.email, reader.metadata, minutes_ago(5))

    post_processed(esp, client, payload, django_capture_on_commit_callbacks)
    post_processed(esp, client, payload, django_capture_on_commit_callbacks)

    assert DeliveryEvent.objects.count() == 1
    assert len(log_of(reader.active, SubscriptionEvent.Kind.BOUNCED)) == 1
    assert len(log_of(reader.pending, SubscriptionEvent.Kind.BOUNCED)) == 1
    assert SuppressedAddress.objects.count() == 1


@pytest.mark.parametrize(
    ("event", "kind"),
    [("delivered", Kind.DELIVERED), ("unsubscribed", Kind.UNSUBSCRIBED)],
)
def test_a_replayed_postmark_event_without_an_id_is_stored_once_under_a_derived_id(
    event, kind, client, reader, django_capture_on_commit_callbacks
):
    build = getattr(POSTMARK, event)
    payload = build(reader.email, reader.metadata, minutes_ago(5))
    assert "ID" not in payload

    post_processed(POSTMARK, client, payload, django_capture_on_commit_callbacks)
    post_processed(POSTMARK, client, payload, django_capture_on_commit_callbacks)

    stored = DeliveryEvent.objects.get()
    assert stored.kind == kind
    assert stored.event_id.startswith("derived:")
    assert len(log_of(reader.active, SubscriptionEvent.Kind.UNSUBSCRIBED)) == (
        1 if kind == Kind.UNSUBSCRIBED else 0
    )

    # A different event of the same kind is not mistaken for the replay.
    post_processed(
        POSTMARK,
        client,
        build(reader.email, reader.metadata, minutes_ago(1)),
        django_capture_on_commit_callbacks,
    )
    assert DeliveryEvent.objects.count() == 2


# --- webhook secret rotation -------------------------------------------------------------


@ALL_ESPS
@pytest.mark.parametrize(
    ("credentials", "accepted"),
    [("hook:old", True), ("hook:new", True), ("hook:s3cret", False), ("hook:older", False)],
)
def test_while_rotating_both_webhook_secrets_work_and_no_other(
    esp, credentials, accepted, client, reader, settings, django_capture_on_commit_callbacks
):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ["hook:old", "hook:new"]}

    with django_capture_on_commit_callbacks(execute=True):
        response = esp.post(
            client,
            esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)),
            auth=credentials,
        )

    assert response.status_code == (200 if accepted else 400)
    assert DeliveryEvent.objects.count() == (1 if accepted else 0)
    assert SuppressedAddress.objects.count() == (1 if accepted else 0)
    assert reader.statuses()["active"] == (Status.BOUNCED if accepted else Status.ACTIVE)


# --- the request itself only records -----------------------------------------------------


@ALL_ESPS
def test_the_webhook_request_only_stores_the_event_and_queues_its_processing(
    esp, client, reader, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = esp.post(client, esp.hard_bounce(reader.email, reader.metadata, minutes_ago(1)))

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.processed_at is None
    assert reader.statuses()["active"] == Status.ACTIVE
    assert not SuppressedAddress.objects.exists()
    assert not SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.BOUNCED).exists()
    (enqueue,) = callbacks
    assert isinstance(enqueue, partial)
    assert (enqueue.func, enqueue.args) == (delivery_events.enqueue, (event.pk,))

    enqueue()  # what the commit would have run

    event.refresh_from_db()
    assert event.processed_at is not None
    assert reader.statuses()["active"] == Status.BOUNCED


def test_an_event_whose_task_never_ran_is_processed_by_the_sweeper(
    client, reader, settings, django_capture_on_commit_callbacks
):
    # The broker was down: the event is stored, but its task was never enqueued.
    with django_capture_on_commit_callbacks(execute=False):
        lost = POSTMARK.post(
            client, POSTMARK.hard_bounce(reader.email, reader.metadata, minutes_ago(9))
        )
    stale = timezone.now() - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS + 1)
    DeliveryEvent.objects.update(received_at=stale)
    with django_capture_on_commit_callbacks(execute=False):
        fresh = POSTMARK.post(
            client, POSTMARK.delivered(reader.email, reader.metadata, minutes_ago(1))
        )
    assert (lost.status_code, fresh.status_code) == (200, 200)

    assert tasks.requeue_stale_work.apply().get() == 1

    processed = dict(DeliveryEvent.objects.values_list("kind", "processed_at"))
    assert processed[Kind.HARD_BOUNCE] is not None
    assert processed[Kind.DELIVERED] is None  # its own task may still be on its way
    assert SuppressedAddress.objects.get().reason == Reason.HARD_BOUNCE
    assert reader.statuses()["active"] == Status.BOUNCED


# --- addresses we don't know, events we don't act on, bad bodies --------------------------


@ALL_ESPS
def test_a_hard_bounce_for_an_unknown_address_still_suppresses_it(
    esp, client, reader, django_capture_on_commit_callbacks
):
    post_processed(
        esp,
        client,
        esp.hard_bounce("Stranger@Example.NET", {}, minutes_ago(1)),
        django_capture_on_commit_callbacks,
    )

    event = DeliveryEvent.objects.get()
    assert (event.recipient, event.processed_at is not None) == ("Stranger@example.net", True)
    assert (event.outbound_email_id, event.subscription_ids) == (None, [])
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason) == ("Stranger@example.net", Reason.HARD_BOUNCE)
    assert not Subscriber.objects.filter(email__iexact="stranger@example.net").exists()
    assert reader.statuses()["active"] == Status.ACTIVE


@pytest.mark.parametrize(
    ("esp", "event"),
    [
        (POSTMARK, "opened"),
        (POSTMARK, "clicked"),
        (POSTMARK, "resubscribed"),
        (MAILGUN, "opened"),
        (MAILGUN, "clicked"),
        (SES, "opened"),
        (SES, "clicked"),
    ],
    ids=lambda value: value.name if isinstance(value, ESP) else value,
)
def test_events_that_change_nothing_for_us_store_nothing(
    esp, event, client, reader, django_capture_on_commit_callbacks
):
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = esp.post(
            client, getattr(esp, event)(reader.email, reader.metadata, minutes_ago(1))
        )

    assert response.status_code == 200
    assert callbacks == []
    assert world() == before


@pytest.mark.parametrize(
    "esp",
    [POSTMARK, MAILGUN, SES],
    ids=lambda e: e.name,
)
def test_a_malformed_body_answers_400_and_stores_nothing(esp, reader):
    client = Client(raise_request_exception=False)
    before = world()

    response = client.post(
        esp.tracking_url,
        data=b'{"RecordType": "Bounce", "Email": "ann@example.org"',  # cut off
        content_type="text/plain" if esp is SES else "application/json",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        **basic_auth(WEBHOOK_SECRET),
    )

    assert world() == before
    assert response.status_code == 400


def test_event_ids_stay_stable_when_a_provider_retries_or_names_several_recipients():
    def mailgun(token: str) -> AnymailTrackingEvent:
        return AnymailTrackingEvent(
            event_type="bounced",
            event_id=token,
            recipient="ann@example.org",
            esp_event={"event-data": {"id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": 1521243339.9}},
        )

    def ses(recipient: str) -> AnymailTrackingEvent:
        return AnymailTrackingEvent(event_type="bounced", event_id="sns-1", recipient=recipient)

    # A retried Mailgun webhook is signed with a new token but is the same event.
    mailgun_rule = for_esp("Mailgun")
    assert mailgun_rule.event_id(mailgun("token-1")) == mailgun_rule.event_id(mailgun("token-2"))
    # One SES notification naming two recipients is two events.
    ses_rule = for_esp("Amazon SES")
    assert ses_rule.event_id(ses("a@example.org")) != ses_rule.event_id(ses("b@example.org"))
    assert for_esp("Postmark").event_id(ses("a@example.org")) == "sns-1"
