"""A cap on messages a second (ISSUE_MESSAGES_PER_SECOND) holds across workers: it
lives in Redis, and the batches shrink to what may go in a second."""

import time

import pytest
from django.core import mail

from subscriptions.issues import services, throttle, transport
from subscriptions.platform.redis_store import redis_client
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers, workers_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def capped(settings, monkeypatch):
    settings.ISSUE_MESSAGES_PER_SECOND = 100
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    monkeypatch.setattr(throttle, "_local", throttle._Bucket())
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).delete(throttle._KEY)


def test_without_a_cap_nothing_waits(settings):
    settings.ISSUE_MESSAGES_PER_SECOND = 0

    assert throttle.wait_for(10_000) == 0.0
    assert transport.batch_size() == transport.PER_MESSAGE_BATCH


def test_batches_shrink_to_a_seconds_worth(capped):
    assert transport.batch_size() == 100


def test_the_bucket_makes_a_burst_wait_its_turn(capped):
    assert throttle._reserve(100, 100) == 0.0  # a full bucket
    waited = throttle._reserve(100, 50)
    assert 0.4 <= waited <= 0.5  # half a second's tokens, reserved after the first
    assert 0.9 <= throttle._reserve(100, 50) <= 1.0  # queued behind it


@pytest.mark.redis
@pytest.mark.postgres
def test_two_workers_together_keep_to_the_cap(capped):
    newsletter = NewsletterFactory()
    readers(newsletter, 350)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    started = time.monotonic()
    errors = workers_at_once(issue.pk)
    took = time.monotonic() - started

    assert not errors
    assert len(mail.outbox) == 350
    # A full bucket lets the first 100 go at once; the other 250 take 2.5 s at 100 a
    # second, whichever worker sends them.
    assert took >= 2.4
