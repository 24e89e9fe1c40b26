"""The membership goal as readers see it: one Redis hash holding the goal's wording, its
target and the active-member count, read on every page view with no SQL.

Writers: `publish_count` copies a (count, version) pair that a member status change
just committed, and only if Redis holds an older version, so writes arriving late or
twice cannot move the copy backwards; `publish_goal` copies the active goal's
wording. `reconcile` (a beat task) recounts the members in the database and repairs
both the count row and the Redis copy, logging any drift. If Redis is unavailable,
readers get the last snapshot this process saw, or one read from the database, and
nothing raises.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import DatabaseError, transaction

from subscriptions.models import Member, MemberCount, MembershipGoal
from subscriptions.platform.redis_store import redis_client

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "membership:goal"
# A web process serves the count it last read from Redis for this long before asking
# again (the API may be cached for longer anyway); 0 asks on every read.
LOCAL_CACHE_SECONDS = 1.0
# With Redis down, a process reuses the last count it read for this long before it asks
# the database.
FALLBACK_MAX_AGE_SECONDS = 30
# How often a page's banner asks the API for the live count, and how long browsers and
# CDNs may keep the API's answer.
POLL_SECONDS = 30
PUBLIC_MAX_AGE_SECONDS = 10

# Set the count only if this version is newer than the stored one (or forced).
_SET_COUNT = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if ARGV[4] == '1' or tonumber(ARGV[2]) > stored then
  redis.call('HSET', KEYS[1], 'members', ARGV[1], 'version', ARGV[2], 'updated_at', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class GoalSnapshot:
    headline: str
    question: str
    target: int
    members: int
    updated_at: datetime

    @property
    def percent(self) -> float:
        return round(min(100.0, 100.0 * self.members / self.target), 1)

    @property
    def remaining(self) -> int:
        return max(0, self.target - self.members)

    def as_json(self) -> dict:
        return {
            "headline": self.headline,
            "question": self.question,
            "target": self.target,
            "members": self.members,
            "percent": self.percent,
            "remaining": self.remaining,
            "updated_at": self.updated_at.isoformat(),
        }


class _LastSeen:
    """The newest snapshot this process read: served again for LOCAL_CACHE_SECONDS
    (the API is cacheable for longer anyway), and for longer while Redis is down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.snapshot: GoalSnapshot | None = None
        self.at = float("-inf")

    def remember(self, snapshot: GoalSnapshot | None) -> GoalSnapshot | None:
        with self._lock:
            self.snapshot, self.at = snapshot, time.monotonic()
        return snapshot

    def forget(self) -> None:
        with self._lock:
            self.snapshot, self.at = None, float("-inf")

    def younger_than(self, seconds: float) -> tuple[bool, GoalSnapshot | None]:
        """(True, snapshot) if one was remembered less than `seconds` ago."""
        with self._lock:
            if time.monotonic() - self.at < seconds:
                return True, self.snapshot
        return False, None


_last_seen = _LastSeen()


def read_snapshot() -> GoalSnapshot | None:
    """The goal and count for a page or the API; None when there is no active goal.

    No SQL when Redis is warm: one Redis round trip, at most once per
    LOCAL_CACHE_SECONDS per process.
    """
    hit, snapshot = _last_seen.younger_than(LOCAL_CACHE_SECONDS)
    if hit:
        return snapshot
    if not settings.REDIS_URL:
        return _last_seen.remember(_snapshot_from_database())
    try:
        fields = redis_client(settings.REDIS_URL).hgetall(SNAPSHOT_KEY)
    except redis.RedisError:
        logger.warning("goal counter: Redis unavailable, using a fallback")
        hit, snapshot = _last_seen.younger_than(FALLBACK_MAX_AGE_SECONDS)
        if hit and snapshot is not None:
            return _last_seen.remember(snapshot)
        return _last_seen.remember(_snapshot_from_database())
    if fields.get("active") == "0":
        return _last_seen.remember(None)
    if not {"headline", "target", "members", "version"} <= fields.keys():
        # Cold Redis (restarted, flushed): fill it from the database once.
        warm_up()
        return _last_seen.remember(_snapshot_from_database())
    return _last_seen.remember(
        GoalSnapshot(
            headline=str(fields["headline"]),
            question=str(fields.get("question", "")),
            target=int(fields["target"]),
            members=int(fields["members"]),
            updated_at=datetime.fromtimestamp(float(fields.get("updated_at", 0)), tz=UTC),
        )
    )


