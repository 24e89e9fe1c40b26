"""A suppressed address gets no mail at all, confirmations included, whoever asks and
whatever its case, without the sign-up answer giving that away. Editors add and lift
entries with a reason, and the history stays. Newsletter mail offers one-click and
mailto: unsubscribes; mail to the mailto: address ends the subscription it names."""

import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from subscriptions import tasks
from subscriptions.admin.roles import EDITORS_GROUP
from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    OutboundEmail,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.tokens import preferences_token, unsubscribe_token
from subscriptions.web.views import SUCCESS_MESSAGE
from tests.esp_payloads.postmark import postmark_inbound
from tests.factories import (
    NewsletterFactory,
    SubscriberFactory,
    SubscriptionFactory,
    with_form_token,
)

pytestmark = pytest.mark.django_db

Status = Subscription.Status
Event = SubscriptionEvent.Kind
Reason = SuppressedAddress.Reason

API = "/api/v1/subscriptions"
SUPPRESSION_CHANGELIST = reverse("admin:subscriptions_suppressedaddress_changelist")
SUPPRESSION_ADD = reverse("admin:subscriptions_suppressedaddress_add")
OUTBOX_CHANGELIST = reverse("admin:subscriptions_outboundemail_changelist")
EDITOR = "admin:olena"  # how the event log names the editor below
MAILTO = "unsubscribe@news.example.org"
WEBHOOK_SECRET = "hook:s3cret"


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://news.example.org"
    settings.UNSUBSCRIBE_MAILTO = ""
    # The providers these tests post to (conftest sends mail with anymail's test backend).
    settings.ESP_WEBHOOKS = ["postmark"]
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-test-key",
    }


@pytest.fixture
def editor_client() -> Client:
    """Logged in as a newsletter editor (staff, in the editors group; not a superuser)."""
    editor = User.objects.create_user("olena", "olena@news.example.org", is_staff=True)
    editor.groups.add(Group.objects.get(name=EDITORS_GROUP))
    client = Client()
    client.force_login(editor)
    return client


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="explaining-ukraine", name="Explaining Ukraine")


def sign_up(client, email: str, newsletter) -> dict:
    response = client.post(
        API,
        data=json.dumps(with_form_token({"email": email, "newsletters": [newsletter.slug]})),
        content_type="application/json",
    )
    return {"status_code": response.status_code, "body": response.json()}


def suppress(email: str, reason: str = Reason.HARD_BOUNCE) -> SuppressedAddress:
    return suppression.suppress(email=email, reason=reason)


def subscription_of(email: str) -> Subscription:
    return Subscription.objects.get(subscriber__email__iexact=email)


def log_kinds(subscription: Subscription) -> list[str]:
    return list(subscription.events.order_by("at", "pk").values_list("kind", flat=True))


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- suppressed addresses get nothing ----------------------------------------------------


