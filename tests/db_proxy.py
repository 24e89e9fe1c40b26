"""A TCP proxy of a test's own in front of the shared PostgreSQL, which the test can cut
and restore: the real way to see what the app does while its database is unreachable,
without stopping a server other tests (and other people) use."""

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the target. `cut()` closes every live connection and
    refuses new ones (accepted and closed at once, as a server that went away);
    `restore()` forwards again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "CuttableProxy":
        self._acceptor.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closed = True
        self.cut()
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            live, self._live = self._live, set()
        for sock in live:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions in one thread, until either side closes or the proxy cuts."""
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select(timeout=0.5):
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
                    with self._lock:
                        if client not in self._live:
                            return
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    self._live.difference_update((client, upstream))
                _close(client)
                _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
