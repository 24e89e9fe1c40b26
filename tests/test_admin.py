"""Editors manage newsletters and subscribers in the admin: counts per status, search and
filters, the event log, actions that go through the services, the "Add subscription"
page that records consent, a read-only event log, and escaped reader-supplied values."""

import csv
import io
import re

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from subscriptions.lists import exports
from subscriptions.lists.csv_cells import csv_safe as _csv_safe
from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    SubscriberImport,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup import services
from subscriptions.signup.services import ConsentContext
from tests.factories import (
    NewsletterFactory,
    SubscriberFactory,
    SubscriptionFactory,
    with_form_token,
)

pytestmark = pytest.mark.django_db

Status = Subscription.Status
ACTOR = "admin:admin"  # pytest-django's admin_client logs in as "admin"
INVALID_EMAIL_MESSAGE = "Please, enter correct email address"

SUBSCRIBER_CHANGELIST = reverse("admin:subscriptions_subscriber_changelist")
ADD_SUBSCRIPTION = reverse("admin:subscriptions_subscription_add")


def changelist_emails(response) -> set[str]:
    return {subscriber.email for subscriber in response.context["cl"].result_list}


def run_action(client, action: str, subscribers: list[Subscriber], **kwargs):
    return client.post(
        SUBSCRIBER_CHANGELIST,
        {"action": action, "_selected_action": [s.pk for s in subscribers], "index": "0"},
        **kwargs,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def stored_rows() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, OutboundEmail, SubscriptionEvent, ConsentRecord)
    }


# --- newsletters ------------------------------------------------------------------------


def test_newsletter_changelist_shows_subscription_counts_per_status(admin_client) -> None:
    newsletter = NewsletterFactory(name="The Briefing")
    other = NewsletterFactory(name="Weekend Reads")
    for status, count in [
        (Status.ACTIVE, 3),
        (Status.PENDING, 2),
        (Status.UNSUBSCRIBED, 4),
        (Status.BOUNCED, 1),
    ]:
        SubscriptionFactory.create_batch(count, newsletter=newsletter, status=status)
    SubscriptionFactory.create_batch(5, newsletter=other, status=Status.ACTIVE)
    SubscriptionFactory(newsletter=other, status=Status.COMPLAINED)

    response = admin_client.get(reverse("admin:subscriptions_newsletter_changelist"))

    assert response.status_code == 200
    change_url = reverse("admin:subscriptions_newsletter_change", args=[newsletter.pk])
    (row,) = [
        row
        for row in re.findall(r"<tr>.*?</tr>", response.content.decode(), re.DOTALL)
        if change_url in row
    ]
    counts = dict(re.findall(r'class="field-(\w+)_count">(\d+)</td>', row))
    assert counts == {
        "active": "3",
        "pending": "2",
        "unsubscribed": "4",
        "bounced": "1",
        "complained": "0",
    }
    by_name = {n.name: n for n in response.context["cl"].result_list}
    assert (by_name["Weekend Reads"].active_count, by_name["Weekend Reads"].complained_count) == (
        5,
        1,
    )


# --- subscribers: search, filters, change page -------------------------------------------


def test_subscriber_search_by_email_finds_the_one(admin_client) -> None:
    SubscriberFactory(email="ann@example.org")
    SubscriberFactory(email="bob@example.org")
    SubscriberFactory(email="hanna@example.net")

    response = admin_client.get(SUBSCRIBER_CHANGELIST, {"q": "ann@example.org"})

    assert response.status_code == 200
    assert changelist_emails(response) == {"ann@example.org"}


