"""Every ESP's soft bounces are counted and its hard bounces suppress at once, whatever
anymail calls them: several providers' soft bounces reach us as anymail's `bounced`,
and only the provider's own payload tells them apart (subscriptions/deliverability/esp_rules.py).

Each case posts a provider's payload to its real webhook URL with the basic-auth secret
(and the provider's signature where it signs), and runs what the request queued.
"""

import pytest
from anymail.signals import tracking
from anymail.webhooks.postal import PostalTrackingWebhookView
from django.test import RequestFactory

from subscriptions.models import DeliveryEvent, Subscription, SuppressedAddress
from tests.esp_payloads import ESP, WEBHOOK_SECRET
from tests.esp_payloads.amazon_ses import AmazonSES
from tests.esp_payloads.brevo import Brevo
from tests.esp_payloads.mailersend import MAILERSEND_SIGNING_SECRET, MailerSend
from tests.esp_payloads.mailjet import Mailjet
from tests.esp_payloads.mailtrap import Mailtrap
from tests.esp_payloads.mandrill import MANDRILL_WEBHOOK_KEY, Mandrill
from tests.esp_payloads.postal import Postal
from tests.esp_payloads.postmark import Postmark
from tests.esp_payloads.resend import Resend
from tests.esp_payloads.sendgrid import SendGrid
from tests.esp_payloads.sparkpost import SparkPost
from tests.esp_payloads.unisender_go import UNISENDER_GO_API_KEY, UnisenderGo
from tests.webhook_scene import Reader, make_reader, minutes_ago, post_processed, world

pytestmark = [
    pytest.mark.django_db,
    # anymail 15 no longer tests its SendGrid integration and says so on every request;
    # the webhook itself works as before.
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

Status = Subscription.Status
Kind = DeliveryEvent.Kind
BREVO, MAILERSEND, MAILJET, MANDRILL = Brevo(), MailerSend(), Mailjet(), Mandrill()
POSTMARK, RESEND, SENDGRID, SPARKPOST = Postmark(), Resend(), SendGrid(), SparkPost()
SES = AmazonSES()
# anymail itself already reports these two providers' soft bounces as `deferred`.
MAILTRAP, UNISENDER_GO = Mailtrap(), UnisenderGo()

SOFT_BOUNCES = [
    (BREVO, "soft_bounce"),
    (MAILERSEND, "soft_bounce"),
    (MAILJET, "soft_bounce"),
    (MAILTRAP, "soft_bounce"),
    (MANDRILL, "soft_bounce"),
    (POSTMARK, "virus_notification"),
    (RESEND, "soft_bounce"),
    (RESEND, "undetermined_bounce"),
    (SENDGRID, "soft_bounce"),
    (SPARKPOST, "soft_bounce"),
    (SPARKPOST, "spam_block"),
    (UNISENDER_GO, "soft_bounce"),
]
HARD_BOUNCES = [
    (BREVO, "hard_bounce"),
    (BREVO, "invalid_email"),
    (MAILERSEND, "hard_bounce"),
    (MAILJET, "hard_bounce"),
    (MAILTRAP, "hard_bounce"),
    (MANDRILL, "hard_bounce"),
    (RESEND, "hard_bounce"),
    (RESEND, "hard_bounce_without_a_type"),
    (SENDGRID, "hard_bounce"),
    (SPARKPOST, "hard_bounce"),
    (SPARKPOST, "admin_failure"),
    (SPARKPOST, "out_of_band_hard_bounce"),
    (UNISENDER_GO, "hard_bounce"),
]


def case_id(value: object) -> str:
    return value.name if isinstance(value, ESP) else str(value)


@pytest.fixture(autouse=True)
def _anymail_settings(settings):
    # The providers these tests post to (conftest sends mail with anymail's test backend).
    settings.ESP_WEBHOOKS = [
        "amazon_ses",
        "brevo",
        "mailersend",
        "mailjet",
        "mailtrap",
        "mandrill",
        "postmark",
        "resend",
        "sendgrid",
        "sparkpost",
        "unisender_go",
    ]
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MANDRILL_WEBHOOK_KEY": MANDRILL_WEBHOOK_KEY,
        "MAILERSEND_SIGNING_SECRET": MAILERSEND_SIGNING_SECRET,
        "UNISENDER_GO_API_KEY": UNISENDER_GO_API_KEY,
        # anymail's Postal view wants its public key set, though only the signature
        # check (not run here, see below) reads it.
        "POSTAL_WEBHOOK_KEY": "unused",
    }
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.SOFT_BOUNCE_WINDOW_DAYS = 30


@pytest.fixture
def reader() -> Reader:
    return make_reader()


@pytest.mark.parametrize(("esp", "bounce"), SOFT_BOUNCES, ids=case_id)
def test_a_bounce_the_provider_calls_soft_is_counted_without_suppressing(
    esp, bounce, client, reader, django_capture_on_commit_callbacks
):
    payload = getattr(esp, bounce)(reader.email, reader.metadata, minutes_ago(5))

    post_processed(esp, client, payload, django_capture_on_commit_callbacks)

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (esp.name, Kind.SOFT_BOUNCE, reader.email)
    assert event.processed_at is not None
    assert not SuppressedAddress.objects.exists()
    assert reader.statuses() == {"active": "active", "pending": "pending", "ended": "unsubscribed"}


