"""Sliding-window rate limits, kept in Redis so every web process shares them.

Each limit is a sorted set of request timestamps per key; one Lua script drops the
expired ones, counts, and records the new one, so concurrent requests cannot slip past
the count. Keys hash what they count (a client's IP or IPv6 /64, a mailbox), so Redis
holds no addresses. The Redis may be a Redis Cluster (RATE_LIMIT_REDIS_CLUSTER).
Without Redis (the embedded set-up) the same algorithm runs in-process. If Redis fails,
limits fail open: a reader's sign-up matters more than a missed count. Every check let
through that way is logged and counted (`fail_open_counts`), so an outage, or a Redis
that refuses the script, cannot switch the limits off unnoticed.
"""

import hashlib
import logging
import math
import re
import threading
import time
import uuid
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

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

# Every key carries this one hash tag. A Redis Cluster hashes only the tag (the part
# between { and }) to place a key, and refuses a script whose keys fall in different
# slots (CROSSSLOT); one check counts a client and a mailbox in one script, so their keys
# must share a slot. A tag per value cannot do that (the client's key would need a
# different tag with each mailbox it is checked with), so the tag is shared by all.
# The cost: every limiter key lives in one slot, on one shard of the cluster (and its
# replicas), and the limits' load and memory do not spread over the others. That is
# acceptable: a check is one short script over two small sorted sets, each holding at
# most its limit's count of members and expiring with its window, so the slot stays
# small and the load is a few commands per sign-up, far below what one shard serves.
_HASH_TAG = "{ratelimit}"


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


class FailOpenReason:
    """Why a check was let through uncounted."""

    # No connection to Redis, or no answer in time.
    UNREACHABLE = "unreachable"
    # Redis answered the script with an error: CROSSSLOT, READONLY, NOREPLICAS, CLUSTERDOWN...
    REFUSED = "refused"
    # redis-py's cluster client could not route the script: slots not covered, keys in
    # different slots, a URL a cluster cannot use.
    CLUSTER = "cluster"
    # Any other error redis-py raised.
    ERROR = "error"


