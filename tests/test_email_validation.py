"""The product's promise about addresses: every bad address gets the one message,
everywhere, and stores nothing; unusual good addresses are accepted and stored in one
normalised form; DNS is consulted only when the setting asks for it.

The invalid table was checked against email-validator 2.4.0's real behaviour.
"""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from email_validator import EmailUndeliverableError
from email_validator import deliverability as email_deliverability

from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup.addresses import email_normalizer, normalize_email
from tests.factories import NewsletterFactory, human_form_token, with_form_token

MESSAGE = "Please, enter correct email address"
API_URL = "/api/v1/subscriptions"

# 64 + 1 + 63 + 1 + 63 + 1 + 57 + 4 = 254 characters: the longest address we take,
# and the same shape one character longer.
LONGEST_ADDRESS = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org"
ONE_TOO_LONG = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".org"

INVALID_ADDRESSES = [
    pytest.param("a" * 65 + "@example.org", id="local-part-over-64"),
    pytest.param("ann.example.org", id="missing-at"),
    pytest.param("ann@bob@example.org", id="two-at-signs"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="only-spaces"),
    pytest.param("ann smith@example.org", id="space-in-local-part"),
    pytest.param("ann@exa mple.org", id="space-in-domain"),
    pytest.param(".ann@example.org", id="leading-dot-in-local-part"),
    pytest.param("ann.@example.org", id="trailing-dot-in-local-part"),
    pytest.param("ann..smith@example.org", id="double-dot-in-local-part"),
    pytest.param("ann@example..org", id="double-dot-in-domain"),
    pytest.param("ann@.example.org", id="leading-dot-in-domain"),
    pytest.param("ann@example.org.", id="trailing-dot-on-domain"),
    pytest.param("a@example.org\r\nBcc: x@y.org", id="crlf-header-injection"),
    pytest.param("a@example.org\n", id="trailing-newline"),
    pytest.param("ann\t@example.org", id="tab"),
    pytest.param("ann@example.org\t", id="trailing-tab"),
    pytest.param("ann\x00@example.org", id="nul-byte"),
    pytest.param("a" * 288 + "@example.org", id="300-characters"),
    pytest.param(ONE_TOO_LONG, id="255-characters"),
    pytest.param("ann@" + "b" * 64 + ".org", id="domain-label-over-63"),
    pytest.param("пошта@example.org", id="unicode-local-part-without-smtputf8"),
    pytest.param("ann😀@example.org", id="emoji-in-local-part"),
    pytest.param("ann@😀.org", id="emoji-domain"),
    pytest.param("ann\u200b@example.org", id="zero-width-space"),
    pytest.param("\ufeffann@example.org", id="byte-order-mark"),
    pytest.param("ann@example.org\u00a0", id="trailing-no-break-space"),
    pytest.param("ann\u202e@example.org", id="right-to-left-override"),
    pytest.param("ann＠example.org", id="full-width-at-sign"),
    pytest.param("a@localhost", id="missing-tld"),
    pytest.param("ann@example.123", id="numeric-tld"),
    pytest.param("ann@[192.168.0.1]", id="ip-literal"),
    pytest.param("ann@[IPv6:::1]", id="ipv6-literal"),
    pytest.param('"ann smith"@example.org', id="quoted-local-part-with-space"),
    pytest.param("ann@example.org,bob@example.org", id="two-addresses-comma"),
    pytest.param("ann@example.org; bob@example.org", id="two-addresses-semicolon"),
    pytest.param("Ann <a@b.org>", id="display-name"),
    pytest.param("<ann@example.org>", id="angle-brackets"),
    pytest.param("mailto:a@b.org", id="mailto-prefix"),
    pytest.param("ann(comment)@example.org", id="comment"),
    pytest.param("ann@-example.org", id="leading-hyphen-in-domain-label"),
    pytest.param("ann@example-.org", id="trailing-hyphen-in-domain-label"),
    pytest.param("ann@exa_mple.org", id="underscore-in-domain"),
    pytest.param("@example.org", id="no-local-part"),
    pytest.param("ann@", id="no-domain"),
    pytest.param("ann@example.test", id="special-use-tld"),
    pytest.param("ann@printer.local", id="mdns-local-tld"),
]


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing")


