"""The ESP webhooks answer only for the providers this site uses, only with a secret in
production, and never with a 500 for a body they cannot read.

Every other provider's /anymail/<esp>/ URL answers 404; with DEBUG off and no
ANYMAIL_WEBHOOK_SECRET every event is refused and nothing is stored (so nobody can post
a bounce that suppresses an address); a body anymail cannot read answers 400 and stores
nothing, while an error of ours after the body was read stays a 5xx, which the ESP
retries.
"""

import json
import logging

import pytest
from anymail import urls as anymail_urls
from anymail.signals import tracking
from django.test import Client
from django.urls import reverse

from subscriptions.models import Subscription
from subscriptions.tokens import unsubscribe_token
from tests.esp_payloads import MAILGUN_SIGNING_KEY, WEBHOOK_SECRET, basic_auth, mailersend, mandrill
from tests.esp_payloads.amazon_ses import AmazonSES
from tests.esp_payloads.mailersend import MAILERSEND_SIGNING_SECRET
from tests.esp_payloads.mailgun import Mailgun
from tests.esp_payloads.mandrill import MANDRILL_WEBHOOK_KEY
from tests.esp_payloads.postmark import Postmark, postmark_inbound
from tests.esp_payloads.unisender_go import UNISENDER_GO_API_KEY
from tests.webhook_scene import Reader, make_reader, minutes_ago, world

pytestmark = [
    pytest.mark.django_db,
    # anymail says this on every SendGrid and SendinBlue request; not what is tested here.
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailDeprecationWarning"),
]

POSTMARK, MAILGUN, SES = Postmark(), Mailgun(), AmazonSES()
INBOUND_URL = "/anymail/postmark/inbound/"
MAILTO = "unsubscribe@news.example.org"

# Every webhook URL anymail has, e.g. /anymail/postmark/tracking/ and /anymail/mandrill/.
ROUTES = [reverse(f"anymail:{pattern.name}") for pattern in anymail_urls.urlpatterns]


def esp_of(url: str) -> str:
    return url.split("/")[2]


EVERY_ESP = sorted({esp_of(url) for url in ROUTES})


@pytest.fixture(autouse=True)
def _one_provider(settings):
    """Postmark sends this site's mail; nothing else is configured."""
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ESP_WEBHOOKS = []
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token", "WEBHOOK_SECRET": WEBHOOK_SECRET}
    settings.UNSUBSCRIBE_MAILTO = MAILTO


@pytest.fixture
def reader() -> Reader:
    return make_reader()


@pytest.fixture
def client() -> Client:
    """A client that sees a 500 as the ESP would, instead of the exception."""
    return Client(raise_request_exception=False)


def post_event(client: Client, kind: str, reader: Reader, *, auth: str | None = WEBHOOK_SECRET):
    """Postmark tells us Ann's address hard-bounced, or forwards her mail asking to
    unsubscribe from her active subscription."""
    if kind == "tracking":
        return POSTMARK.post(
            client, POSTMARK.hard_bounce(reader.email, reader.metadata, minutes_ago(1)), auth=auth
        )
    subject = f"unsubscribe {unsubscribe_token.make_token(reader.active.pk)}"
    return client.post(
        INBOUND_URL,
        data=json.dumps(postmark_inbound(to=MAILTO, subject=subject)),
        content_type="application/json",
        **basic_auth(auth),
    )


# --- only the configured providers ---------------------------------------------------------


