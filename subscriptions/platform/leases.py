"""Leases that die with their holder: PostgreSQL session advisory locks.

A Celery task redelivered by Redis (its visibility_timeout passed, or the worker's
connection dropped) can run while its first delivery is still alive. A row's state
cannot tell a live first delivery from a dead one; a lock held on the worker's database
session can, because it goes when the session goes. SQLite (the single-machine
embedded set-up) has no such lock; there the caller's own state checks decide alone.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


class Namespace:
    """The first key of PostgreSQL's two-key advisory locks, one per kind of work."""

    OUTBOUND_EMAIL = 0x6F757462  # "outb"
    SUBSCRIBER_IMPORT = 0x696D7074  # "impt"
    CONFIRMATION_MAILBOX = 0x6D626F78  # "mbox"


@contextmanager
def lease(namespace: int, key: int) -> Iterator[bool]:
    """Hold the (namespace, key) lock while the block runs; yields whether it was free."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, folded_key(key)])
        (held,) = cursor.fetchone()
    try:
        yield held
    finally:
        if held:
            release(namespace, key)


def hold_until_commit(namespace: int, key: int) -> None:
    """Wait for, then hold, the (namespace, key) lock until the caller's transaction
    ends: for work on something no row stands for (a mailbox several subscribers share).
    A no-op outside PostgreSQL, where SQLite's one writer at a time serialises anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, folded_key(key)])


def folded_key(key: int) -> int:
    """The lock's second key: 32 bits."""
    return (key & 0xFFFFFFFF) - 2**31


def release(namespace: int, key: int) -> None:
    """Give up a lease taken with `lease` or in a statement of the caller's own."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, folded_key(key)])
    except DatabaseError:
        # A broken connection has already released the lock with its session.
        logger.warning("could not release lease %s/%s", namespace, key)