def test_newsletter_and_status_filters_apply_to_the_same_subscription(admin_client) -> None:
    a = NewsletterFactory(name="A")
    b = NewsletterFactory(name="B")
    mixed = SubscriberFactory(email="mixed@example.org")  # active in A, unsubscribed in B
    SubscriptionFactory(subscriber=mixed, newsletter=a, status=Status.ACTIVE)
    SubscriptionFactory(subscriber=mixed, newsletter=b, status=Status.UNSUBSCRIBED)
    left_a = SubscriberFactory(email="left-a@example.org")
    SubscriptionFactory(subscriber=left_a, newsletter=a, status=Status.UNSUBSCRIBED)
    SubscriptionFactory(subscriber__email="only-b@example.org", newsletter=b)

    both = admin_client.get(SUBSCRIBER_CHANGELIST, {"newsletter": a.pk, "status": "unsubscribed"})
    by_newsletter = admin_client.get(SUBSCRIBER_CHANGELIST, {"newsletter": a.pk})
    by_status = admin_client.get(SUBSCRIBER_CHANGELIST, {"status": "unsubscribed"})

    assert changelist_emails(both) == {"left-a@example.org"}
    assert changelist_emails(by_newsletter) == {"mixed@example.org", "left-a@example.org"}
    assert changelist_emails(by_status) == {"mixed@example.org", "left-a@example.org"}


def test_subscriber_change_page_shows_subscriptions_and_the_event_log(admin_client) -> None:
    briefing = NewsletterFactory(name="The Briefing")
    weekend = NewsletterFactory(name="Weekend Reads")
    result = services.subscribe(
        email="ann@example.org",
        newsletters=[briefing, weekend],
        source=Subscription.Source.FORM,
        consent=ConsentContext(),
    )
    weekend_subscription = Subscription.objects.get(newsletter=weekend)
    services.unsubscribe(subscription_id=weekend_subscription.pk, actor="reader", via="page")

    response = admin_client.get(
        reverse("admin:subscriptions_subscriber_change", args=[result.subscriber_id])
    )

    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    shown = {(form.instance.newsletter.name, form.instance.status) for form in inline.forms}
    assert shown == {("The Briefing", "pending"), ("Weekend Reads", "unsubscribed")}
    page = response.content.decode()
    for kind in ("Signed up", "Confirmation email queued", "Unsubscribed"):
        assert f"<td>{kind}</td>" in page
    assert "<td>pending → unsubscribed</td><td>reader</td>" in page


def test_subscriber_changelist_queries_do_not_grow_with_rows(admin_client) -> None:
    newsletter = NewsletterFactory()

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(SUBSCRIBER_CHANGELIST)
        assert response.status_code == 200
        return len(queries)

    SubscriptionFactory.create_batch(5, newsletter=newsletter, status=Status.ACTIVE)
    count_queries()  # warm caches (content types, session) so both counts compare alike
    with_five = count_queries()
    SubscriptionFactory.create_batch(25, newsletter=newsletter, status=Status.ACTIVE)
    with_thirty = count_queries()

    assert Subscriber.objects.count() == 30
    assert with_thirty == with_five


# --- actions ----------------------------------------------------------------------------


