"""The web-facing promises: bounded and strictly parsed API input, escaped output
everywhere reader- or editor-supplied text appears, CSRF on every HTML form, CORS only
for the API and without credentials, security headers, HTTPS and secure cookies
outside DEBUG, a deploy check that passes, a movable and throttled admin, least-privilege
editors, and tokens that survive a key rotation."""

import importlib
import json
import os
import re
import runpy
import secrets
import string
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import axes.utils
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.test import Client
from django.urls import clear_url_caches, reverse
from django.utils import timezone

import newsroom.settings as project_settings
from newsroom import urls as root_urls
from subscriptions import tokens
from subscriptions.admin.roles import EDITOR_PERMISSIONS, EDITORS_GROUP
from subscriptions.mail.messages import build_message
from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.tokens import confirmation_token, preferences_token, unsubscribe_token
from tests.factories import (
    NewsletterFactory,
    SubscriptionFactory,
    human_form_token,
    with_form_token,
)

API = "/api/v1/subscriptions"
REPO_ROOT = Path(__file__).resolve().parent.parent
INVALID_EMAIL = {"errors": {"email": ["Please, enter correct email address"]}}
TOO_LARGE = {"errors": {"__all__": ["The request body is too large."]}}
NOT_JSON = {"errors": {"__all__": ["The body is not valid JSON."]}}
WRONG_TYPE = {"errors": {"__all__": ["Send a JSON body with Content-Type: application/json."]}}
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Logins here test throttling and permissions, not the hasher's cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing", name="The Briefing")


def post_json(client, payload: object, **extra):
    return client.post(
        API, data=json.dumps(with_form_token(payload)), content_type="application/json", **extra
    )


def stored() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, SubscriptionEvent, ConsentRecord, OutboundEmail)
    }


def assert_nothing_stored() -> None:
    assert set(stored().values()) == {0}


# --- input caps on the API --------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_the_cap_is_refused_before_it_is_parsed(client, settings, newsletter) -> None:
    assert settings.SIGNUP_MAX_BODY_BYTES == 16_384
    big_json = json.dumps(
        {"email": "ann@example.org", "newsletters": ["the-briefing"], "page_url": "x" * 17_000}
    )

    for body in (big_json, b"\x00garbage" * 2_100):
        response = client.post(API, data=body, content_type="application/json")
        assert response.status_code == 413
        assert response.json() == TOO_LARGE
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_body_of_exactly_the_cap_is_accepted(client, settings, newsletter) -> None:
    payload = with_form_token(
        {"email": "ann@example.org", "newsletters": ["the-briefing"], "page_url": ""}
    )
    padding = settings.SIGNUP_MAX_BODY_BYTES - len(json.dumps(payload).encode())
    payload["page_url"] = "https://news.example.org/" + "a" * (padding - 25)
    assert len(json.dumps(payload).encode()) == settings.SIGNUP_MAX_BODY_BYTES

    response = post_json(client, payload)

    assert response.status_code == 202
    assert len(ConsentRecord.objects.get().page_url) == 2000  # stored capped


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"email": "ann@example.org", "newsletters": ["the-briefing"]}'),
        ("application/x-www-form-urlencoded", "email=ann%40example.org&newsletters=the-briefing"),
        ("application/jsonp", '{"email": "ann@example.org", "newsletters": ["the-briefing"]}'),
    ],
)
def test_a_body_that_is_not_declared_json_is_refused(
    client, newsletter, content_type: str, body: str
) -> None:
    response = client.post(API, data=body, content_type=content_type)

    assert response.status_code == 400
    assert response.json() == WRONG_TYPE
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_multipart_body_is_refused(client, newsletter) -> None:
    response = client.post(API, {"email": "ann@example.org", "newsletters": "the-briefing"})

    assert response.status_code == 400
    assert response.json() == WRONG_TYPE
    assert_nothing_stored()


