"""An email backend for the benchmarks: it records when the worker handed it each
message (the outbox row's id, from the message's anymail metadata) in a Redis list of
the bench's own, and sends nothing."""

import time
from functools import lru_cache

import redis
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

HANDED_OVER_KEY = "bench:emails-handed-over"


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        client = _client(settings.REDIS_URL)
        now = time.time()
        for message in email_messages:
            metadata = getattr(message, "metadata", {}) or {}
            client.rpush(HANDED_OVER_KEY, f"{metadata.get('outbound_email_id', '')} {now}")
        return len(email_messages)


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)