@pytest.mark.parametrize("url", [url for url in ROUTES if esp_of(url) != "postmark"])
def test_the_webhooks_of_a_provider_that_is_not_configured_answer_404(url, client, reader):
    before = world()

    responses = [
        client.post(url, data=b"{}", content_type="application/json", **basic_auth(WEBHOOK_SECRET)),
        client.head(url),
        client.get(url),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    assert world() == before


@pytest.mark.parametrize("kind", ["tracking", "inbound"])
def test_the_provider_email_backend_names_has_its_webhooks(kind, client, reader):
    response = post_event(client, kind, reader)

    assert response.status_code == 200
    assert client.head(POSTMARK.tracking_url).status_code == 200


def test_esp_webhooks_adds_providers_and_leaves_every_other_one_404(
    client, reader, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.ESP_WEBHOOKS = ["mailgun", " Postmark"]  # as a hand-written list may come
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY}

    with django_capture_on_commit_callbacks(execute=False):
        mailgun = MAILGUN.post(
            client, MAILGUN.hard_bounce(reader.email, reader.metadata, minutes_ago(2))
        )
        postmark = post_event(client, "tracking", reader)
    before = world()
    ses = SES.post(client, SES.hard_bounce(reader.email, reader.metadata, minutes_ago(1)))

    assert (mailgun.status_code, postmark.status_code, ses.status_code) == (200, 200, 404)
    assert world() == before
    assert sorted(esp for esp, _, _ in before["delivery_events"]) == ["Mailgun", "Postmark"]


# --- the secret ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tracking", "inbound"])
@pytest.mark.parametrize("credentials", [None, "anyone:at-all"], ids=["no-auth", "any-auth"])
def test_without_a_webhook_secret_production_refuses_every_event_and_stores_nothing(
    kind, credentials, client, reader, settings, caplog, django_capture_on_commit_callbacks
):
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token"}
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_event(client, kind, reader, auth=credentials)

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": ["This webhook is not configured."]}}
    assert callbacks == []
    assert world() == before
    assert reader.statuses()["active"] == Subscription.Status.ACTIVE
    (logged,) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "ANYMAIL_WEBHOOK_SECRET is not set" in logged.getMessage()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning")
@pytest.mark.parametrize("kind", ["tracking", "inbound"])
def test_in_development_the_webhooks_work_without_a_secret(
    kind, client, reader, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token"}

    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, kind, reader, auth=None)

    assert response.status_code == 200
    expected = "bounced" if kind == "tracking" else "unsubscribed"
    assert reader.statuses()["active"] == expected


# --- bodies anymail cannot read ----------------------------------------------------------

BODIES = {
    "[]": b"[]",
    "{}": b"{}",
    '"x"': b'"x"',
    "null": b"null",
    '{"a": 1}': b'{"a": 1}',
    "not-json": b'{"RecordType": "Bounce", "Email": "ann@example.org"',
}
# What anymail reads as an empty batch (Mandrill checks a new webhook URL with one) or
# as an event of a type it does not know (so a provider's new kind of event is not
# retried for ever) is acknowledged, and changes nothing.
READ_AS_NOTHING = {
    "[]": {"mailjet/tracking", "sendgrid/tracking", "sparkpost/tracking", "sparkpost/inbound"}
    | {"mandrill", "mandrill/tracking"},
    "{}": {"postmark/tracking", "postmark/inbound", "brevo/tracking", "sendinblue/tracking"}
    | {"mailtrap/tracking", "mailtrap/inbound", "mailjet/inbound", "sendgrid/tracking"}
    | {"sparkpost/tracking", "sparkpost/inbound", "mandrill", "mandrill/tracking"},
    '{"a": 1}': {"postmark/tracking", "postmark/inbound", "brevo/tracking"}
    | {"sendinblue/tracking", "mailtrap/tracking", "mailtrap/inbound", "mailjet/inbound"},
}


def post_body(client: Client, url: str, body: bytes):
    """Post `body` authenticated as the provider would (signed where the provider signs
    something other than the body's own fields)."""
    esp = esp_of(url)
    if esp == "mandrill":
        return mandrill.post_events(client, url, body.decode())
    headers = basic_auth(WEBHOOK_SECRET)
    content_type = "application/json"
    if esp == "mailersend":
        headers["HTTP_SIGNATURE"] = mailersend.signature(body)
    elif esp == "amazon_ses":
        # SNS posts text/plain and names the message type in a header.
        content_type = "text/plain; charset=UTF-8"
        headers["HTTP_X_AMZ_SNS_MESSAGE_TYPE"] = "Notification"
    return client.post(url, data=body, content_type=content_type, **headers)


@pytest.mark.parametrize("url", ROUTES)
@pytest.mark.parametrize("body", list(BODIES))
def test_a_body_of_the_wrong_shape_answers_400_and_stores_nothing(
    url, body, client, reader, settings, django_capture_on_commit_callbacks
):
    settings.ESP_WEBHOOKS = EVERY_ESP
    settings.UNSUBSCRIBE_MAILTO = ""
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
        "MANDRILL_WEBHOOK_KEY": MANDRILL_WEBHOOK_KEY,
        "MAILERSEND_SIGNING_SECRET": MAILERSEND_SIGNING_SECRET,
        "MAILERSEND_INBOUND_SECRET": MAILERSEND_SIGNING_SECRET,
        "UNISENDER_GO_API_KEY": UNISENDER_GO_API_KEY,
        "POSTAL_WEBHOOK_KEY": "unused",
        # The inbound webhooks that fetch attachments want their API keys.
        **dict.fromkeys(["BREVO_API_KEY", "SENDINBLUE_API_KEY", "RESEND_API_KEY"], "key"),
        "MAILTRAP_API_TOKEN": "token",
    }
    before = world()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_body(client, url, BODIES[body])

    route = url.removeprefix("/anymail/").rstrip("/")
    expected = 200 if route in READ_AS_NOTHING.get(body, ()) else 400
    assert response.status_code == expected, response.content[:300]
    assert callbacks == []
    assert world() == before


def test_a_postmark_event_our_side_fails_to_store_is_a_5xx_for_the_provider_to_retry(
    client, reader
):
    def fail(**kwargs: object) -> None:
        # A ValueError, like a body anymail cannot read: it must not become a 400.
        raise ValueError("the database said no")

    tracking.connect(fail, dispatch_uid="test-failing-receiver")
    try:
        response = post_event(client, "tracking", reader)
    finally:
        tracking.disconnect(dispatch_uid="test-failing-receiver")

    assert response.status_code == 500