@pytest.mark.django_db
def test_json_with_a_charset_parameter_is_accepted(client, newsletter) -> None:
    response = client.post(
        API,
        data=json.dumps(
            with_form_token({"email": "ann@example.org", "newsletters": ["the-briefing"]})
        ),
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 202
    assert Subscriber.objects.get().email == "ann@example.org"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"email": "ann\xff@example.org", "newsletters": ["the-briefing"]}', NOT_JSON),
        (b"\xfe\xff\x00{", NOT_JSON),
        (b"", NOT_JSON),
        (b"{'email': 'ann@example.org'}", NOT_JSON),
        (b'{"email": 1' + b"1" * 5000 + b"}", NOT_JSON),  # past Python's int-digits limit
        (b"[" * 5000 + b"]" * 5000, NOT_JSON),  # past the parser's recursion limit
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, NOT_JSON),
        (b"[]", {"errors": {"__all__": ["Send a JSON object."]}}),
        (b'"ann@example.org"', {"errors": {"__all__": ["Send a JSON object."]}}),
        (b"null", {"errors": {"__all__": ["Send a JSON object."]}}),
    ],
    ids=[
        "invalid-utf8",
        "bom-garbage",
        "empty",
        "single-quotes",
        "huge-int",
        "deep-array",
        "deep-object",
        "array",
        "string",
        "null",
    ],
)
def test_a_body_that_is_not_a_json_object_gets_a_400_never_a_500(
    client, newsletter, body: bytes, expected: dict
) -> None:
    # CONTENT_TYPE spelled out: the test client leaves it off an empty body.
    response = client.post(
        API, data=body, content_type="application/json", CONTENT_TYPE="application/json"
    )

    assert response.status_code == 400
    assert response.json() == expected
    assert_nothing_stored()


# --- input caps on the form -------------------------------------------------------------

SIGNUP = reverse("subscriptions:signup")
FORM_TOO_LARGE = "The form was too large to send. Please sign up with just your email address."


def form_fields(**extra: str) -> dict[str, str]:
    return {
        "email": "ann@example.org",
        "newsletters": "the-briefing",
        "form_token": human_form_token(),
        **extra,
    }


def post_urlencoded(client, body: bytes | str, **extra):
    return client.post(SIGNUP, data=body, content_type="application/x-www-form-urlencoded", **extra)


