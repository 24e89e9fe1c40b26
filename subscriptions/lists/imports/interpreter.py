"""The interpreter's settings for an import's length: the part of it that is Python
reads, checks and hands on a few million short-lived values in three threads.

The settings are the process's, and a worker runs tasks in threads (`--pool threads`
in docker-compose.yml): two imports may overlap, and end in either order. So the first
import to start sets them and the last to end puts them back.
"""

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Python's default is 5 ms.
SWITCH_INTERVAL_SECONDS = 0.0005
# Python's default is 700.
NEW_CONTAINERS_PER_COLLECTION = 50_000


class _BulkWork:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved: tuple[float, tuple[int, ...], bool] | None = None

    def enter(self) -> None:
        with self._lock:
            if self._running == 0:
                threshold = gc.get_threshold()
                # A process that froze its objects itself (a pre-forking server, to
                # share their memory with its children) keeps them frozen.
                self._saved = (sys.getswitchinterval(), threshold, gc.get_freeze_count() > 0)
                sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
                gc.freeze()
                gc.set_threshold(NEW_CONTAINERS_PER_COLLECTION, *threshold[1:])
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0 and self._saved is not None:
                interval, threshold, frozen_before = self._saved
                gc.set_threshold(*threshold)
                if not frozen_before:
                    gc.unfreeze()
                sys.setswitchinterval(interval)
                self._saved = None


_bulk_work = _BulkWork()


@contextmanager
def set_for_bulk_work() -> Iterator[None]:
    """Two interpreter settings while an import runs.

    - The reading thread and the writing ones take turns holding the GIL; at Python's
      default 5 ms a turn, a writer waits that long after each of the dozen statements
      a chunk sends. Shorter turns make a large import faster (BENCHMARKS.md).
    - The cyclic garbage collector runs every 700 new containers, and every so often
      walks all of them, Django's own hundreds of thousands included, while an import
      makes a few million rows and fields that hold no cycles. Setting the objects that
      exist at the start aside (freeze) and collecting every 50,000 new containers
      instead takes much of the import's Python time off (BENCHMARKS.md).
    """
    _bulk_work.enter()
    try:
        yield
    finally:
        _bulk_work.leave()
