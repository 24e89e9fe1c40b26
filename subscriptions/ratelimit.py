"""Sliding-window rate limits, kept in Redis so every web process shares them.

Each limit is a sorted set of request timestamps per key; one Lua script drops the
expired ones, counts, and records the new one, so concurrent requests cannot slip past
the count. Keys hash what they count (a client's IP or IPv6 /64, a mailbox), so Redis
holds no addresses.
Without Redis (the embedded set-up) the same algorithm runs in-process. If Redis fails,
limits fail open: a reader's sign-up matters more than a missed count.
"""

import hashlib
import logging
import math
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS: the windows to count this request in, in order. ARGV: now (ms), this request's
# member, then each window's length (ms) and limit. The first window that is full stops
# the count there and answers the milliseconds until it has room; -1 means counted in all.
_SLIDING_WINDOWS = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[1 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + 2 * i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tonumber(oldest[2]) + window - now
  end
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return -1
"""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The limits the form and the API enforce; settings.RATE_LIMITS holds a rate for each.
LIMIT_NAMES = ("form-ip", "form-email", "api-ip", "api-email")


@dataclass(frozen=True)
class Rate:
    count: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """'20/h', '5/10m', '100/d'."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*", text)
        if match is None:
            raise ValueError(f"not a rate: {text!r} (use e.g. 20/h or 5/10m)")
        count, multiple, unit = match.groups()
        window_seconds = int(multiple or 1) * _UNITS[unit]
        if window_seconds == 0:
            # A window of no length would count nothing and limit nothing.
            raise ValueError(f"not a rate: {text!r} (the window must be longer than 0)")
        return cls(int(count), window_seconds)


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


def enforce(limit_name: str, value: str) -> None:
    """Count one request for `value` under the named limit (a key of
    settings.RATE_LIMITS), or raise `RateLimited` with the seconds until one is free."""
    enforce_all([(limit_name, value)])


def enforce_all(limits: Sequence[tuple[str, str]]) -> None:
    """Count one request under each (limit name, value) in turn, in one round trip to
    Redis, as `enforce` one after another would: a full window stops the count there
    and raises `RateLimited`; the ones before it have counted the request."""
    windows = []
    for limit_name, value in limits:
        digest = hashlib.sha256(f"{limit_name}|{value}".encode()).hexdigest()[:32]
        windows.append(
            (f"ratelimit:{limit_name}:{digest}", Rate.parse(settings.RATE_LIMITS[limit_name]))
        )
    wait_ms = _backend().hit_all(windows)
    if wait_ms is not None:
        raise RateLimited(retry_after=max(1, math.ceil(wait_ms / 1000)))


class _RedisWindow:
    def __init__(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self._script = client.register_script(_SLIDING_WINDOWS)

    def hit(self, key: str, rate: Rate) -> int | None:
        return self.hit_all([(key, rate)])

    def hit_all(self, windows: Sequence[tuple[str, Rate]]) -> int | None:
        now_ms = int(time.time() * 1000)
        member = f"{now_ms}-{uuid.uuid4().hex[:8]}"
        args: list[object] = [now_ms, member]
        for _, rate in windows:
            args += [rate.window_seconds * 1000, rate.count]
        try:
            wait = self._script(keys=[key for key, _ in windows], args=args)
        except redis.RedisError:
            logger.warning("rate limit check skipped: Redis unavailable", exc_info=True)
            return None
        return None if int(wait) < 0 else int(wait)


class _LocalWindow:
    """The same sliding windows for one process, when there is no Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, key: str, rate: Rate) -> int | None:
        return self.hit_all([(key, rate)])

    def hit_all(self, windows: Sequence[tuple[str, Rate]]) -> int | None:
        now = time.monotonic()
        with self._lock:
            for key, rate in windows:
                hits = self._hits[key]
                while hits and hits[0] <= now - rate.window_seconds:
                    hits.popleft()
                if len(hits) >= rate.count:
                    return int((hits[0] + rate.window_seconds - now) * 1000)
                hits.append(now)
        return None

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


@lru_cache(maxsize=4)
def _backend_for(redis_url: str) -> _RedisWindow | _LocalWindow:
    return _RedisWindow(redis_url) if redis_url else _LocalWindow()


def _backend() -> _RedisWindow | _LocalWindow:
    return _backend_for(settings.RATE_LIMIT_REDIS_URL)