def multipart(parts: list[tuple[dict[str, str], bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body from (headers, content) parts, and its content type."""
    boundary = "----newsroom-test-boundary"
    body = b"".join(
        f"--{boundary}\r\n".encode()
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
        + b"\r\n"
        + content
        + b"\r\n"
        for headers, content in parts
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def field(name: str, value: bytes, **headers: str) -> tuple[dict[str, str], bytes]:
    return {"Content-Disposition": f'form-data; name="{name}"', **headers}, value


def assert_refused_with_page(response, status: int, message: str) -> None:
    assert response.status_code == status
    assert [t.name for t in response.templates][0] == "subscriptions/form_refused.html"
    assert message in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_form_body_over_the_cap_gets_a_413_page(client, settings, newsletter) -> None:
    assert settings.SIGNUP_MAX_BODY_BYTES == 16_384
    urlencoded = urlencode(form_fields(page_url="https://x.example/" + "a" * 17_000))

    response = post_urlencoded(client, urlencoded)

    assert_refused_with_page(response, 413, FORM_TOO_LARGE)


@pytest.mark.django_db
def test_file_parts_count_towards_the_form_cap(client, newsletter) -> None:
    """Django's own cap (2.5 MB) leaves file parts out; ours counts the whole body."""
    body, content_type = multipart(
        [
            *(field(name, value.encode()) for name, value in form_fields().items()),
            (
                {
                    "Content-Disposition": 'form-data; name="upload"; filename="big.bin"',
                    "Content-Type": "application/octet-stream",
                },
                b"\x00" * 3_000_000,
            ),
        ]
    )

    response = client.post(SIGNUP, data=body, content_type=content_type)

    assert_refused_with_page(response, 413, FORM_TOO_LARGE)


@pytest.mark.django_db
def test_an_oversized_form_is_refused_before_the_csrf_check_parses_it(
    csrf_client, newsletter
) -> None:
    """Without a CSRF token the answer would be 403, had anything parsed the body."""
    response = post_urlencoded(csrf_client, "page_url=" + "a" * 20_000)

    assert_refused_with_page(response, 413, FORM_TOO_LARGE)


@pytest.mark.django_db
def test_a_form_body_of_exactly_the_cap_is_accepted(client, settings, newsletter) -> None:
    fields = form_fields(page_url="")
    padding = settings.SIGNUP_MAX_BODY_BYTES - len(urlencode(fields).encode())
    fields["page_url"] = "a" * padding
    body = urlencode(fields)
    assert len(body.encode()) == settings.SIGNUP_MAX_BODY_BYTES

    response = post_urlencoded(client, body)

    assert response.status_code == 302
    assert Subscriber.objects.get().email == "ann@example.org"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/json",
        "application/xml",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
        "",
    ],
)
def test_a_form_post_in_another_content_type_gets_a_400_page(
    client, newsletter, content_type: str
) -> None:
    response = client.post(
        SIGNUP,
        data=urlencode(form_fields()),
        content_type=content_type,
        CONTENT_TYPE=content_type,
    )

    assert response.status_code == 400
    assert [t.name for t in response.templates][0] == "subscriptions/form_refused.html"
    assert_nothing_stored()


INVALID_UTF8_FORMS = {
    "percent-escaped": lambda: post_form_body(urlencode(form_fields()) + "&page_url=%FF%FE"),
    "raw-bytes-urlencoded": lambda: post_form_body(
        urlencode(form_fields()).encode() + b"&page_url=\xff\xfe"
    ),
    "raw-bytes-multipart": lambda: post_multipart(
        [*form_parts(), field("page_url", b"https://x.example/\xff")]
    ),
    "base64-multipart": lambda: post_multipart(
        [*form_parts(), field("page_url", b"//79", **{"Content-Transfer-Encoding": "base64"})]
    ),
    "in-the-address": lambda: post_form_body(
        urlencode({**form_fields(), "email": "x"}).replace("email=x", "email=ann%C0%40example.org")
    ),
}


def post_form_body(body: bytes | str):
    return post_urlencoded(Client(), body)


def form_parts() -> list[tuple[dict[str, str], bytes]]:
    return [field(name, value.encode()) for name, value in form_fields().items()]


def post_multipart(parts: list[tuple[dict[str, str], bytes]]):
    body, content_type = multipart(parts)
    return Client().post(SIGNUP, data=body, content_type=content_type)


@pytest.mark.django_db
@pytest.mark.parametrize("send", list(INVALID_UTF8_FORMS.values()), ids=list(INVALID_UTF8_FORMS))
def test_invalid_utf8_in_the_form_gets_a_400_page_and_stores_nothing(newsletter, send) -> None:
    response = send()

    assert_refused_with_page(
        response, 400, "The form could not be read: it was not sent as UTF-8 text."
    )


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_form_with_non_ascii_utf8_is_accepted(newsletter, encoding: str) -> None:
    page_url = "https://news.example.org/статті/київ"
    if encoding == "urlencoded":
        response = post_form_body(urlencode(form_fields(page_url=page_url)))
    else:
        response = post_multipart([*form_parts(), field("page_url", page_url.encode())])

    assert response.status_code == 302
    assert ConsentRecord.objects.get().page_url == page_url


BAD_EMAILS = {
    "crlf-header-injection": "ann@example.org\r\nBcc: victim@example.net",
    "lf": "ann@example.org\n",
    "cr": "ann\r@example.org",
    "nul": "ann\x00@example.org",
    "tab": "ann@exa\tmple.org",
    "vertical-tab": "ann\x0b@example.org",
    "del": "ann\x7f@example.org",
    "escape": "\x1b[31mann@example.org",
    "rtl-override": "\u202eann@example.org",
    "rtl-override-domain": "ann@\u202egro.elpmaxe",
    "zero-width-space": "ann\u200b@example.org",
    "bom": "\ufeffann@example.org",
    "line-separator": "ann@example.org\u2028",
    "non-breaking-space": "ann\u00a0@example.org",
    "cyrillic-local-part": "\u0430nn@example.org",
    "huge": "a" * 9_988 + "@example.org",
    "just-over-254": "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example.org",
    "two-ats": "ann@bob@example.org",
    "integer": 123,
    "list": ["ann@example.org"],
    "object": {"email": "ann@example.org"},
    "null": None,
    "bool": True,
}


@pytest.mark.django_db
@pytest.mark.parametrize("email", list(BAD_EMAILS.values()), ids=list(BAD_EMAILS))
def test_a_bad_address_gets_the_one_message(client, newsletter, email) -> None:
    response = post_json(client, {"email": email, "newsletters": ["the-briefing"]})

    assert response.status_code == 400
    assert response.json() == INVALID_EMAIL
    assert_nothing_stored()
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_header_injection_through_the_form_is_refused_too(client, newsletter) -> None:
    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@example.org\r\nBcc: victim@example.net",
            "newsletters": "the-briefing",
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 400
    assert "Please, enter correct email address" in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_control_characters_in_the_consent_context_are_dropped_and_lengths_capped(
    client, newsletter
) -> None:
    response = post_json(
        client,
        {
            "email": "ann@example.org",
            "newsletters": ["the-briefing"],
            "page_url": "https://x.example/\x00a\r\nb" + "c" * 3000,
        },
        HTTP_USER_AGENT="Mozilla/5.0\x00\x1b[31m" + "u" * 600,
    )

    assert response.status_code == 202
    record = ConsentRecord.objects.get()
    assert record.page_url.startswith("https://x.example/abccc")
    assert len(record.page_url) == 2000
    assert record.user_agent.startswith("Mozilla/5.0[31muuu")
    assert len(record.user_agent) == 500


# --- stored XSS -------------------------------------------------------------------------


@pytest.fixture
def hostile(django_capture_on_commit_callbacks):
    """A newsletter an editor filled with markup, and a sign-up whose consent context
    (page URL, User-Agent) carries markup too."""
    newsletter = NewsletterFactory(
        slug="hostile",
        name=SCRIPT,
        description=f"Read {SCRIPT} daily",
        host_line=SCRIPT,
        welcome_message=SCRIPT,
    )
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            client,
            {"email": "ann@example.org", "newsletters": ["hostile"], "page_url": SCRIPT},
            HTTP_USER_AGENT=SCRIPT,
        )
    assert response.status_code == 202
    subscription = Subscription.objects.get()
    record = ConsentRecord.objects.get()
    # The markup really is stored, so the pages below have something to escape.
    assert (record.page_url, record.user_agent) == (SCRIPT, SCRIPT)
    return newsletter, subscription


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html
    assert "<script>alert" not in html
    assert ESCAPED_SCRIPT in html


