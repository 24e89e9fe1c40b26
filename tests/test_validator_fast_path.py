"""The validator's shortcut for everyday addresses gives email-validator's own answer.

`normalize_email` skips email-validator's general parser for a plain ASCII address
(an import checks a million of them); these properties hold the shortcut to exactly
what `validate_email` says, accepted or refused, for addresses built from the pieces
where the two could differ: role mailboxes, Punycode, special-use and numeric
top-level domains, long labels, dots and every atext character.
"""

import string

import pytest
from django.core.exceptions import ValidationError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from subscriptions.signup import addresses
from subscriptions.signup.addresses import normalize_email

REFUSED = "refused"

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
local_parts = st.one_of(
    st.text(ATEXT + ".", min_size=1, max_size=70),
    st.sampled_from(["Postmaster", "ABUSE", "info", "Info.Desk", "www", "a" * 64, "a" * 65]),
    st.text(ATEXT + '."\\ (),:;<>@[]', min_size=0, max_size=20),
)
labels = st.one_of(
    st.text(string.ascii_letters + string.digits + "-", min_size=0, max_size=12),
    st.sampled_from(
        [
            "example",
            "EXAMPLE",
            "xn--e1afmkfd",
            "xn--j1amh",
            "xn--bcher-kva",
            "xn--",
            "xn--zz",
            "ab--cd",
            "localhost",
            "local",
            "test",
            "invalid",
            "onion",
            "arpa",
            "123",
            "b" * 63,
            "b" * 64,
            "org",
        ]
    ),
)
domains = st.lists(labels, min_size=1, max_size=5).map(".".join)
everyday_addresses = st.builds("{}@{}".format, local_parts, domains)


def answer(check, candidate: str) -> str | None:
    try:
        return check(candidate)
    except ValidationError:
        return REFUSED


@settings(max_examples=3000, deadline=None)
@given(candidate=everyday_addresses)
@example(candidate="Postmaster@Example.org")
@example(candidate="ann@xn--e1afmkfd.xn--j1amh")
@example(candidate="ann@example.123")
@example(candidate="ann@mail.localhost")
@example(candidate="a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org")
def test_the_shortcut_answers_as_email_validator_does(candidate: str) -> None:
    shortcut = answer(addresses._everyday_address, candidate)
    if shortcut is None:
        return  # left to email-validator itself
    assert shortcut == answer(addresses._checked_by_email_validator, candidate)


@pytest.mark.parametrize(
    ("candidate", "stored"),
    [
        ("reader1@example.org", "reader1@example.org"),
        ("Ann.Smith@Mail.Example.ORG", "Ann.Smith@mail.example.org"),
        ("Postmaster@example.org", "postmaster@example.org"),
        ("o'brien+news@example.ie", "o'brien+news@example.ie"),
    ],
)
def test_everyday_addresses_take_the_shortcut_to_the_same_stored_form(
    candidate: str, stored: str
) -> None:
    assert addresses._everyday_address(candidate) == stored
    assert addresses._checked_by_email_validator(candidate) == stored
    assert normalize_email(candidate) == stored


@pytest.mark.parametrize(
    "candidate",
    ['"ann smith"@example.org', "Ann <ann@example.org>", "ann@[192.0.2.1]", "пошта@example.org"],
)
def test_unusual_addresses_go_to_email_validator(candidate: str) -> None:
    assert addresses._everyday_address(candidate) is None