def test_resend_confirmation_action_queues_an_email_for_pending_subscriptions(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    newsletter = NewsletterFactory(name="The Briefing")
    pending = SubscriptionFactory(
        subscriber__email="pending@example.org", newsletter=newsletter, status=Status.PENDING
    )
    active = SubscriptionFactory(
        subscriber__email="active@example.org", newsletter=newsletter, status=Status.ACTIVE
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(
            admin_client, "resend_confirmation", [pending.subscriber, active.subscriber]
        )

    assert response.status_code == 302
    outbound = OutboundEmail.objects.get()
    assert (outbound.kind, outbound.to_email, outbound.status) == (
        OutboundEmail.Kind.CONFIRMATION,
        "pending@example.org",
        OutboundEmail.Status.SENT,
    )
    assert list(outbound.subscriptions.all()) == [pending]
    assert [m.to for m in mail.outbox] == [["pending@example.org"]]
    assert SubscriptionEvent.objects.filter(
        subscription=pending, kind=SubscriptionEvent.Kind.CONFIRMATION_QUEUED, actor=ACTOR
    ).exists()
    assert messages_of(response) == ["Queued 1 confirmation email(s)."]


def test_resend_confirmation_action_respects_the_per_address_cap(admin_client) -> None:
    pending = SubscriptionFactory(subscriber__email="ann@example.org", status=Status.PENDING)
    run_action(admin_client, "resend_confirmation", [pending.subscriber])

    response = run_action(admin_client, "resend_confirmation", [pending.subscriber])

    assert OutboundEmail.objects.count() == 1
    assert messages_of(response)[-2:] == [
        "Queued 0 confirmation email(s).",
        "1 not sent: the per-address cap on confirmation emails was reached.",
    ]
    assert SubscriptionEvent.objects.filter(
        subscription=pending, kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED, actor=ACTOR
    ).exists()


def test_unsubscribe_from_all_action_logs_the_editor_as_actor(admin_client) -> None:
    ann = SubscriberFactory(email="ann@example.org")
    active = SubscriptionFactory(subscriber=ann, status=Status.ACTIVE)
    pending = SubscriptionFactory(subscriber=ann, status=Status.PENDING)
    bounced = SubscriptionFactory(subscriber=ann, status=Status.BOUNCED)
    bystander = SubscriptionFactory(subscriber__email="bob@example.org", status=Status.ACTIVE)

    response = run_action(admin_client, "unsubscribe_from_all", [ann])

    for subscription in (active, pending, bounced, bystander):
        subscription.refresh_from_db()
    assert (active.status, pending.status) == (Status.UNSUBSCRIBED, Status.UNSUBSCRIBED)
    assert bounced.status == Status.BOUNCED
    assert bystander.status == Status.ACTIVE
    events = SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.UNSUBSCRIBED)
    assert sorted(events.values_list("subscription_id", "actor", "detail")) == sorted(
        [(active.pk, ACTOR, {"via": "admin"}), (pending.pk, ACTOR, {"via": "admin"})]
    )
    assert messages_of(response) == ["Unsubscribed 2 subscription(s)."]


def test_export_csv_action_streams_one_row_per_subscription(admin_client) -> None:
    briefing = NewsletterFactory(slug="briefing", position=1)
    weekend = NewsletterFactory(slug="weekend", position=2)
    ann = SubscriberFactory(email="ann@example.org")
    SubscriptionFactory(subscriber=ann, newsletter=briefing, status=Status.ACTIVE)
    SubscriptionFactory(subscriber=ann, newsletter=weekend, status=Status.UNSUBSCRIBED)
    # "=" is a legal character in a local part, and spreadsheets run "=..." as a formula.
    formula = SubscriberFactory(email="=cmd@example.org")
    SubscriptionFactory(subscriber=formula, newsletter=briefing, status=Status.PENDING)
    SubscriptionFactory(subscriber__email="not-selected@example.org", newsletter=briefing)

    response = run_action(admin_client, "export_csv", [ann, formula])

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="subscribers.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == exports.COLUMNS
    assert [[row[0], row[2], row[3]] for row in rows[1:]] == [
        ["ann@example.org", "briefing", "active"],
        ["ann@example.org", "weekend", "unsubscribed"],
        ["'=cmd@example.org", "briefing", "pending"],
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("ann@example.org", "ann@example.org"),
        ("", ""),
    ],
)
def test_csv_cells_that_look_like_formulas_are_defused(value: str, cell: str) -> None:
    assert _csv_safe(value) == cell


# --- "Add subscription" page -------------------------------------------------------------


