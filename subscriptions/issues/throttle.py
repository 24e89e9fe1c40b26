"""Caps on the messages every worker together hands the provider for issues, so a
plan's limits are kept before the provider has to refuse: a second's
(ISSUE_MESSAGES_PER_SECOND) and an hour's (ISSUE_MESSAGES_PER_HOUR); 0 is none.

A token bucket in Redis, shared by workers on any number of machines, on Redis's own
clock: a worker takes as many tokens as its batch has readers, and is told how long to
wait first when the bucket is short (tokens are reserved, so workers waiting at once
queue up rather than race). Without Redis (the embedded set-up: one process) the same
bucket is kept in the process. If Redis cannot be reached the batch goes without
waiting: the provider's own refusals (429) still pause the issue.

The hour is a sliding one, exact: Redis keeps each batch sent in the last hour with its
size, and a batch that does not fit waits until enough of the oldest are an hour old.
Its room is taken before a batch is claimed (a wait of minutes is no time to hold a
claim) and settled to what the provider was handed afterwards.
"""

import logging
import threading
import time
import uuid
from collections import deque

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


_HOUR_KEY = "newsroom:issues:send-hour"
_HOUR_MS = 3_600_000
# KEYS[1] the hour's batches (score: when, member: "when:size:id"); ARGV[1] the cap,
# ARGV[2] wanted, ARGV[3] an id for this batch, ARGV[4] an hour in ms. Returns the
# milliseconds to wait, 0 when the room was taken.
_TAKE_HOUR = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cap, wanted, hour = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - hour)
local batches = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #batches, 2 do used = used + tonumber(string.match(batches[i], ':(%d+):')) end
if used + wanted <= cap then
  redis.call('ZADD', KEYS[1], now_ms, now_ms .. ':' .. wanted .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], hour)
  return 0
end
local over = used + wanted - cap
for i = 1, #batches, 2 do
  over = over - tonumber(string.match(batches[i], ':(%d+):'))
  if over <= 0 then return math.max(tonumber(batches[i + 1]) + hour - now_ms, 1) end
end
return hour
"""
# KEYS[1] the hour's batches; ARGV[1] the id, ARGV[2] the size the batch turned out.
_SETTLE_HOUR = """
local batches = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #batches, 2 do
  if string.match(batches[i], ':([%w]+)$') == ARGV[1] then
    redis.call('ZREM', KEYS[1], batches[i])
    if tonumber(ARGV[2]) > 0 then
      local when = string.match(batches[i], '^(%d+):')
      redis.call('ZADD', KEYS[1], batches[i + 1], when .. ':' .. ARGV[2] .. ':' .. ARGV[1])
    end
    return 1
  end
end
return 0
"""


def per_hour() -> int:
    return max(settings.ISSUE_MESSAGES_PER_HOUR, 0)


def take_hour(messages: int) -> tuple[float, str | None]:
    """Take room for `messages` in the hour's cap: (0, a ticket to settle) when taken,
    or (seconds to wait, None) when they do not fit yet."""
    cap = per_hour()
    if not cap or messages <= 0:
        return 0.0, None
    ticket = uuid.uuid4().hex
    if not settings.REDIS_URL:
        waited = _local_hour.take(cap, messages, ticket)
    else:
        try:
            client = redis_client(settings.REDIS_URL)
            waited = (
                int(client.eval(_TAKE_HOUR, 1, _HOUR_KEY, cap, messages, ticket, _HOUR_MS)) / 1000
            )
        except redis.RedisError:
            logger.warning("issue hourly cap: Redis unavailable, sending without waiting")
            return 0.0, None
    return waited, (None if waited else ticket)


def settle_hour(ticket: str | None, handed: int) -> None:
    """Correct a taken room to the messages the provider was handed (a batch can come
    out smaller than claimed, or not go at all)."""
    if ticket is None:
        return
    if not settings.REDIS_URL:
        _local_hour.settle(ticket, handed)
        return
    try:
        redis_client(settings.REDIS_URL).eval(_SETTLE_HOUR, 1, _HOUR_KEY, ticket, handed)
    except redis.RedisError:
        logger.warning("issue hourly cap: Redis unavailable, the batch counts as claimed")


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


class _Hour:
    """The same hour in one process, for the embedded set-up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: deque[list] = deque()  # [when, size, ticket], oldest first

    def take(self, cap: int, messages: int, ticket: str) -> float:
        with self._lock:
            now = time.monotonic()
            while self._batches and self._batches[0][0] <= now - _HOUR_MS / 1000:
                self._batches.popleft()
            over = sum(size for _, size, _ in self._batches) + messages - cap
            if over <= 0:
                self._batches.append([now, messages, ticket])
                return 0.0
            for when, size, _ in self._batches:
                over -= size
                if over <= 0:
                    return max(when + _HOUR_MS / 1000 - now, 0.001)
            return _HOUR_MS / 1000

    def settle(self, ticket: str, handed: int) -> None:
        with self._lock:
            for batch in self._batches:
                if batch[2] == ticket:
                    batch[1] = handed


_local_hour = _Hour()