def publish_count(*, active: int, version: int, force: bool = False) -> bool:
    """Copy a committed (count, version) to Redis unless Redis has a newer version;
    returns whether it was written."""
    if not settings.REDIS_URL:
        return False
    try:
        written = redis_client(settings.REDIS_URL).eval(
            _SET_COUNT, 1, SNAPSHOT_KEY, active, version, time.time(), "1" if force else "0"
        )
    except redis.RedisError:
        logger.warning("goal counter: could not publish the count; reconcile will")
        return False
    finally:
        # This process changed the count: what it remembers is older, published or not
        # (with Redis down its next read goes to the database).
        _last_seen.forget()
    return bool(written)


def publish_goal() -> None:
    """Copy the active goal's wording and target to Redis (or mark that there is none)."""
    if not settings.REDIS_URL:
        return
    goal = MembershipGoal.objects.filter(is_active=True).first()
    try:
        client = redis_client(settings.REDIS_URL)
        if goal is None:
            client.hset(SNAPSHOT_KEY, "active", "0")
            return
        client.hset(
            SNAPSHOT_KEY,
            mapping={
                "active": "1",
                "headline": goal.headline,
                "question": goal.question,
                "target": goal.target,
            },
        )
    except redis.RedisError:
        logger.warning("goal counter: could not publish the goal; reconcile will")
    finally:
        _last_seen.forget()


def warm_up() -> None:
    """Fill an empty Redis copy from the database."""
    publish_goal()
    row = MemberCount.objects.filter(pk=1).first()
    if row is not None:
        publish_count(active=row.active, version=row.version)


@dataclass(frozen=True)
class Reconciliation:
    members: int
    database_drift: int
    redis_drift: int | None


def reconcile() -> Reconciliation:
    """Recount the active members and repair the count row and the Redis copy.

    The count row stays locked while Redis is written, so a member change committing
    meanwhile waits and then publishes a newer version than ours.
    """
    with transaction.atomic():
        row, _ = MemberCount.objects.select_for_update().get_or_create(pk=1)
        members = Member.objects.filter(status=Member.Status.ACTIVE).count()
        database_drift = members - row.active
        if database_drift:
            logger.warning(
                "goal counter: database count was %d, recount says %d; fixed",
                row.active,
                members,
            )
            row.active = members
            row.version += 1
            row.save(update_fields=["active", "version", "updated_at"])
        redis_drift = _repair_redis(row)
    publish_goal()
    return Reconciliation(members=members, database_drift=database_drift, redis_drift=redis_drift)


def _repair_redis(row: MemberCount) -> int | None:
    """Force the Redis copy to the row; the drift found there, or None without Redis."""
    if not settings.REDIS_URL:
        return None
    try:
        stored, version = redis_client(settings.REDIS_URL).hmget(SNAPSHOT_KEY, "members", "version")
    except redis.RedisError:
        logger.warning("goal counter: Redis unavailable; reconcile will try again")
        return None
    if stored is not None and int(stored) == row.active and int(version or -1) == row.version:
        return 0
    drift = row.active - int(stored) if stored is not None else row.active
    if stored is not None:
        logger.warning(
            "goal counter: Redis had %s (v%s), the database %d (v%d); fixed",
            stored,
            version,
            row.active,
            row.version,
        )
    publish_count(active=row.active, version=row.version, force=True)
    return drift


def _snapshot_from_database() -> GoalSnapshot | None:
    try:
        goal = MembershipGoal.objects.filter(is_active=True).first()
        row = MemberCount.objects.filter(pk=1).first()
    except DatabaseError:
        logger.warning("goal counter: the database is unavailable too")
        return None
    if goal is None:
        return None
    return GoalSnapshot(
        headline=goal.headline,
        question=goal.question,
        target=goal.target,
        members=row.active if row else 0,
        updated_at=row.updated_at if row else goal.created_at,
    )