def test_adding_as_pending_sends_a_confirmation_email_and_records_consent(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    newsletter = NewsletterFactory(name="The Briefing")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            ADD_SUBSCRIPTION,
            {
                "email": " Ann@Example.ORG ",
                "newsletters": [newsletter.pk],
                "status": "pending",
                "consent_basis": "",
            },
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:subscriptions_subscription_changelist")
    subscription = Subscription.objects.select_related("subscriber").get()
    assert subscription.subscriber.email == "Ann@example.org"
    assert (subscription.status, subscription.source) == (Status.PENDING, "admin")
    consent = ConsentRecord.objects.get()
    assert (consent.subscription, consent.kind) == (subscription, ConsentRecord.Kind.ADMIN)
    assert consent.consent_text == "Added by an editor"
    (message,) = mail.outbox
    assert message.to == ["Ann@example.org"]
    assert message.metadata["message_type"] == "confirmation"
    assert set(
        SubscriptionEvent.objects.filter(subscription=subscription).values_list("actor", flat=True)
    ) == {ACTOR}


def test_adding_as_active_without_a_consent_basis_is_refused(admin_client) -> None:
    newsletter = NewsletterFactory()

    response = admin_client.post(
        ADD_SUBSCRIPTION,
        {
            "email": "ann@example.org",
            "newsletters": [newsletter.pk],
            "status": "active",
            "consent_basis": "   ",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"consent_basis": ["Say how this person consented."]}
    assert "Say how this person consented." in response.content.decode()
    assert set(stored_rows().values()) == {0}


def test_adding_as_active_with_a_consent_basis_records_it(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    newsletter = NewsletterFactory()
    basis = "Signed up on paper at the 2026 book fair"

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            ADD_SUBSCRIPTION,
            {
                "email": "ann@example.org",
                "newsletters": [newsletter.pk],
                "status": "active",
                "consent_basis": f"  {basis}  ",
            },
        )

    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.source) == (Status.ACTIVE, "admin")
    assert subscription.confirmed_at is not None
    consent = ConsentRecord.objects.get()
    assert (consent.kind, consent.consent_text) == (ConsentRecord.Kind.ADMIN, basis)
    event = SubscriptionEvent.objects.get()
    assert (event.kind, event.to_status, event.actor) == (
        SubscriptionEvent.Kind.ACTIVATED,
        Status.ACTIVE,
        ACTOR,
    )
    assert not OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION).exists()


