"""A cap on the messages a second every worker together hands the provider for issues
(ISSUE_MESSAGES_PER_SECOND; 0: none), so a plan's limit is kept before the provider has
to refuse.

A token bucket in Redis, shared by workers on any number of machines, on Redis's own
clock: a worker takes as many tokens as its batch has readers, and is told how long to
wait first when the bucket is short (tokens are reserved, so workers waiting at once
queue up rather than race). Without Redis (the embedded set-up: one process) the same
bucket is kept in the process. If Redis cannot be reached the batch goes without
waiting: the provider's own refusals (429) still pause the issue.
"""

import logging
import threading
import time

import redis
from django.conf import settings

from subscriptions.platform.redis_store import redis_client

logger = logging.getLogger(__name__)

_KEY = "newsroom:issues:send-bucket"
# KEYS[1] the bucket; ARGV[1] tokens a second (also the bucket's size), ARGV[2] wanted.
# Returns the milliseconds to wait before sending.
_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or now_ms
tokens = math.min(rate, tokens + (now_ms - at) * rate / 1000)
tokens = tokens - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], 60000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000 / rate)
"""


def per_second() -> int:
    return max(settings.ISSUE_MESSAGES_PER_SECOND, 0)


def wait_for(messages: int) -> float:
    """Sleep until `messages` may go; returns the seconds slept."""
    rate = per_second()
    if not rate or messages <= 0:
        return 0.0
    seconds = _reserve(rate, messages)
    if seconds > 0:
        time.sleep(seconds)
    return seconds


def _reserve(rate: int, messages: int) -> float:
    if not settings.REDIS_URL:
        return _local.reserve(rate, messages)
    try:
        client = redis_client(settings.REDIS_URL)
        return int(client.eval(_TAKE, 1, _KEY, rate, messages)) / 1000
    except redis.RedisError:
        logger.warning("issue send cap: Redis unavailable, sending without waiting")
        return 0.0


class _Bucket:
    """The same bucket in one process, for the embedded set-up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._at = 0.0

    def reserve(self, rate: int, messages: int) -> float:
        with self._lock:
            now = time.monotonic()
            tokens = rate if self._tokens is None else self._tokens
            tokens = min(rate, tokens + (now - self._at) * rate) - messages
            self._tokens, self._at = tokens, now
            return 0.0 if tokens >= 0 else -tokens / rate


_local = _Bucket()
