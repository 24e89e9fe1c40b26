"""Unsubscribes that arrived while the database could not be reached, kept in Redis and
applied once it is back.

The one-click POST (RFC 8058) comes from a mailbox provider with no person watching, and
the RFC does not say the provider tries again after an error: an unsubscribe answered
503 may be lost for good, and honouring it is not optional. The signed token alone
names the subscription, so the request can be kept without the database: a Redis hash
of subscription id to how and when it was asked (no address), applied by a beat task
(`apply_deferred_unsubscribes`). A provider's repeats of one request are kept once.
Only when Redis cannot keep it either does the view answer 503 with Retry-After, which
leaves the retry to the provider.
"""

import json
import logging
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from subscriptions.models import Subscription
from subscriptions.platform.redis_store import redis_client
from subscriptions.signup import services
from subscriptions.signup.transitions import lock_subscribers

logger = logging.getLogger(__name__)

KEY = "unsubscribes:deferred"


def record(*, subscription_id: int, via: str, now: datetime | None = None) -> bool:
    """Keep the request for later; False when there is no Redis to keep it in."""
    if not settings.REDIS_URL:
        return False
    asked = {"via": via, "at": (now or timezone.now()).isoformat()}
    try:
        redis_client(settings.REDIS_URL).hsetnx(KEY, str(subscription_id), json.dumps(asked))
    except redis.RedisError:
        return False
    return True


def apply_recorded() -> int:
    """Apply every kept request; returns how many were taken off the list.

    Each is forgotten only after its transaction committed: a database that fails again
    halfway leaves the rest (and that one) for the next run, and applying one twice
    changes nothing.
    """
    if not settings.REDIS_URL:
        return 0
    client = redis_client(settings.REDIS_URL)
    taken = 0
    for field, value in client.hscan_iter(KEY):
        asked = json.loads(value)
        _apply(int(field), via=asked["via"], asked_at=datetime.fromisoformat(asked["at"]))
        client.hdel(KEY, field)
        taken += 1
    if taken:
        logger.info("applied %d unsubscribes kept while the database was unavailable", taken)
    return taken


def _apply(subscription_id: int, *, via: str, asked_at: datetime) -> bool:
    with transaction.atomic():
        subscriber_id = (
            Subscription.objects.filter(pk=subscription_id)
            .values_list("subscriber_id", flat=True)
            .first()
        )
        if subscriber_id is None:
            return False  # erased since, or never there: nothing to end
        # Under the lock every service takes, so a sign-up cannot slip in between the
        # check and the change.
        lock_subscribers({subscriber_id})
        subscription = Subscription.objects.get(pk=subscription_id)
        chosen_again = [t for t in (subscription.pending_since, subscription.confirmed_at) if t]
        if chosen_again and max(chosen_again) > asked_at:
            return False  # the reader signed up or confirmed after asking to leave
        return services.unsubscribe(subscription_id=subscription_id, actor="reader", via=via)
