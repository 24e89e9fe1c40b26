"""Every reader-facing POST refuses a body over SIGNUP_MAX_BODY_BYTES with 413 before
anything parses it (CSRF included), whatever the URL and however the body is encoded;
a new view that takes POSTs cannot forget, since the URLconf is walked for them. The
one-click unsubscribe still takes its small form, urlencoded or multipart."""

import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from subscriptions.models import ConsentRecord, Subscriber, Subscription, SubscriptionEvent
from subscriptions.privacy.personal_data import PrivacyAction
from subscriptions.tokens import (
    confirmation_token,
    preferences_token,
    privacy_token,
    unsubscribe_token,
)
from tests.factories import NewsletterFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

THIRTY_MB = 30 * 1024 * 1024
BOUNDARY = "----newsroom-body-limits"
TOO_LARGE_FORM = "The form was too large to send."
# Not reader-facing, each with its own limit: the admin (Django's, and the import
# upload's IMPORT_MAX_UPLOAD_BYTES), ESP and Stripe webhooks (signed or authenticated
# before they are read), the health checks (GET only).
NOT_READER_FACING = (
    settings.ADMIN_URL,
    "anymail/",
    "webhooks/",
    "healthz/",
    "readyz/",
    "dev/",
)


@pytest.fixture
def urls() -> dict[str, str]:
    """Each reader-facing URL that takes a POST, by name, with a valid token."""
    newsletter = NewsletterFactory(slug="the-briefing", name="The Briefing")
    pending = SubscriptionFactory(newsletter=newsletter)
    active = SubscriptionFactory(newsletter=newsletter, status=Subscription.Status.ACTIVE)
    confirm = confirmation_token.make_token([pending.pk])
    preferences = preferences_token.make_token(active.subscriber_id)
    return {
        "signup": reverse("subscriptions:signup"),
        "embed_signup": reverse("subscriptions:embed_signup"),
        "confirm": reverse("subscriptions:confirm", args=[confirm]),
        "confirm_resend": reverse("subscriptions:confirm_resend", args=[confirm]),
        "unsubscribe": reverse(
            "subscriptions:unsubscribe", args=[unsubscribe_token.make_token(active.pk)]
        ),
        "preferences": reverse("subscriptions:preferences", args=[preferences]),
        "privacy_request": reverse("subscriptions:privacy_request", args=[preferences]),
        "privacy": reverse(
            "subscriptions:privacy",
            args=[privacy_token.make_token(active.subscriber_id, PrivacyAction.ERASE)],
        ),
        "api_create_subscription": reverse("subscriptions:api_create_subscription"),
    }


READER_POSTS = [
    "signup",
    "embed_signup",
    "confirm",
    "confirm_resend",
    "unsubscribe",
    "preferences",
    "privacy_request",
    "privacy",
    "api_create_subscription",
]


def _urlencoded() -> tuple[bytes, str]:
    # A valid form the size of an upload: what a view would act on, had it parsed it.
    body = b"List-Unsubscribe=One-Click&action=erase&email=ann%40example.org&pad="
    return body + b"a" * (THIRTY_MB - len(body)), "application/x-www-form-urlencoded"


def _multipart() -> tuple[bytes, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="upload"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    body = head + b"\x00" * (THIRTY_MB - len(head) - len(tail)) + tail
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def _json() -> tuple[bytes, str]:
    body = b'{"email": "ann@example.org", "newsletters": ["the-briefing"], "pad": "'
    return body + b"a" * (THIRTY_MB - len(body) - 2) + b'"}', "application/json"


@pytest.fixture(scope="module", params=["urlencoded", "multipart", "json"])
def big_body(request) -> Iterator[tuple[bytes, str]]:
    body, content_type = {"urlencoded": _urlencoded, "multipart": _multipart, "json": _json}[
        request.param
    ]()
    assert len(body) == THIRTY_MB
    yield body, content_type


def stored() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, SubscriptionEvent, ConsentRecord)
    }


@pytest.mark.parametrize("name", READER_POSTS)
def test_a_30_mb_body_to_each_reader_facing_post_answers_413_before_it_is_parsed(
    urls: dict[str, str], big_body: tuple[bytes, str], name: str
) -> None:
    """Enforced CSRF checks: had anything parsed the body, a missing token gets 403."""
    body, content_type = big_body
    before = stored()
    statuses = [s.status for s in Subscription.objects.order_by("pk")]

    response = Client(enforce_csrf_checks=True).post(
        urls[name], data=body, content_type=content_type
    )

    assert response.status_code == 413
    if name == "api_create_subscription":
        assert response.json() == {"errors": {"__all__": ["The request body is too large."]}}
    else:
        assert [t.name for t in response.templates][0] == "subscriptions/form_refused.html"
        assert TOO_LARGE_FORM in response.content.decode()
    assert stored() == before
    assert [s.status for s in Subscription.objects.order_by("pk")] == statuses


def test_every_reader_facing_view_that_takes_a_post_is_in_the_list_above(
    urls: dict[str, str],
) -> None:
    """A new view that takes POSTs fails here until it limits its body and the test
    above sends it 30 MB."""
    takes_post = set()
    for path in _sample_paths(get_resolver().url_patterns, prefix=""):
        if path.startswith(NOT_READER_FACING):
            continue
        response = Client().post("/" + path)
        if response.status_code == 405:
            continue
        match = resolve("/" + path)
        takes_post.add(match.url_name)
        assert getattr(match.func, "limits_body_size", False), match.url_name

    assert takes_post == set(READER_POSTS)


def _sample_paths(patterns: list, prefix: str) -> Iterator[str]:
    """Every route in the URLconf, with a placeholder for each parameter."""
    for pattern in patterns:
        route = re.sub(r"<int:\w+>", "1", str(pattern.pattern))
        route = re.sub(r"<(?:\w+:)?\w+>", "x", route)
        if isinstance(pattern, URLResolver):
            yield from _sample_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield prefix + route


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_the_one_click_unsubscribe_still_takes_its_small_form(encoding: str) -> None:
    active = SubscriptionFactory(status=Subscription.Status.ACTIVE)
    path = reverse("subscriptions:unsubscribe", args=[unsubscribe_token.make_token(active.pk)])
    client = Client(enforce_csrf_checks=True)
    if encoding == "urlencoded":
        response = client.post(
            path,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = client.post(path, data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    active.refresh_from_db()
    assert active.status == Subscription.Status.UNSUBSCRIBED
    assert SubscriptionEvent.objects.get(subscription=active, to_status="unsubscribed").detail == {
        "via": "one-click"
    }