def test_adding_an_invalid_email_shows_the_error_and_stores_nothing(admin_client) -> None:
    newsletter = NewsletterFactory()

    response = admin_client.post(
        ADD_SUBSCRIPTION,
        {
            "email": "ann@example..org",
            "newsletters": [newsletter.pk],
            "status": "pending",
            "consent_basis": "",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": [INVALID_EMAIL_MESSAGE]}
    assert INVALID_EMAIL_MESSAGE in response.content.decode()
    assert set(stored_rows().values()) == {0}


# --- the outbox -------------------------------------------------------------------------


def test_the_outbox_changelist_filters_by_status_and_type(admin_client) -> None:
    now = timezone.now()
    subscriber = SubscriberFactory(email="ann@example.org")
    rows = {
        (kind, status): OutboundEmail.objects.create(
            kind=kind,
            status=status,
            to_email=subscriber.email,
            subscriber=subscriber,
            created_at=now,
        )
        for kind in OutboundEmail.Kind.values
        for status in (OutboundEmail.Status.FAILED, OutboundEmail.Status.SENT)
    }
    changelist = reverse("admin:subscriptions_outboundemail_changelist")

    def listed(**filters: str) -> set[int]:
        response = admin_client.get(changelist, filters)
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert listed() == {row.pk for row in rows.values()}
    assert listed(status__exact="failed") == {
        row.pk for (_, status), row in rows.items() if status == "failed"
    }
    assert listed(kind__exact="welcome") == {
        rows["welcome", "failed"].pk,
        rows["welcome", "sent"].pk,
    }
    assert listed(status__exact="failed", kind__exact="welcome") == {rows["welcome", "failed"].pk}


# --- the event log is read-only ----------------------------------------------------------


def test_the_event_log_admin_cannot_add_change_or_delete(admin_client) -> None:
    subscription = SubscriptionFactory()
    event = SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=SubscriptionEvent.Kind.SUBSCRIBED,
        to_status=Status.PENDING,
        actor="reader",
        at=timezone.now(),
    )
    change_url = reverse("admin:subscriptions_subscriptionevent_change", args=[event.pk])

    changelist = admin_client.get(reverse("admin:subscriptions_subscriptionevent_changelist"))
    add = admin_client.get(reverse("admin:subscriptions_subscriptionevent_add"))
    change = admin_client.post(change_url, {"actor": "admin:mallory", "kind": "confirmed"})
    delete = admin_client.post(
        reverse("admin:subscriptions_subscriptionevent_delete", args=[event.pk]), {"post": "yes"}
    )
    admin_client.post(
        reverse("admin:subscriptions_subscriptionevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert changelist.context["action_form"] is None
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    event.refresh_from_db()
    assert (event.kind, event.actor) == (SubscriptionEvent.Kind.SUBSCRIBED, "reader")


# --- reader-supplied values are escaped --------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_a_user_agent_with_markup_is_escaped_on_the_subscription_page(admin_client, client) -> None:
    newsletter = NewsletterFactory()
    client.post(
        "/api/v1/subscriptions",
        with_form_token({"email": "ann@example.org", "newsletters": [newsletter.slug]}),
        content_type="application/json",
        HTTP_USER_AGENT=SCRIPT,
    )
    subscription = Subscription.objects.get()
    assert ConsentRecord.objects.get().user_agent == SCRIPT

    response = admin_client.get(
        reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_markup_in_a_newsletter_name_is_escaped_in_the_event_log(admin_client) -> None:
    newsletter = NewsletterFactory(name=SCRIPT)
    result = services.subscribe(
        email="ann@example.org",
        newsletters=[newsletter],
        source=Subscription.Source.FORM,
        consent=ConsentContext(),
    )

    response = admin_client.get(
        reverse("admin:subscriptions_subscriber_change", args=[result.subscriber_id])
    )

    page = response.content.decode()
    assert SCRIPT not in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td>Signed up</td>" in page


# --- the import page ---------------------------------------------------------------------


def queued_import(newsletter) -> SubscriberImport:
    return SubscriberImport.objects.create(
        newsletter=newsletter,
        target_status=Status.PENDING,
        file_path="/nonexistent/upload.csv",
        original_name="readers.csv",
        created_by=ACTOR,
        created_at=timezone.now(),
    )


@pytest.mark.parametrize(
    ("state", "label"),
    [
        (SubscriberImport.State.QUEUED, "Queued"),
        (SubscriberImport.State.RUNNING, "Running"),
        (SubscriberImport.State.DONE, "Done"),
        (SubscriberImport.State.FAILED, "Failed"),
    ],
)
def test_the_import_status_says_the_state_in_words_for_the_page(admin_client, state, label):
    job = queued_import(NewsletterFactory())
    SubscriberImport.objects.filter(pk=job.pk).update(state=state)

    status = admin_client.get(reverse("admin:subscriptions_import_status", args=[job.pk])).json()

    assert (status["state"], status["state_label"]) == (state, label)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_import_page_follows_the_state_live_in_a_browser(page, site, admin_client) -> None:
    from playwright.sync_api import expect

    job = queued_import(NewsletterFactory())
    session = admin_client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": site}]
    )
    page.goto(site + reverse("admin:subscriptions_subscriberimport_change", args=[job.pk]))
    state = page.locator('[data-value="state_label"]')
    expect(state).to_have_text("Queued")

    SubscriberImport.objects.filter(pk=job.pk).update(
        state=SubscriberImport.State.RUNNING, phase=SubscriberImport.Phase.READING, rows_read=7
    )
    expect(state).to_have_text("Running")
    expect(page.locator('[data-value="phase"]')).to_have_text("Reading and checking rows")
    SubscriberImport.objects.filter(pk=job.pk).update(
        state=SubscriberImport.State.DONE, phase=SubscriberImport.Phase.FINISHED
    )

    expect(state).to_have_text("Done")  # after the reload that shows the summary
    expect(page.get_by_text("Skipped: 0 invalid")).to_be_visible()
