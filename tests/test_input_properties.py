"""Property-based tests (hypothesis): arbitrary strings at the validator, arbitrary
bytes, JSON and form fields at the API and the HTML form. Whatever arrives, the answer
is never a server error and no row ever holds an address the validator refuses."""

import json
import string

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from subscriptions.models import ConsentRecord, OutboundEmail, Subscriber, Subscription
from subscriptions.signup.addresses import INVALID_EMAIL_MESSAGE, MAX_EMAIL_LENGTH, normalize_email
from tests.factories import NewsletterFactory, human_form_token

API = "/api/v1/subscriptions"
SLUG = "the-briefing"

# Each example reuses the test's database and client; rows accumulate across examples,
# so the properties below compare counts before and after each request.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a JSON body may hold, nested; text includes every Unicode category.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
# Near-miss addresses: ASCII pieces around an @, where most real mistakes live.
address_like = st.builds(
    "{}@{}".format,
    st.text(string.ascii_letters + string.digits + ".+-_ \"'\\@\r\n\t", max_size=70),
    st.text(string.ascii_letters + string.digits + ".-_[]: \r\n", max_size=70),
)


def rows() -> tuple[int, int, int, int]:
    return (
        Subscriber.objects.count(),
        Subscription.objects.count(),
        ConsentRecord.objects.count(),
        OutboundEmail.objects.count(),
    )


def every_stored_address_is_valid() -> bool:
    return all(
        normalize_email(email) == email
        for email in Subscriber.objects.values_list("email", flat=True)
    )


def post_api(client: Client, body: bytes):
    return client.post(API, data=body, content_type="application/json")


@pytest.fixture
def newsletter(db):
    return NewsletterFactory(slug=SLUG)


# --- the validator ---------------------------------------------------------------------


@given(st.text(max_size=300) | address_like)
@example("ann@example.org\r\nBcc: victim@example.net")
@example("ANN@Bücher.Example")
@settings(max_examples=1000, deadline=None)
def test_the_validator_either_refuses_with_the_message_or_returns_a_stable_safe_address(
    raw: str,
) -> None:
    try:
        address = normalize_email(raw)
    except ValidationError as exc:
        assert exc.messages == [INVALID_EMAIL_MESSAGE]
        return

    assert len(address) <= MAX_EMAIL_LENGTH
    assert address.isprintable()
    assert not any(ch.isspace() for ch in address)
    local, _, domain = address.rpartition("@")
    assert local and domain
    assert domain.isascii() and domain == domain.lower()
    assert normalize_email(address) == address


@given(
    st.sampled_from(["ann@example.org", "ann.lee+news@example.co.uk", "a@xn--bcher-kva.example"]),
    st.integers(min_value=0, max_value=40),
    st.characters(categories=["Cc", "Cf", "Zl", "Zp"]),
)
def test_a_control_or_format_character_anywhere_makes_a_good_address_invalid(
    address: str, position: int, bad: str
) -> None:
    position = min(position, len(address))
    with pytest.raises(ValidationError):
        normalize_email(address[:position] + bad + address[position:])


@given(st.binary(max_size=200) | st.integers() | st.lists(st.text()) | st.none())
def test_the_validator_refuses_anything_that_is_not_text(raw: object) -> None:
    with pytest.raises(ValidationError):
        normalize_email(raw)


# --- the JSON API ------------------------------------------------------------------------


@given(body=st.binary(max_size=2_000))
@FUZZ
def test_arbitrary_bytes_at_the_api_get_a_client_error_and_store_nothing(
    client, newsletter, body: bytes
) -> None:
    assume(not _is_json_object(body))
    before = rows()

    response = post_api(client, body)

    assert response.status_code == 400
    assert set(response.json()) == {"errors"}
    assert rows() == before


@given(payload=json_values)
@FUZZ
def test_arbitrary_json_at_the_api_is_never_a_server_error(client, newsletter, payload) -> None:
    before = rows()

    response = post_api(client, json.dumps(payload).encode())

    assert response.status_code in (202, 400, 413)
    if response.status_code != 202:
        assert set(response.json()) == {"errors"}
        assert rows() == before
    assert every_stored_address_is_valid()


@given(
    email=st.text(max_size=300) | address_like | st.emails() | json_values,
    extra=st.dictionaries(
        st.sampled_from(["page_url", "form_token", "website", "newsletters"]),
        json_values,
        max_size=2,
    ),
)
@FUZZ
def test_the_api_stores_an_address_exactly_when_the_validator_accepts_it(
    client, newsletter, email, extra
) -> None:
    payload = {"email": email, "newsletters": [SLUG], **extra}
    try:
        address = normalize_email(email)
    except ValidationError:
        address = None
    before = rows()

    response = post_api(client, json.dumps(payload).encode())

    assert response.status_code in (202, 400)
    if address is None:
        assert response.status_code == 400
        assert response.json()["errors"]["email"] == [INVALID_EMAIL_MESSAGE]
        assert rows() == before
    elif response.status_code == 202 and payload.get("website") in (None, ""):
        assert Subscriber.objects.filter(email__iexact=address).exists()
    else:
        # Another field was wrong (or the honeypot was filled): nothing new is stored.
        assert rows() == before
    assert every_stored_address_is_valid()


@given(newsletters=st.lists(st.text(max_size=30), max_size=4) | json_values)
@example(newsletters=["x\x00y"])
@example(newsletters=[SLUG, "\x00"])
@FUZZ
def test_any_newsletter_list_gets_a_field_error_or_a_sign_up_never_a_server_error(
    client, newsletter, newsletters
) -> None:
    before = rows()

    response = post_api(
        client, json.dumps({"email": "ann@example.org", "newsletters": newsletters}).encode()
    )

    if newsletters in ([SLUG], SLUG, [SLUG, SLUG]):
        assert response.status_code == 202
    else:
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"newsletters"}
        assert rows() == before


# --- the HTML form -------------------------------------------------------------------------

form_text = st.text(max_size=300)


@given(
    fields=st.dictionaries(
        st.sampled_from(["email", "newsletters", "website", "page_url", "form_token"]),
        form_text | st.lists(form_text, max_size=3),
        max_size=5,
    ),
    human=st.booleans(),
)
@example(fields={"email": "ann@example.org", "newsletters": "x\x00y"}, human=True)
@FUZZ
def test_arbitrary_form_fields_are_never_a_server_error(client, newsletter, fields, human) -> None:
    if human:
        fields.setdefault("form_token", human_form_token())
    before = rows()

    response = client.post("/subscribe/", fields)

    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert rows() == before
    assert every_stored_address_is_valid()


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):
        return False
