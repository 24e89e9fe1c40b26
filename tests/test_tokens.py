"""The links' tokens are made by a faster signer than Django's (an issue signs two for
each of its readers); it must make exactly Django's tokens, which Django then reads,
with the secret of the moment and after a rotation."""

import time

import pytest
from django.core import signing

from subscriptions import tokens
from subscriptions.tokens import preferences_token, unsubscribe_token

PAYLOADS = [
    0,
    7,
    123_456_789_012,
    {"s": 42, "t": 1_700_000_000},
    {"s": 9_999_999, "t": 1_800_000_000},
    {"s": 1, "a": "erase", "t": 1_700_000_000},
    {"ids": list(range(200))},  # long enough that compressing pays
]


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_765_000_000.25)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("salt", ["subscriptions.tokens.unsubscribe", "another.salt"])
def test_the_fast_signer_makes_djangos_tokens(frozen, payload, compress, salt):
    ours = tokens._dumps(payload, salt=salt, compress=compress)

    assert ours == signing.dumps(payload, salt=salt, compress=compress)
    assert signing.loads(ours, salt=salt) == payload


def test_it_signs_with_the_secret_of_the_moment_and_old_links_survive_a_rotation(frozen, settings):
    settings.SECRET_KEY = "first-secret-for-this-test-only-0123456789"
    before = unsubscribe_token.make_token(5)

    settings.SECRET_KEY = "second-secret-for-this-test-only-0123456789"
    settings.SECRET_KEY_FALLBACKS = ["first-secret-for-this-test-only-0123456789"]
    after = unsubscribe_token.make_token(5)

    assert before != after
    assert after == signing.dumps(5, salt=unsubscribe_token.key_salt)
    assert unsubscribe_token.read_token(before) == unsubscribe_token.read_token(after) == 5


def test_a_preferences_token_reads_back_as_its_reader(frozen):
    claim = preferences_token.read_token(preferences_token.make_token(31))

    assert claim.subscriber_id == 31
    assert claim.stands_for_the_reader