def stored_rows() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, OutboundEmail, SubscriptionEvent, ConsentRecord)
    }


NOTHING_STORED = {
    "Subscriber": 0,
    "Subscription": 0,
    "OutboundEmail": 0,
    "SubscriptionEvent": 0,
    "ConsentRecord": 0,
}


def post_api(client, email: object, slug: str):
    return client.post(
        API_URL,
        with_form_token({"email": email, "newsletters": [slug]}),
        content_type="application/json",
    )


# --- invalid addresses -------------------------------------------------------------------


@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_normalize_email_refuses_it_with_the_one_message(address: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        normalize_email(address)

    assert excinfo.value.messages == [MESSAGE]


@pytest.mark.django_db
@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_the_api_answers_400_with_only_the_one_message_and_stores_nothing(
    client,
    newsletter,
    address: str,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_api(client, address, newsletter.slug)

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": [MESSAGE]}}
    assert stored_rows() == NOTHING_STORED
    assert callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_the_signup_form_answers_400_with_the_one_message_and_stores_nothing(
    client,
    newsletter,
    address: str,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            reverse("subscriptions:signup"),
            {
                "email": address,
                "newsletters": newsletter.slug,
                "form_token": human_form_token(),
            },
        )

    assert response.status_code == 400
    assert MESSAGE in response.content.decode()
    assert stored_rows() == NOTHING_STORED
    assert callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(123, id="number"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="boolean"),
        pytest.param(None, id="null"),
        pytest.param(["ann@example.org"], id="list"),
        pytest.param([], id="empty-list"),
        pytest.param({"email": "ann@example.org"}, id="object"),
        pytest.param({}, id="empty-object"),
    ],
)
def test_the_api_refuses_a_non_string_email_with_the_one_message(
    client,
    newsletter,
    value: object,
) -> None:
    response = post_api(client, value, newsletter.slug)

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": [MESSAGE]}}
    assert stored_rows() == NOTHING_STORED