@pytest.mark.django_db
def test_markup_is_escaped_on_every_reader_page(client, hostile) -> None:
    newsletter, subscription = hostile
    confirm = confirmation_token.make_token([subscription.pk])
    pages = [
        "/",
        "/newsletters/",
        f"/newsletters/{newsletter.slug}/",
        reverse("subscriptions:confirm", args=[confirm]),
        reverse(
            "subscriptions:preferences",
            args=[preferences_token.make_token(subscription.subscriber_id)],
        ),
        reverse("subscriptions:unsubscribe", args=[unsubscribe_token.make_token(subscription.pk)]),
    ]

    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.content.decode())


@pytest.mark.django_db
def test_markup_is_escaped_in_the_admin(admin_client, hostile) -> None:
    newsletter, subscription = hostile
    pages = [
        reverse("admin:subscriptions_subscription_change", args=[subscription.pk]),
        reverse("admin:subscriptions_subscriber_change", args=[subscription.subscriber_id]),
        reverse("admin:subscriptions_subscription_changelist"),
        reverse("admin:subscriptions_newsletter_changelist"),
    ]

    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.content.decode())


@pytest.mark.django_db
def test_an_address_echoed_on_the_error_page_is_escaped(client, newsletter) -> None:
    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": f'"><{SCRIPT}',
            "newsletters": "the-briefing",
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert SCRIPT not in page
    assert f"&quot;&gt;&lt;{ESCAPED_SCRIPT}" in page


