"""Writing an import's chunks in file order, on two database connections at once.

On PostgreSQL a third of a chunk's cost comes at its commit, where the deferred
foreign-key checks of its four rows a row run. So while chunk k-1 commits on one
connection, chunk k's statements run on the other. The file's order still holds:

- chunk k starts only once chunk k-1's statements are done, so an address in both is
  added by the earlier chunk and the later one finds it (a repeat, as one writer
  would have reported it);
- chunk k commits only after chunk k-1 committed, so the job's progress (the last
  line committed, which a resumed import starts after) only ever moves forward, and a
  chunk that failed takes every later chunk down with it.

Neither wait can close a circle with the database's own locks: chunk k-1 has no
statement left when chunk k starts, and its commit only checks rows it inserted or
locked itself. With one lane (SQLite, or inside a caller's transaction, whose rows
other connections could not see) the chunks are written one after another in the
calling thread.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from django.db import connection, transaction

from subscriptions.lists.imports.reading import Chunk

Result = TypeVar("Result")


class _Aborted(Exception):
    """An earlier chunk failed; this one rolls back."""


class _Turns:
    """Which chunks have finished their statements and their commit, in file order."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._statements_through = -1
        self._committed_through = -1
        self.error: BaseException | None = None

    def wait_for_statements(self, index: int) -> None:
        self._wait(lambda: self._statements_through >= index)

    def wait_for_commit(self, index: int) -> None:
        self._wait(lambda: self._committed_through >= index)

    def statements_done(self, index: int) -> None:
        with self._changed:
            self._statements_through = index
            self._changed.notify_all()

    def committed(self, index: int) -> None:
        with self._changed:
            self._committed_through = index
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._changed:
            if self.error is None:
                self.error = error
            self._changed.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._changed:
            while not ready():
                if self.error is not None:
                    raise _Aborted
                self._changed.wait()
            if self.error is not None:
                raise _Aborted


_DONE = object()


class ChunkWriter(Generic[Result]):
    """Writes chunks with `write` (in a transaction of its own each) and hands each
    committed chunk with its result to `committed`, in file order, in the calling
    thread. `prepare` runs once per connection before its first chunk."""

    def __init__(
        self,
        *,
        prepare: Callable[[], None],
        write: Callable[[Chunk], Result],
        committed: Callable[[Chunk, Result], None],
        lanes: int,
    ) -> None:
        self._prepare = prepare
        self._write = write
        self._committed = committed
        self._lanes = lanes

    def run(self, chunks: Iterator[Chunk]) -> None:
        if self._lanes == 1:
            self._prepare()
            for chunk in chunks:
                with transaction.atomic():
                    result = self._write(chunk)
                self._committed(chunk, result)
            return
        self._run_lanes(chunks)

    def _run_lanes(self, chunks: Iterator[Chunk]) -> None:
        turns = _Turns()
        inboxes: list[queue.Queue] = [queue.Queue(maxsize=1) for _ in range(self._lanes)]
        finished: queue.Queue = queue.Queue()
        threads = [
            threading.Thread(
                target=self._lane,
                args=(inbox, turns, finished),
                name=f"import-writer-{number}",
                daemon=True,
            )
            for number, inbox in enumerate(inboxes)
        ]
        for thread in threads:
            thread.start()
        try:
            for index, chunk in enumerate(chunks):
                _put(inboxes[index % self._lanes], (index, chunk), turns)
                self._hand_back(finished, timeout=0)
            for inbox in inboxes:
                _put(inbox, _DONE, turns)
            while any(thread.is_alive() for thread in threads):
                self._hand_back(finished, timeout=_POLL_SECONDS)
        except BaseException as exc:
            turns.fail(exc)
            raise
        finally:
            for thread in threads:
                thread.join()
            # Chunks that committed before a failure still get their report lines.
            self._hand_back(finished, timeout=0)
        if turns.error is not None:
            raise turns.error

    def _hand_back(self, finished: queue.Queue, *, timeout: float) -> None:
        """Pass the chunks committed so far on, in order (lanes queue them in commit
        order), waiting up to `timeout` for the first."""
        while True:
            try:
                chunk, result = finished.get(timeout=timeout) if timeout else finished.get_nowait()
            except queue.Empty:
                return
            self._committed(chunk, result)
            timeout = 0

    def _lane(self, inbox: queue.Queue, turns: _Turns, finished: queue.Queue) -> None:
        try:
            self._prepare()
            while (item := _get(inbox, turns)) is not _DONE:
                index, chunk = item
                turns.wait_for_statements(index - 1)
                with transaction.atomic():
                    result = self._write(chunk)
                    turns.statements_done(index)
                    turns.wait_for_commit(index - 1)
                # Queued before the next chunk may commit, so the queue is in order.
                finished.put((chunk, result))
                turns.committed(index)
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread to raise
            turns.fail(exc)
        finally:
            connection.close()


_POLL_SECONDS = 0.2


def _put(inbox: queue.Queue, item: object, turns: _Turns) -> None:
    while turns.error is None:
        try:
            inbox.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue
    raise turns.error


def _get(inbox: queue.Queue, turns: _Turns) -> Any:
    while turns.error is None:
        try:
            return inbox.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue
    raise _Aborted