@pytest.mark.django_db
def test_the_api_refuses_a_body_without_an_email_with_the_one_message(
    client,
    newsletter,
) -> None:
    response = client.post(
        API_URL, {"newsletters": [newsletter.slug]}, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": [MESSAGE]}}
    assert stored_rows() == NOTHING_STORED


# --- unusual valid addresses -------------------------------------------------------------

VALID_ADDRESSES = [
    pytest.param("ann+news@example.org", "ann+news@example.org", id="plus-tag"),
    pytest.param("ann@пример.укр", "ann@xn--e1afmkfd.xn--j1amh", id="idn-domain"),
    pytest.param("ann@ПРИМЕР.УКР", "ann@xn--e1afmkfd.xn--j1amh", id="upper-case-idn-domain"),
    pytest.param("ann@bücher.de", "ann@xn--bcher-kva.de", id="idn-label-with-ascii"),
    pytest.param("Ann.Smith@Example.ORG", "Ann.Smith@example.org", id="domain-lower-cased"),
    pytest.param("ann@studio.photography", "ann@studio.photography", id="long-tld"),
    pytest.param("ann@un.international", "ann@un.international", id="longer-tld"),
    pytest.param("ann@mail.news.example.co.uk", "ann@mail.news.example.co.uk", id="subdomains"),
    pytest.param("123@456.example.org", "123@456.example.org", id="digits"),
    pytest.param("ann@my-news-site.org", "ann@my-news-site.org", id="hyphens-in-domain"),
    pytest.param("o'brien@example.ie", "o'brien@example.ie", id="apostrophe"),
    pytest.param("  ann@example.org  ", "ann@example.org", id="surrounding-spaces-stripped"),
    pytest.param(LONGEST_ADDRESS, LONGEST_ADDRESS, id="254-characters"),
]


@pytest.mark.parametrize(("address", "stored"), VALID_ADDRESSES)
def test_normalize_email_returns_the_stored_form(address: str, stored: str) -> None:
    assert normalize_email(address) == stored


@pytest.mark.django_db
@pytest.mark.parametrize(("address", "stored"), VALID_ADDRESSES)
def test_the_api_accepts_it_and_stores_the_normalised_form(
    client,
    newsletter,
    address: str,
    stored: str,
) -> None:
    response = post_api(client, address, newsletter.slug)

    assert response.status_code == 202
    assert list(Subscriber.objects.values_list("email", flat=True)) == [stored]
    assert Subscription.objects.get().newsletter == newsletter


@pytest.mark.django_db
def test_two_spellings_differing_only_in_case_make_one_subscriber(
    client,
    newsletter,
) -> None:
    first = post_api(client, "ANN@example.org", newsletter.slug)
    second = post_api(client, "ann@EXAMPLE.org", newsletter.slug)

    assert (first.status_code, second.status_code) == (202, 202)
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["ANN@example.org"]
    assert Subscription.objects.count() == 1


# --- DNS deliverability ------------------------------------------------------------------


@pytest.fixture
def dns_lookups(monkeypatch):
    """Replace email-validator's DNS check; records the domains looked up. No network."""
    looked_up: list[str] = []
    undeliverable: set[str] = set()

    def fake_deliverability(domain, domain_i18n, timeout=None, dns_resolver=None):
        looked_up.append(domain)
        if domain in undeliverable:
            raise EmailUndeliverableError(f"The domain name {domain} does not accept email.")
        return {"mx": [(10, f"mx.{domain}")], "mx_fallback_type": None}

    monkeypatch.setattr(email_deliverability, "validate_email_deliverability", fake_deliverability)
    return looked_up, undeliverable


def test_deliverability_is_not_checked_by_default(dns_lookups) -> None:
    looked_up, undeliverable = dns_lookups
    undeliverable.add("no-such-domain-for-tests.example")

    assert (
        normalize_email("a@no-such-domain-for-tests.example")
        == "a@no-such-domain-for-tests.example"
    )
    assert looked_up == []


def test_with_deliverability_checks_on_the_domain_is_looked_up(settings, dns_lookups) -> None:
    settings.EMAIL_CHECK_DELIVERABILITY = True
    looked_up, _ = dns_lookups

    assert normalize_email("ann@Mail.Example.ORG") == "ann@mail.example.org"
    assert looked_up == ["mail.example.org"]


@pytest.mark.parametrize("check_deliverability", [True, False])
def test_the_imports_normalizer_follows_the_deliverability_setting_it_was_made_with(
    settings, dns_lookups, check_deliverability: bool
) -> None:
    settings.EMAIL_CHECK_DELIVERABILITY = check_deliverability
    looked_up, _ = dns_lookups

    normalize = email_normalizer()

    assert normalize("reader1@Example.ORG") == "reader1@example.org"
    assert looked_up == (["example.org"] if check_deliverability else [])


def test_with_deliverability_checks_on_an_undeliverable_domain_gets_the_one_message(
    settings,
    dns_lookups,
) -> None:
    settings.EMAIL_CHECK_DELIVERABILITY = True
    looked_up, undeliverable = dns_lookups
    undeliverable.add("no-such-domain-for-tests.example")

    with pytest.raises(ValidationError) as excinfo:
        normalize_email("a@no-such-domain-for-tests.example")

    assert excinfo.value.messages == [MESSAGE]
    assert looked_up == ["no-such-domain-for-tests.example"]


@pytest.mark.django_db
def test_with_deliverability_checks_on_the_api_refuses_an_undeliverable_domain(
    client,
    newsletter,
    settings,
    dns_lookups,
) -> None:
    settings.EMAIL_CHECK_DELIVERABILITY = True
    _, undeliverable = dns_lookups
    undeliverable.add("no-such-domain-for-tests.example")

    response = post_api(client, "a@no-such-domain-for-tests.example", newsletter.slug)

    assert response.status_code == 400
    assert response.json() == {"errors": {"email": [MESSAGE]}}
    assert stored_rows() == NOTHING_STORED
