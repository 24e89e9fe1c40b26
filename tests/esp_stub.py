"""A stand-in for Postmark's send API: a real HTTP server on 127.0.0.1, scripted with
the answers to give, recording every request it gets. (Scripted answers can be any
JSON, so it stands in for another ESP's send API too; only the default 200 is Postmark's.)

anymail's Postmark backend POSTs JSON to `{POSTMARK_API_URL}email` and reads
`{"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}` back; errors come as 4xx or
5xx with `{"ErrorCode", "Message"}` (https://postmarkapp.com/developer/api/overview).
"""

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `body=None` on a 200 means Postmark's usual success body;
    `drop=True` reads the request and closes the connection without answering;
    `delay` holds the answer back that many seconds (a slow ESP); `hang=True` never
    answers, holding the connection until the stub stops."""

    status: int = 200
    body: dict[str, Any] | list[Any] | None = None
    drop: bool = False
    delay: float = 0.0
    hang: bool = False


ACCEPTED = Reply(200)
DROP_CONNECTION = Reply(drop=True)
HANG = Reply(hang=True)


@dataclass
class Exchange:
    """A request the stub received, recorded on arrival, and what it answered: `status`
    stays None while the answer is held back, and for a dropped connection."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int | None = None
    reply: dict[str, Any] | list[Any] | None = None


class PostmarkStub:
    """Answers with the scripted replies in order, then with ACCEPTED once they run out."""

    def __init__(self, replies: list[Reply] | None = None, *, port: int = 0) -> None:
        self._replies = list(replies or [])
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not running"
        return self._server.server_address[1]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def start(self) -> "PostmarkStub":
        """Listen (again, on the same port after `stop`) and serve in a thread."""
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", self._requested_port), self._handler())
        self._server.daemon_threads = True
        self._requested_port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until `start` again."""
        if self._server is None:
            return
        self._stopping.set()  # lets go of hanging requests
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> "PostmarkStub":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if self._replies else ACCEPTED

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self
        stopping = self._stopping

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                exchange = Exchange(path=self.path, headers=dict(self.headers), body=body)
                stub._record(exchange)
                reply = stub._next_reply()
                time.sleep(reply.delay)
                if reply.hang:
                    stopping.wait()
                if reply.drop or reply.hang:
                    self.close_connection = True
                    self.connection.close()
                    return
                answer = reply.body
                if answer is None and reply.status == 200:
                    answer = {
                        "To": body.get("To", ""),
                        "SubmittedAt": "2026-01-01T00:00:00.0000000Z",
                        "MessageID": str(uuid.uuid4()),
                        "ErrorCode": 0,
                        "Message": "OK",
                    }
                exchange.reply, exchange.status = answer, reply.status
                payload = json.dumps(answer or {}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep the test output quiet

        return Handler
