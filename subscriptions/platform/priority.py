"""Work that yields the CPU: run in a thread of its own at a lower scheduling priority
(a higher nice value), so the site's requests on the same machine go first.

Linux gives each thread its own nice value, and a thread may lower its own priority but
not raise it back, so the work gets a fresh thread that ends with it. Elsewhere (no
per-thread priority) the work runs at the process's priority.
"""

import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

logger = logging.getLogger(__name__)

T = TypeVar("T")


def run_yielding(work: Callable[[], T], *, niceness: int) -> T:
    """`work()` in a thread at `niceness` more than now (0: in this thread, as it is);
    returns what it returns, raises what it raises."""
    if niceness <= 0:
        return work()
    result: list[T] = []
    failure: list[BaseException] = []

    def yielding() -> None:
        try:
            _lower_own_priority(niceness)
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        finally:
            connections.close_all()  # the thread's own; it ends here

    thread = threading.Thread(target=yielding, name="yielding-work")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _lower_own_priority(niceness: int) -> None:
    try:
        thread_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(current + niceness, 19))
    except (AttributeError, OSError):  # no per-thread priority here
        logger.debug("could not lower this thread's priority", exc_info=True)


def own_niceness() -> int:
    """This thread's nice value (for tests and logs)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
