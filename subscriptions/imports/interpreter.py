"""The interpreter's settings for an import's length: the part of it that is Python
reads, checks and hands on a few million short-lived values in three threads."""

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def set_for_bulk_work() -> Iterator[None]:
    """Two interpreter settings for the length of an import, restored after it.

    - The reading thread and the writing ones take turns holding the GIL; at Python's
      default 5 ms a turn, a writer waits that long after each of the dozen statements
      a chunk sends. Shorter turns make a million-row import a fifth faster.
    - The cyclic garbage collector runs every 700 new containers, and every so often
      walks all of them, Django's own hundreds of thousands included, while an import
      makes a few million rows and fields that hold no cycles. Setting the objects that
      exist at the start aside (freeze) and collecting every 50,000 new containers
      instead takes a quarter off the import's Python time (bench/import_export.py).
    """
    previous_interval = sys.getswitchinterval()
    previous_threshold = gc.get_threshold()
    # A process that froze its objects itself (a pre-forking server, to share their
    # memory with its children) keeps them frozen.
    frozen_before = gc.get_freeze_count() > 0
    sys.setswitchinterval(0.0005)
    gc.freeze()
    gc.set_threshold(50_000, *previous_threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous_threshold)
        if not frozen_before:
            gc.unfreeze()
        sys.setswitchinterval(previous_interval)