class _StoreFailed(Exception):
    """The Redis behind the limits could not run a check, for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_fail_opens: Counter[tuple[str, str]] = Counter()
_fail_opens_lock = threading.Lock()


def fail_open_counts() -> dict[tuple[str, str], int]:
    """How many checks this process let through uncounted since it started, per
    (limit name, `FailOpenReason`); a check of several limits counts under each."""
    with _fail_opens_lock:
        return dict(_fail_opens)


def enforce_all(limits: Sequence[tuple[str, str]]) -> None:
    """Count one request under each (limit name, a key of settings.RATE_LIMITS; value)
    in turn, in one round trip to Redis: a full window stops the count there and raises
    `RateLimited` with the seconds until one is free; the ones before it have counted
    the request."""
    windows = []
    for limit_name, value in limits:
        digest = hashlib.sha256(f"{limit_name}|{value}".encode()).hexdigest()[:32]
        windows.append(
            (
                f"ratelimit:{limit_name}:{_HASH_TAG}:{digest}",
                Rate.parse(settings.RATE_LIMITS[limit_name]),
            )
        )
    try:
        wait_ms = _backend().hit_all(windows)
    except _StoreFailed as failure:
        _fail_open([limit_name for limit_name, _ in limits], failure)
        return
    if wait_ms is not None:
        raise RateLimited(retry_after=max(1, math.ceil(wait_ms / 1000)))


def hold_once(name: str, key: str, value: str, *, seconds: int) -> bool:
    """Keep `value` under (`name`, `key`) for `seconds`, unless another value is kept
    there already: True if `value` is the one kept. For what may serve one thing only (a
    form token, one mailbox). In the same store as the limits, and like them it fails
    open, counted and logged: True when Redis cannot answer."""
    try:
        return _backend().hold_once(f"{name}:{_HASH_TAG}:{key}", value, seconds=seconds)
    except _StoreFailed as failure:
        _fail_open([name], failure)
        return True


def _fail_open(limit_names: Sequence[str], failure: _StoreFailed) -> None:
    with _fail_opens_lock:
        for limit_name in limit_names:
            _fail_opens[(limit_name, failure.reason)] += 1
    logger.warning(
        "rate limit check skipped: Redis unavailable (%s: %s) for %s; the request goes on",
        failure.reason,
        failure.__cause__,
        ", ".join(limit_names),
        exc_info=failure,
    )


def _failure_reason(error: Exception) -> str:
    # The cluster client reports a node it cannot reach as a RedisClusterException
    # raised from the ConnectionError.
    if isinstance(error, redis.ConnectionError | redis.TimeoutError) or isinstance(
        error.__cause__, redis.ConnectionError | redis.TimeoutError
    ):
        return FailOpenReason.UNREACHABLE
    if isinstance(error, redis.ResponseError):
        return FailOpenReason.REFUSED
    if isinstance(error, RedisClusterException):
        return FailOpenReason.CLUSTER
    return FailOpenReason.ERROR


class _RedisWindow:
    def __init__(self, url: str, *, cluster: bool = False) -> None:
        self._url = url
        self._cluster = cluster
        self._lock = threading.Lock()
        self._script: Script | None = None

    def hit_all(self, windows: Sequence[tuple[str, Rate]]) -> int | None:
        """The milliseconds until the first full window has room, or None if counted in
        all; raises `_StoreFailed` if Redis could not run the check."""
        now_ms = int(time.time() * 1000)
        member = f"{now_ms}-{uuid.uuid4().hex[:8]}"
        args: list[int | str] = [now_ms, member]
        for _, rate in windows:
            args += [rate.window_seconds * 1000, rate.count]
        try:
            wait = self._sliding_windows()(keys=[key for key, _ in windows], args=args)
        # redis-py's cluster errors (RedisClusterException) are no RedisError.
        except (redis.RedisError, RedisClusterException) as error:
            raise _StoreFailed(_failure_reason(error)) from error
        return None if int(wait) < 0 else int(wait)

    def hold_once(self, key: str, value: str, *, seconds: int) -> bool:
        try:
            client = self._sliding_windows().registered_client
            if client.set(key, value, nx=True, ex=seconds):
                return True
            held = client.get(key)
        except (redis.RedisError, RedisClusterException) as error:
            raise _StoreFailed(_failure_reason(error)) from error
        # Gone between the two calls (expired): nobody holds it now, and ours may.
        return held is None or (held.decode() if isinstance(held, bytes) else held) == value

    def _sliding_windows(self) -> Script:
        # A cluster client asks a node for the cluster's slots as it is made, so it is
        # made on the first check, and again on the next one if that failed, rather than
        # once at start-up while the cluster may be down.
        script = self._script
        if script is None:
            with self._lock:
                if self._script is None:
                    options = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
                    client = (
                        RedisCluster.from_url(self._url, **options)
                        if self._cluster
                        else redis.Redis.from_url(self._url, **options)
                    )
                    self._script = client.register_script(_SLIDING_WINDOWS)
                script = self._script
        return script


class _LocalWindow:
    """The same sliding windows for one process, when there is no Redis."""

    # Far more values held at once than a single-machine site signs up within a day.
    _HELD_CAPACITY = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._held: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def hold_once(self, key: str, value: str, *, seconds: int) -> bool:
        now = time.monotonic()
        with self._lock:
            # Oldest first: drop what has expired, and the oldest past the capacity.
            while self._held and (
                len(self._held) >= self._HELD_CAPACITY or next(iter(self._held.values()))[1] < now
            ):
                self._held.popitem(last=False)
            held = self._held.get(key)
            if held is not None and held[1] >= now:
                return held[0] == value
            self._held[key] = (value, now + seconds)
            return True

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
            self._held.clear()


@lru_cache(maxsize=4)
def _backend_for(redis_url: str) -> _RedisWindow | _LocalWindow:
    return _RedisWindow(redis_url) if redis_url else _LocalWindow()


@lru_cache(maxsize=4)
def _cluster_backend_for(redis_url: str) -> _RedisWindow:
    return _RedisWindow(redis_url, cluster=True)


def _backend() -> _RedisWindow | _LocalWindow:
    redis_url = settings.RATE_LIMIT_REDIS_URL
    if redis_url and settings.RATE_LIMIT_REDIS_CLUSTER:
        return _cluster_backend_for(redis_url)
    return _backend_for(redis_url)