def test_a_suppressed_address_signing_up_gets_the_usual_answer_but_no_email(
    client, newsletter, django_capture_on_commit_callbacks
):
    suppress("ann@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        suppressed_answer = sign_up(client, "ann@example.org", newsletter)
        usual_answer = sign_up(client, "bob@example.org", newsletter)

    # The answer does not tell anyone the address is on the list.
    assert suppressed_answer == usual_answer
    assert usual_answer == {
        "status_code": 202,
        "body": {"status": "pending", "message": SUCCESS_MESSAGE},
    }
    ann = subscription_of("ann@example.org")
    assert ann.status == Status.PENDING
    assert not OutboundEmail.objects.filter(to_email="ann@example.org").exists()
    assert log_kinds(ann) == [Event.SUBSCRIBED, Event.EMAIL_SUPPRESSED]
    assert ann.events.get(kind=Event.EMAIL_SUPPRESSED).detail == {
        "kind": OutboundEmail.Kind.CONFIRMATION
    }
    assert [message.to for message in mail.outbox] == [["bob@example.org"]]


def test_an_email_queued_before_the_address_was_suppressed_is_not_sent(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sign_up(client, "ann@example.org", newsletter)
    queued = OutboundEmail.objects.get()
    assert queued.status == OutboundEmail.Status.QUEUED

    suppress("ann@example.org")
    for callback in callbacks:  # the worker gets to the row only now
        callback()

    queued.refresh_from_db()
    assert queued.status == OutboundEmail.Status.SUPPRESSED
    assert queued.sent_at is None
    assert "suppression list" in queued.last_error
    assert mail.outbox == []


def test_a_duplicated_task_for_a_suppressed_email_does_not_send_it_after_a_lift(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sign_up(client, "ann@example.org", newsletter)
    queued = OutboundEmail.objects.get()
    entry = suppress("ann@example.org")
    assert tasks.send_outbound_email.apply(args=[queued.pk]).get() == "suppressed"
    suppression.lift(entry_ids=[entry.pk], reason="Reader wrote in", actor=EDITOR)

    # Redelivered (acks_late) after the lift; only the editor's "retry" may resend it.
    result = tasks.send_outbound_email.apply(args=[queued.pk]).get()

    queued.refresh_from_db()
    assert (result, queued.status) == ("skipped", OutboundEmail.Status.SUPPRESSED)
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("suppressed_as", "signed_up_as"),
    [("Ann@Example.org", "ann@example.org"), ("ann@example.org", "ANN@EXAMPLE.ORG")],
)
def test_suppression_ignores_the_case_of_the_address(
    client, newsletter, suppressed_as, signed_up_as, django_capture_on_commit_callbacks
):
    suppress(suppressed_as)

    with django_capture_on_commit_callbacks(execute=True):
        answer = sign_up(client, signed_up_as, newsletter)

    assert answer["status_code"] == 202
    assert not OutboundEmail.objects.exists()
    assert Event.EMAIL_SUPPRESSED in log_kinds(subscription_of(signed_up_as))
    assert mail.outbox == []
    assert suppression.is_suppressed(signed_up_as.swapcase())


def test_the_send_time_check_also_ignores_case(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sign_up(client, "ann@example.org", newsletter)

    suppress("ANN@Example.ORG")
    for callback in callbacks:
        callback()

    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SUPPRESSED
    assert mail.outbox == []


# --- lifting -------------------------------------------------------------------------------


def test_lifting_in_the_admin_first_asks_for_a_reason(editor_client):
    entry = suppress("ann@example.org")

    response = editor_client.post(
        SUPPRESSION_CHANGELIST,
        {"action": "lift", "_selected_action": [entry.pk], "index": "0"},
    )

    assert response.status_code == 200
    assert "admin/subscriptions/lift_suppression.html" in [t.name for t in response.templates]
    form = response.context["form"]
    assert not form.is_bound
    assert "reason" in form.fields
    assert list(response.context["entries"]) == [entry]
    assert 'name="reason"' in response.content.decode()
    entry.refresh_from_db()
    assert (entry.lifted_at, entry.lifted_by, entry.lift_reason) == (None, "", "")


def test_a_blank_reason_asks_again_and_lifts_nothing(editor_client):
    entry = suppress("ann@example.org")

    response = editor_client.post(
        SUPPRESSION_CHANGELIST,
        {"action": "lift", "_selected_action": [entry.pk], "reason": "   "},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    entry.refresh_from_db()
    assert entry.lifted_at is None
    assert suppression.is_suppressed("ann@example.org")


def test_lifting_with_a_reason_records_it_and_mail_flows_again(
    editor_client, client, newsletter, django_capture_on_commit_callbacks
):
    entry = suppress("ann@example.org")
    other = suppress("bob@example.org")

    response = editor_client.post(
        SUPPRESSION_CHANGELIST,
        {
            "action": "lift",
            "_selected_action": [entry.pk],
            "reason": "Reader wrote in: the mailbox works again.",
        },
    )

    assert response.status_code == 302
    assert messages_of(response) == ["Lifted 1 suppression(s)."]
    entry.refresh_from_db()
    assert entry.lifted_at is not None
    assert entry.lifted_by == EDITOR
    assert entry.lift_reason == "Reader wrote in: the mailbox works again."
    other.refresh_from_db()
    assert other.lifted_at is None

    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "ann@example.org", newsletter)

    assert [message.to for message in mail.outbox] == [["ann@example.org"]]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_lifting_without_a_reason_is_refused(reason):
    entry = suppress("ann@example.org")

    with pytest.raises(ValueError, match="reason"):
        suppression.lift(entry_ids=[entry.pk], reason=reason, actor=EDITOR)

    entry.refresh_from_db()
    assert entry.lifted_at is None


def test_a_new_suppression_after_a_lift_keeps_the_old_entry_as_history():
    first = suppress("ann@example.org", Reason.HARD_BOUNCE)
    assert suppression.lift(entry_ids=[first.pk], reason="Typo fixed", actor=EDITOR) == 1
    assert not suppression.is_suppressed("ann@example.org")

    second = suppress("Ann@example.org", Reason.COMPLAINT)
    again = suppress("ann@example.org", Reason.MANUAL)

    assert second.pk != first.pk
    assert again.pk == second.pk  # the entry in force, not a third row
    assert SuppressedAddress.objects.count() == 2
    in_force = SuppressedAddress.objects.get(lifted_at__isnull=True)
    assert (in_force.pk, in_force.reason) == (second.pk, Reason.COMPLAINT)
    first.refresh_from_db()
    assert (first.reason, first.lift_reason) == (Reason.HARD_BOUNCE, "Typo fixed")
    assert suppression.is_suppressed("ann@example.org")


def test_the_database_allows_only_one_entry_in_force_per_address():
    SuppressedAddress.objects.create(
        email="ann@example.org", reason=Reason.HARD_BOUNCE, created_at=timezone.now()
    )
    SuppressedAddress.objects.create(
        email="ann@example.org",
        reason=Reason.COMPLAINT,
        created_at=timezone.now(),
        lifted_at=timezone.now(),
        lifted_by=EDITOR,
        lift_reason="history",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        SuppressedAddress.objects.create(
            email="ANN@example.org", reason=Reason.MANUAL, created_at=timezone.now()
        )

    assert SuppressedAddress.objects.filter(lifted_at__isnull=True).count() == 1


# --- editors add entries -----------------------------------------------------------------


def test_an_editor_can_add_a_manual_suppression(editor_client):
    response = editor_client.post(
        SUPPRESSION_ADD, {"email": "Ann@Example.ORG", "note": "Asked by phone to stop all mail."}
    )

    assert response.status_code == 302
    entry = SuppressedAddress.objects.get()
    assert entry.email == "Ann@example.org"  # stored form: domain lower-cased
    assert entry.reason == Reason.MANUAL
    assert entry.note == "Asked by phone to stop all mail.\n(added by admin:olena)"
    assert entry.created_at is not None
    assert entry.lifted_at is None
    assert suppression.is_suppressed("ann@example.org")


@pytest.mark.parametrize("email", ["not-an-email", "ann@example..org", "ann@exa mple.org", ""])
def test_an_invalid_address_in_the_add_form_shows_an_error_and_adds_nothing(editor_client, email):
    response = editor_client.post(SUPPRESSION_ADD, {"email": email, "note": ""})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"]
    assert not SuppressedAddress.objects.exists()


def test_adding_an_address_already_in_force_keeps_the_one_entry(editor_client):
    existing = suppress("ann@example.org", Reason.HARD_BOUNCE)

    response = editor_client.post(SUPPRESSION_ADD, {"email": "ann@example.org", "note": "again"})

    assert response.status_code == 302
    assert list(SuppressedAddress.objects.values_list("pk", "reason")) == [
        (existing.pk, Reason.HARD_BOUNCE)
    ]


# --- the outbox "retry" action -----------------------------------------------------------


@pytest.fixture
def unsent(client, newsletter, django_capture_on_commit_callbacks) -> OutboundEmail:
    """A confirmation email to ann@example.org whose task has not run."""
    with django_capture_on_commit_callbacks(execute=False):
        sign_up(client, "ann@example.org", newsletter)
    return OutboundEmail.objects.get()


def retry_in_admin(editor_client, outbound: OutboundEmail, capture):
    with capture(execute=True) as callbacks:
        response = editor_client.post(
            OUTBOX_CHANGELIST, {"action": "retry", "_selected_action": [outbound.pk], "index": "0"}
        )
    assert response.status_code == 302
    outbound.refresh_from_db()
    return response, callbacks


def test_retrying_a_failed_email_in_the_admin_sends_it(
    editor_client, unsent, django_capture_on_commit_callbacks
):
    OutboundEmail.objects.filter(pk=unsent.pk).update(
        status=OutboundEmail.Status.FAILED, attempts=8, last_error="ESP said no"
    )

    response, callbacks = retry_in_admin(editor_client, unsent, django_capture_on_commit_callbacks)

    assert messages_of(response) == ["Queued 1 email(s) again."]
    assert len(callbacks) == 1
    assert (unsent.status, unsent.attempts, unsent.last_error) == (
        OutboundEmail.Status.SENT,
        1,
        "",
    )
    assert [message.to for message in mail.outbox] == [["ann@example.org"]]


def test_retrying_an_email_to_a_still_suppressed_address_suppresses_it_again(
    editor_client, unsent, django_capture_on_commit_callbacks
):
    suppress("ann@example.org")
    assert tasks.send_outbound_email.apply(args=[unsent.pk]).get() == "suppressed"

    response, callbacks = retry_in_admin(editor_client, unsent, django_capture_on_commit_callbacks)

    assert messages_of(response) == ["Queued 1 email(s) again."]
    assert len(callbacks) == 1  # it was queued and the worker looked at it again
    assert unsent.status == OutboundEmail.Status.SUPPRESSED
    assert mail.outbox == []


def test_retrying_a_suppressed_email_after_the_lift_sends_it(
    editor_client, unsent, django_capture_on_commit_callbacks
):
    entry = suppress("ann@example.org")
    assert tasks.send_outbound_email.apply(args=[unsent.pk]).get() == "suppressed"
    suppression.lift(entry_ids=[entry.pk], reason="Reader wrote in", actor=EDITOR)

    retry_in_admin(editor_client, unsent, django_capture_on_commit_callbacks)

    assert unsent.status == OutboundEmail.Status.SENT
    assert [message.to for message in mail.outbox] == [["ann@example.org"]]


def test_retry_leaves_sent_and_queued_emails_alone(unsent):
    OutboundEmail.objects.filter(pk=unsent.pk).update(status=OutboundEmail.Status.SENT)

    assert outbox.retry([unsent.pk]) == 0

    unsent.refresh_from_db()
    assert unsent.status == OutboundEmail.Status.SENT


# --- List-Unsubscribe ----------------------------------------------------------------------


def header(message, name: str) -> str | None:
    """A header as it goes out (anymail's test backend keeps the EmailMessage)."""
    return message.message().get(name)


def list_unsubscribe_targets(value: str) -> list[str]:
    # RFC 2369: a comma-separated list of <URI>s, in order of preference.
    return re.findall(r"<([^>]+)>", value)


def test_confirmation_emails_carry_no_list_unsubscribe(
    client, newsletter, settings, django_capture_on_commit_callbacks
):
    settings.UNSUBSCRIBE_MAILTO = MAILTO

    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "ann@example.org", newsletter)

    (message,) = mail.outbox
    assert message.metadata["message_type"] == OutboundEmail.Kind.CONFIRMATION
    assert header(message, "List-Unsubscribe") is None
    assert header(message, "List-Unsubscribe-Post") is None


@pytest.fixture
def welcomed(client, settings, django_capture_on_commit_callbacks):
    """Sign ann@example.org up to a single opt-in newsletter: a welcome email goes out."""

    def welcome(*, mailto: str = "") -> tuple[Subscription, object]:
        settings.UNSUBSCRIBE_MAILTO = mailto
        newsletter = NewsletterFactory(slug="the-briefing", double_opt_in=False)
        with django_capture_on_commit_callbacks(execute=True):
            sign_up(client, "ann@example.org", newsletter)
        (message,) = mail.outbox
        assert message.metadata["message_type"] == OutboundEmail.Kind.WELCOME
        return subscription_of("ann@example.org"), message

    return welcome


def test_welcome_emails_offer_the_https_unsubscribe_first_and_a_mailto_when_configured(
    welcomed,
):
    subscription, message = welcomed(mailto=MAILTO)

    https, mailto = list_unsubscribe_targets(header(message, "List-Unsubscribe"))
    assert https.startswith("https://news.example.org/unsubscribe/")
    https_token = urlsplit(https).path.removeprefix("/unsubscribe/").rstrip("/")
    assert unsubscribe_token.read_token(https_token) == subscription.pk
    parts = urlsplit(mailto)
    assert (parts.scheme, parts.path) == ("mailto", MAILTO)
    (subject,) = parse_qs(parts.query)["subject"]
    word, token = subject.split(" ")
    assert word == "unsubscribe"
    assert unsubscribe_token.read_token(token) == subscription.pk
    assert header(message, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"


def test_without_the_mailto_setting_welcome_emails_offer_only_https(welcomed):
    subscription, message = welcomed(mailto="")

    value = header(message, "List-Unsubscribe")
    (https,) = list_unsubscribe_targets(value)
    assert https.startswith("https://")
    assert "mailto:" not in value


# --- the mailto: path ----------------------------------------------------------------------


def post_inbound(client, payload: dict, *, auth: str | None = WEBHOOK_SECRET):
    extra = {}
    if auth is not None:
        extra["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(
        "/anymail/postmark/inbound/",
        data=json.dumps(payload),
        content_type="application/json",
        **extra,
    )


@pytest.fixture
def reader_with_mailto(welcomed) -> tuple[Subscription, Subscription, str]:
    """Ann's welcome email's List-Unsubscribe mailto:, plus a second subscription of hers
    that the mail must not touch."""
    subscription, message = welcomed(mailto=MAILTO)
    other = SubscriptionFactory(
        subscriber=subscription.subscriber, status=Status.ACTIVE, pending_since=None
    )
    _, mailto = list_unsubscribe_targets(header(message, "List-Unsubscribe"))
    (subject,) = parse_qs(urlsplit(mailto).query)["subject"]
    return subscription, other, subject


def test_mail_to_the_unsubscribe_address_ends_the_subscription_its_token_names(
    client, reader_with_mailto, django_capture_on_commit_callbacks
):
    subscription, other, subject = reader_with_mailto

    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound(client, postmark_inbound(to=MAILTO, subject=subject))

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Status.UNSUBSCRIBED
    assert subscription.unsubscribed_at is not None
    logged = subscription.events.get(kind=Event.UNSUBSCRIBED)
    assert (logged.actor, logged.detail) == ("esp:Postmark", {"via": "mailto"})
    other.refresh_from_db()
    assert other.status == Status.ACTIVE
    assert not SuppressedAddress.objects.exists()


@pytest.mark.parametrize(
    "change",
    ["bad-token", "token-for-another-purpose", "other-recipient", "no-token", "setting-off"],
)
def test_mail_that_is_not_a_valid_unsubscribe_request_changes_nothing(
    change, client, settings, reader_with_mailto, django_capture_on_commit_callbacks
):
    subscription, other, subject = reader_with_mailto
    to = MAILTO
    if change == "bad-token":
        subject = subject[:-1] + ("A" if subject[-1] != "A" else "B")
    elif change == "token-for-another-purpose":
        subject = f"unsubscribe {preferences_token.make_token(subscription.pk)}"
    elif change == "other-recipient":
        to = "letters@news.example.org"
    elif change == "no-token":
        subject = "unsubscribe"
    elif change == "setting-off":
        settings.UNSUBSCRIBE_MAILTO = ""

    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound(client, postmark_inbound(to=to, subject=subject))

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Status.ACTIVE
    assert not SubscriptionEvent.objects.filter(kind=Event.UNSUBSCRIBED).exists()


@pytest.mark.parametrize("credentials", [None, "hook:wrong"])
def test_unauthenticated_inbound_mail_is_refused_and_changes_nothing(
    credentials, client, reader_with_mailto
):
    subscription, _, subject = reader_with_mailto

    response = post_inbound(client, postmark_inbound(to=MAILTO, subject=subject), auth=credentials)

    assert response.status_code == 400
    subscription.refresh_from_db()
    assert subscription.status == Status.ACTIVE


def test_the_unsubscribe_address_and_the_subject_word_match_in_any_case(
    client, settings, django_capture_on_commit_callbacks
):
    settings.UNSUBSCRIBE_MAILTO = MAILTO
    subscription = SubscriptionFactory(
        subscriber=SubscriberFactory(email="Ann@example.org"),
        status=Status.ACTIVE,
        pending_since=None,
    )
    subject = f"Unsubscribe {unsubscribe_token.make_token(subscription.pk)}"

    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound(
            client, postmark_inbound(to=MAILTO.upper(), subject=subject, sender="Ann@example.org")
        )

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Status.UNSUBSCRIBED
