"""A stand-in for Mailgun's send API (`POST /v3/<domain>/messages`, multipart form), a
real HTTP server on 127.0.0.1 in a thread, for anymail's Mailgun backend pointed at it
with `MAILGUN_API_URL`.

It answers as Mailgun does (`{"id": ..., "message": "Queued. Thank you."}`, or the
scripted status), counts every recipient of every accepted call, and checks each
recipient's variables the way Mailgun would use them: every `%recipient.KEY%` in the
message must have a value for every recipient (Mailgun would send the placeholder
itself otherwise), and `h:`/`v:` fields are filled per recipient
(https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending).
"""

import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_VARIABLE = re.compile(r"%recipient\.([^%]+)%")


@dataclass
class Call:
    domain: str
    to: list[str]
    fields: dict[str, str]
    variables: dict[str, dict[str, str]]


@dataclass
class MailgunStub:
    """`replies`: the HTTP statuses to answer with, in order, then 200s. With
    `keep_calls=False` only the counts are kept (a million recipients' variables would
    not fit a benchmark's memory budget)."""

    replies: list[int] = field(default_factory=list)
    keep_calls: bool = True
    calls: list[Call] = field(default_factory=list)
    recipients: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    accepted_calls: int = 0
    # Seconds the stand-in spent reading and checking calls (a benchmark's baseline).
    busy_seconds: float = 0.0
    # A nice value for the threads that answer calls: the provider's work, which in
    # production runs on its machines, not ours (a benchmark of the site's own speed).
    nice: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def api_url(self) -> str:
        assert self._server is not None, "the stub is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v3"

    def start(self) -> "MailgunStub":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "MailgunStub":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def accept(self, path: str, content_type: str, body: bytes) -> int:
        """Check and count one call; returns the status to answer with."""
        with self._lock:
            status = self.replies.pop(0) if self.replies else 200
        if status != 200:
            return status
        started = time.perf_counter()
        call = self.parse(path, content_type, body)
        problems = self.check(call)
        with self._lock:
            self.busy_seconds += time.perf_counter() - started
            self.accepted_calls += 1
            self.recipients.update(call.to)
            self.problems.extend(problems)
            if self.keep_calls:
                self.calls.append(call)
        return 200

    def parse(self, path: str, content_type: str, body: bytes) -> Call:
        return _parse(path, content_type, body)

    def check(self, call: Call) -> list[str]:
        return _check(call)

    def answer(self, status: int) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body to answer a call with."""
        if status == 200:
            answer = {"id": f"<{uuid.uuid4().hex}@stub>", "message": "Queued. Thank you."}
        else:
            answer = {"message": "stand-in's scripted refusal"}
        return status, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                if stub.nice:  # this connection's own thread
                    thread = threading.get_native_id()
                    os.setpriority(os.PRIO_PROCESS, thread, stub.nice)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                accepted = stub.accept(self.path, self.headers.get("Content-Type", ""), body)
                status, headers, raw = stub.answer(accepted)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _parse(path: str, content_type: str, body: bytes) -> Call:
    """The form as Mailgun reads it: URL-encoded, or multipart (with attachments)."""
    fields: dict[str, list[str]]
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True)
    else:
        form = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        fields = {}
        for part in form.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            fields.setdefault(str(name), []).append(payload.decode("utf-8"))
    domain = path.split("/")[-2] if path.endswith("/messages") else ""
    variables = json.loads(fields.get("recipient-variables", ["{}"])[0])
    single = {name: values[0] for name, values in fields.items() if name != "to"}
    return Call(domain=domain, to=fields.get("to", []), fields=single, variables=variables)


def _check(call: Call) -> list[str]:
    used = set()
    for name in (
        "text",
        "html",
        "subject",
        *[n for n in call.fields if n.startswith(("h:", "v:"))],
    ):
        used.update(_VARIABLE.findall(call.fields.get(name, "")))
    problems = []
    if not call.domain:
        problems.append("the call was not to /v3/<domain>/messages")
    for address in call.to:
        missing = used - set(call.variables.get(address, {}))
        if missing:
            problems.append(f"{address}: no value for {sorted(missing)}")
    return problems