@pytest.mark.parametrize(("esp", "bounce"), HARD_BOUNCES, ids=case_id)
def test_a_bounce_the_provider_calls_hard_suppresses_the_address_at_once(
    esp, bounce, client, reader, django_capture_on_commit_callbacks
):
    payload = getattr(esp, bounce)(reader.email, reader.metadata, minutes_ago(5))

    post_processed(esp, client, payload, django_capture_on_commit_callbacks)

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (esp.name, Kind.HARD_BOUNCE, reader.email)
    entry = SuppressedAddress.objects.get()
    assert (entry.email, entry.reason, entry.source_event) == (
        reader.email,
        SuppressedAddress.Reason.HARD_BOUNCE,
        event,
    )
    assert reader.statuses() == {"active": "bounced", "pending": "bounced", "ended": "unsubscribed"}


@pytest.mark.parametrize(
    "esp",
    [BREVO, MAILERSEND, MAILJET, MAILTRAP, MANDRILL, RESEND, SENDGRID, SPARKPOST, UNISENDER_GO],
    ids=case_id,
)
def test_three_soft_bounces_in_a_row_suppress_the_address_with_every_provider(
    esp, client, reader, django_capture_on_commit_callbacks
):
    # Brevo, Mailjet, Mandrill and Unisender Go send no event id: each bounce must still
    # count once.
    for minutes in (50, 40):
        post_processed(
            esp,
            client,
            esp.soft_bounce(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )
    assert not SuppressedAddress.objects.exists()

    post_processed(
        esp,
        client,
        esp.soft_bounce(reader.email, reader.metadata, minutes_ago(30)),
        django_capture_on_commit_callbacks,
    )

    assert DeliveryEvent.objects.filter(kind=Kind.SOFT_BOUNCE).count() == 3
    third = DeliveryEvent.objects.order_by("occurred_at").last()
    entry = SuppressedAddress.objects.get()
    assert (entry.reason, entry.source_event) == (SuppressedAddress.Reason.SOFT_BOUNCES, third)
    assert reader.statuses()["active"] == Status.BOUNCED


@pytest.mark.parametrize(
    ("bounce", "kind", "suppressed"),
    [("hard_bounce", Kind.HARD_BOUNCE, True), ("soft_bounce", Kind.SOFT_BOUNCE, False)],
)
def test_postals_hard_fail_suppresses_and_its_soft_fail_is_counted(
    bounce, kind, suppressed, reader, django_capture_on_commit_callbacks
):
    # Postal signs its webhooks with RSA, and anymail checks that with the `cryptography`
    # package, which this project does not install; so this runs anymail's own Postal
    # parser on the payload and sends its events through the tracking signal, as the
    # webhook view does once the signature is good.
    payload = getattr(Postal(), bounce)(reader.email, reader.metadata, minutes_ago(5))
    request = RequestFactory().post(Postal.tracking_url, payload, content_type="application/json")
    view = PostalTrackingWebhookView()

    with django_capture_on_commit_callbacks(execute=True):
        for event in view.parse_events(request):
            tracking.send(sender=PostalTrackingWebhookView, event=event, esp_name="Postal")

    stored = DeliveryEvent.objects.get()
    assert (stored.esp, stored.kind, stored.recipient) == ("Postal", kind, reader.email)
    assert SuppressedAddress.objects.filter(email=reader.email).exists() is suppressed
    assert reader.statuses()["active"] == (Status.BOUNCED if suppressed else Status.ACTIVE)


def test_an_ses_delivery_delay_counts_as_a_soft_bounce_for_the_delayed_recipient_only(
    client, reader, django_capture_on_commit_callbacks
):
    # Bob was another destination of the same message, and was not delayed.
    payload = SES.delivery_delay(
        reader.email, reader.metadata, minutes_ago(5), also_to=("bob@example.org",)
    )

    post_processed(SES, client, payload, django_capture_on_commit_callbacks)

    event = DeliveryEvent.objects.get()
    assert (event.esp, event.kind, event.recipient) == (SES.name, Kind.SOFT_BOUNCE, reader.email)
    assert event.description == "DeliveryDelay: MailboxFull"
    assert event.mta_response.startswith("smtp; 452 4.2.2")
    assert event.outbound_email_id == reader.welcome_email.pk
    assert not SuppressedAddress.objects.exists()
    assert reader.statuses()["active"] == Status.ACTIVE


def test_three_ses_delivery_delays_in_a_row_suppress_the_address(
    client, reader, django_capture_on_commit_callbacks
):
    for minutes in (50, 40, 30):
        post_processed(
            SES,
            client,
            SES.delivery_delay(reader.email, reader.metadata, minutes_ago(minutes)),
            django_capture_on_commit_callbacks,
        )

    assert DeliveryEvent.objects.filter(kind=Kind.SOFT_BOUNCE).count() == 3
    assert SuppressedAddress.objects.get().reason == SuppressedAddress.Reason.SOFT_BOUNCES
    assert reader.statuses()["active"] == Status.BOUNCED


@pytest.mark.parametrize("delay_type", ["InternalFailure", "SendingDeferral"])
def test_an_ses_delivery_delay_inside_ses_itself_is_not_held_against_the_address(
    delay_type, client, reader, django_capture_on_commit_callbacks
):
    before = world()
    payload = SES.delivery_delay(
        reader.email, reader.metadata, minutes_ago(5), delay_type=delay_type
    )

    post_processed(SES, client, payload, django_capture_on_commit_callbacks)

    assert world() == before