@pytest.mark.django_db
def test_markup_is_escaped_in_the_html_of_confirmation_and_welcome_emails(
    client, hostile, django_capture_on_commit_callbacks
) -> None:
    newsletter, subscription = hostile
    token = confirmation_token.make_token([subscription.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("subscriptions:confirm", args=[token])).status_code == 200

    kinds = set()
    for outbound in OutboundEmail.objects.all():
        message = build_message(outbound)
        ((html, mimetype),) = message.alternatives
        assert mimetype == "text/html"
        assert_escaped(html)
        # Plain text is not HTML: the name shows as typed there, entities would be noise.
        assert SCRIPT in message.body
        kinds.add(outbound.kind)
    assert kinds == {OutboundEmail.Kind.CONFIRMATION, OutboundEmail.Kind.WELCOME}


# --- CSRF -------------------------------------------------------------------------------


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.mark.django_db
def test_the_signup_form_needs_its_csrf_token(csrf_client, newsletter) -> None:
    fields = {
        "email": "ann@example.org",
        "newsletters": "the-briefing",
        "form_token": human_form_token(),
    }

    refused = csrf_client.post(reverse("subscriptions:signup"), fields)
    assert refused.status_code == 403
    assert_nothing_stored()

    page = csrf_client.get("/newsletters/").content.decode()
    (token,) = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    accepted = csrf_client.post(
        reverse("subscriptions:signup"), {**fields, "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 302
    assert Subscriber.objects.get().email == "ann@example.org"


@pytest.mark.django_db
def test_confirm_resend_and_preferences_refuse_a_post_without_csrf_token(
    csrf_client, newsletter
) -> None:
    subscription = SubscriptionFactory(newsletter=newsletter)
    other = NewsletterFactory(slug="weekend-reads")
    confirm = confirmation_token.make_token([subscription.pk])
    preferences = preferences_token.make_token(subscription.subscriber_id)

    posts = [
        (reverse("subscriptions:confirm", args=[confirm]), {}),
        (reverse("subscriptions:confirm_resend", args=[confirm]), {}),
        (
            reverse("subscriptions:preferences", args=[preferences]),
            {"newsletters": [newsletter.pk, other.pk]},
        ),
    ]
    for url, data in posts:
        assert csrf_client.post(url, data).status_code == 403, url

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PENDING
    assert Subscription.objects.count() == 1
    assert OutboundEmail.objects.count() == 0
    assert SubscriptionEvent.objects.count() == 0


@pytest.mark.django_db
def test_one_click_unsubscribe_needs_no_csrf_token(csrf_client, newsletter) -> None:
    """RFC 8058 §3.1: the mailbox provider POSTs without cookies or a CSRF token."""
    subscription = SubscriptionFactory(newsletter=newsletter, status=Subscription.Status.ACTIVE)
    url = reverse("subscriptions:unsubscribe", args=[unsubscribe_token.make_token(subscription.pk)])

    response = csrf_client.post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.UNSUBSCRIBED


@pytest.mark.django_db
def test_the_json_api_needs_no_cookies_or_csrf_token(csrf_client, newsletter) -> None:
    response = post_json(csrf_client, {"email": "ann@example.org", "newsletters": ["the-briefing"]})

    assert response.status_code == 202
    assert Subscriber.objects.get().email == "ann@example.org"


# --- CORS -------------------------------------------------------------------------------

PARTNER = "https://partner.example"


@pytest.fixture
def partner(settings) -> str:
    settings.CORS_ALLOWED_ORIGINS = [PARTNER]
    return PARTNER


@pytest.mark.django_db
def test_a_preflight_from_an_allowed_origin_may_post_json(client, partner) -> None:
    response = client.options(
        API,
        HTTP_ORIGIN=partner,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == partner
    assert "POST" in [m.strip() for m in response["Access-Control-Allow-Methods"].split(",")]
    assert "content-type" in [
        h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")
    ]
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.django_db
def test_a_post_from_an_allowed_origin_gets_the_header_without_credentials(
    client, partner, newsletter
) -> None:
    response = post_json(
        client, {"email": "ann@example.org", "newsletters": ["the-briefing"]}, HTTP_ORIGIN=partner
    )

    assert response.status_code == 202
    assert response["Access-Control-Allow-Origin"] == partner
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.django_db
def test_other_origins_and_other_paths_get_no_cors_header(client, partner, newsletter) -> None:
    evil_post = post_json(
        client,
        {"email": "ann@example.org", "newsletters": ["the-briefing"]},
        HTTP_ORIGIN="https://evil.example",
    )
    evil_preflight = client.options(
        API, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    page = client.get("/newsletters/", HTTP_ORIGIN=partner)
    preflight_on_form = client.options(
        reverse("subscriptions:signup"),
        HTTP_ORIGIN=partner,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )

    for response in (evil_post, evil_preflight, page, preflight_on_form):
        assert "Access-Control-Allow-Origin" not in response
        assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.django_db
def test_the_api_sets_no_cookies_even_when_the_request_sends_some(
    client, admin_user, newsletter
) -> None:
    client.cookies["sessionid"] = secrets.token_hex(16)
    client.cookies["csrftoken"] = secrets.token_hex(16)
    anonymous = post_json(client, {"email": "ann@example.org", "newsletters": ["the-briefing"]})

    logged_in = Client()
    logged_in.force_login(admin_user)
    as_admin = post_json(logged_in, {"email": "bob@example.org", "newsletters": ["the-briefing"]})

    assert (anonymous.status_code, as_admin.status_code) == (202, 202)
    assert not anonymous.cookies
    assert not as_admin.cookies
    assert "Set-Cookie" not in anonymous
    assert "Vary" not in anonymous or "Cookie" not in anonymous["Vary"]


# --- headers, HTTPS, cookies ------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (
            part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()
        )
    }


@pytest.mark.django_db
def test_pages_carry_the_security_headers(client, newsletter) -> None:
    response = client.get("/")

    assert response.status_code == 200
    csp = csp_directives(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["base-uri"] == ["'self'"]
    for directive in ("script-src", "style-src", "default-src"):
        assert "'unsafe-inline'" not in csp[directive]
        assert "'unsafe-eval'" not in csp[directive]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_pages_have_no_inline_scripts_or_styles_the_policy_would_block(client, newsletter) -> None:
    NewsletterFactory(slug="weekend-reads")
    for url in ("/", "/newsletters/", "/newsletters/the-briefing/"):
        page = client.get(url).content.decode()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == [], url
        assert "<style" not in page
        assert not re.search(r"\son[a-z]+=", page), url  # onclick= and friends
        assert " style=" not in page, url


@pytest.mark.django_db
def test_the_api_answers_with_nosniff_and_json(client, newsletter) -> None:
    response = post_json(client, {"email": "nope", "newsletters": ["the-briefing"]})

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_and_https_gets_hsts(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True

    insecure = client.get("/newsletters/?page=2")
    secure = client.get("/newsletters/", secure=True)

    assert insecure.status_code == 301
    assert insecure["Location"] == "https://testserver/newsletters/?page=2"
    assert secure.status_code == 200
    assert settings.SECURE_HSTS_SECONDS == 31_536_000
    assert secure["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in insecure


def test_https_and_secure_cookies_are_on_by_default_outside_debug() -> None:
    assert project_settings.DEBUG is False
    assert project_settings.SECURE_SSL_REDIRECT is True
    assert project_settings.SESSION_COOKIE_SECURE is True
    assert project_settings.CSRF_COOKIE_SECURE is True
    assert project_settings.SESSION_COOKIE_HTTPONLY is True
    assert project_settings.SECURE_HSTS_SECONDS == 31_536_000


SECURITY_DEFAULTS = (
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
)


@pytest.mark.parametrize(("debug", "on"), [("false", True), ("true", False)])
def test_the_secure_defaults_follow_debug(monkeypatch, debug: str, on: bool) -> None:
    for name in SECURITY_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEBUG", debug)

    loaded = runpy.run_path(project_settings.__file__)

    assert [bool(loaded[name]) for name in SECURITY_DEFAULTS] == [on] * 4


@pytest.mark.django_db
def test_the_csrf_and_session_cookies_are_sent_secure(client, newsletter) -> None:
    page = client.get("/newsletters/")
    csrf_cookie = page.cookies["csrftoken"]
    assert csrf_cookie["secure"] is True
    assert csrf_cookie["samesite"] == "Lax"

    User.objects.create_user("editor", password="a long enough secret", is_staff=True)
    login = client.post(
        reverse("admin:login"), {"username": "editor", "password": "a long enough secret"}
    )
    assert login.status_code == 302
    session_cookie = login.cookies["sessionid"]
    assert session_cookie["secure"] is True
    assert session_cookie["httponly"] is True


# --- the deploy check -------------------------------------------------------------------

_NOT_PASSED_THROUGH = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "DATABASE_URL",
    "ANYMAIL",
    "SECURE_",
    "SESSION_COOKIE_",
    "CSRF_",
    "TRUSTED_PROXY",
    "SIGNUP_CHALLENGE",
)


def production_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    secret_key = "".join(secrets.choice(alphabet) for _ in range(64))
    environment = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_PASSED_THROUGH)}
    environment.update(
        DEBUG="false",
        SECRET_KEY=secret_key,
        ALLOWED_HOSTS="news.example.org",
        SITE_URL="https://news.example.org",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3",
        **overrides,
    )
    return environment


def deploy_check(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_deploy_check_passes_with_a_production_environment(tmp_path: Path) -> None:
    result = deploy_check(production_environment(tmp_path, ANYMAIL_WEBHOOK_SECRET="hook:secret"))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "System check identified no issues" in output


def test_the_deploy_check_fails_without_a_webhook_secret(tmp_path: Path) -> None:
    environment = production_environment(
        tmp_path, EMAIL_BACKEND="anymail.backends.postmark.EmailBackend"
    )

    result = deploy_check(environment)

    assert result.returncode != 0
    assert "(subscriptions.E004) ANYMAIL_WEBHOOK_SECRET is not set" in result.stderr


# --- the admin --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_is_served_only_at_admin_url(client, settings) -> None:
    original = settings.ADMIN_URL
    settings.ADMIN_URL = "staff-only-7f3/"
    try:
        importlib.reload(root_urls)
        clear_url_caches()
        index = client.get("/staff-only-7f3/")
        login = client.get("/staff-only-7f3/login/")
        old_index = client.get("/admin/")
        old_login = client.get("/admin/login/")
    finally:
        settings.ADMIN_URL = original
        importlib.reload(root_urls)
        clear_url_caches()

    assert index.status_code == 302
    assert index["Location"].startswith("/staff-only-7f3/login/")
    assert login.status_code == 200
    assert "admin/login.html" in [t.name for t in login.templates]
    assert (old_index.status_code, old_login.status_code) == (404, 404)
    assert reverse("admin:index") == "/admin/"  # restored for the tests that follow


PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff_user(db) -> User:
    axes.utils.reset()
    yield User.objects.create_user("editor", password=PASSWORD, is_staff=True)
    axes.utils.reset()


def admin_login(client: Client, password: str, ip: str = "203.0.113.5"):
    return client.post(
        reverse("admin:login"),
        {"username": "editor", "password": password, "next": reverse("admin:index")},
        REMOTE_ADDR=ip,
    )


def test_admin_logins_are_locked_after_repeated_failures(client, settings, staff_user) -> None:
    assert settings.AXES_FAILURE_LIMIT == 5

    failures = [admin_login(client, "wrong password").status_code for _ in range(5)]
    locked = admin_login(client, PASSWORD)

    assert failures[:4] == [200] * 4  # the login form again, with its error
    assert failures[4] == 429  # the fifth failure reaches the limit
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session

    elsewhere = Client()
    other_ip = admin_login(elsewhere, PASSWORD, ip="198.51.100.20")
    assert other_ip.status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(staff_user.pk)


def test_a_successful_login_resets_the_failure_count(client, staff_user) -> None:
    for _ in range(4):
        assert admin_login(client, "wrong password").status_code == 200
    assert admin_login(client, PASSWORD).status_code == 302

    client.logout()
    for _ in range(4):
        assert admin_login(client, "wrong password").status_code == 200
    assert admin_login(client, PASSWORD).status_code == 302


# --- editors: least privilege -----------------------------------------------------------

SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")


def expected_editor_codenames() -> set[str]:
    return {
        f"{action}_{model}" for model, actions in EDITOR_PERMISSIONS.items() for action in actions
    }


@pytest.fixture
def editor(db) -> User:
    user = User.objects.create_user("ed", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=EDITORS_GROUP))
    return user


def action_names(response) -> set[str]:
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


@pytest.mark.django_db
def test_the_editors_group_holds_exactly_the_listed_permissions() -> None:
    group = Group.objects.get(name=EDITORS_GROUP)

    granted = {
        (p.content_type.app_label, p.codename)
        for p in group.permissions.select_related("content_type")
    }

    assert granted == {("subscriptions", codename) for codename in expected_editor_codenames()}
    assert not any(codename.startswith("delete_subscriber") for _, codename in granted)


def test_an_editor_can_list_and_export_subscribers_but_not_delete_them(client, editor) -> None:
    subscription = SubscriptionFactory(subscriber__email="ann@example.org")
    client.force_login(editor)

    changelist = client.get(SUBSCRIBERS)
    assert changelist.status_code == 200
    assert action_names(changelist) == {"resend_confirmation", "unsubscribe_from_all", "export_csv"}

    export = client.post(
        SUBSCRIBERS,
        {"action": "export_csv", "_selected_action": [subscription.subscriber_id], "index": "0"},
    )
    assert export.status_code == 200
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    assert "ann@example.org" in b"".join(export.streaming_content).decode()

    delete = client.post(
        SUBSCRIBERS,
        {
            "action": "delete_selected",
            "_selected_action": [subscription.subscriber_id],
            "post": "yes",
            "index": "0",
        },
    )
    assert delete.status_code in (200, 302)
    assert Subscriber.objects.filter(pk=subscription.subscriber_id).exists()
    delete_page = reverse(
        "admin:subscriptions_subscriber_delete", args=[subscription.subscriber_id]
    )
    assert client.post(delete_page, {"post": "yes"}).status_code == 403
    assert Subscriber.objects.filter(pk=subscription.subscriber_id).exists()


def test_an_editor_cannot_manage_users(client, editor) -> None:
    client.force_login(editor)

    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 403


def test_a_view_only_user_gets_no_actions_that_change_subscribers(client, db) -> None:
    viewer = User.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="subscriptions", codename="view_subscriber")
    )
    subscription = SubscriptionFactory(status=Subscription.Status.ACTIVE)
    client.force_login(viewer)

    changelist = client.get(SUBSCRIBERS)
    assert changelist.status_code == 200
    assert action_names(changelist) == {"export_csv"}

    client.post(
        SUBSCRIBERS,
        {
            "action": "unsubscribe_from_all",
            "_selected_action": [subscription.subscriber_id],
            "index": "0",
        },
    )
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert SubscriptionEvent.objects.count() == 0


# --- tokens -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_preferences_link_survives_a_secret_key_rotation(client, settings) -> None:
    subscription = SubscriptionFactory(subscriber__email="ann@example.org")
    old_key = "old-" + secrets.token_urlsafe(48)
    settings.SECRET_KEY = old_key
    url = reverse(
        "subscriptions:preferences", args=[preferences_token.make_token(subscription.subscriber_id)]
    )

    settings.SECRET_KEY = "new-" + secrets.token_urlsafe(48)
    settings.SECRET_KEY_FALLBACKS = [old_key]
    rotated = client.get(url)
    assert rotated.status_code == 200
    # The page names the address without showing it to whoever holds the link.
    assert "a***@example.org" in rotated.content.decode()

    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(url).status_code == 400  # it was the fallback that kept it working


@pytest.mark.django_db
def test_a_confirmation_link_expires_after_the_configured_days(
    client, settings, monkeypatch
) -> None:
    assert settings.CONFIRMATION_TOKEN_MAX_AGE_DAYS == 7
    subscription = SubscriptionFactory()
    url = reverse("subscriptions:confirm", args=[confirmation_token.make_token([subscription.pk])])
    issued = timezone.now()

    monkeypatch.setattr(tokens, "_now", lambda: issued + timedelta(days=7) - timedelta(minutes=1))
    assert client.get(url).status_code == 200

    monkeypatch.setattr(tokens, "_now", lambda: issued + timedelta(days=7, minutes=1))
    expired = client.get(url)
    assert expired.status_code == 410
    assert "subscriptions/confirm_expired.html" in [t.name for t in expired.templates]
    assert client.post(url).status_code == 410
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PENDING
    assert subscription.confirmed_at is None
