"""A stand-in for a human-check provider (Cloudflare Turnstile's shape), served on
127.0.0.1: the real ones need the internet. `/api.js` renders a checkbox into every
`.cf-turnstile` element on load and exposes `turnstile.render(element)` for widgets
inserted later, as Turnstile does; ticking it puts an answer in the hidden
`cf-turnstile-response` field. `/siteverify` accepts that answer with our secret."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

ANSWER = "stand-in-pass"

SCRIPT = """
(function () {
  function render(element) {
    if (element.getAttribute("data-rendered") === "true") return;
    element.setAttribute("data-rendered", "true");
    var label = document.createElement("label");
    var box = document.createElement("input");
    box.type = "checkbox";
    var answer = document.createElement("input");
    answer.type = "hidden";
    answer.name = "cf-turnstile-response";
    box.addEventListener("change", function () {
      answer.value = box.checked ? "ANSWER" : "";
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" I am human"));
    element.appendChild(label);
    element.appendChild(answer);
  }
  window.turnstile = { render: render };
  var widgets = document.querySelectorAll(".cf-turnstile");
  for (var i = 0; i < widgets.length; i++) render(widgets[i]);
})();
""".replace("ANSWER", ANSWER)


class ChallengeStub:
    def __init__(self, *, secret: str) -> None:
        self.secret = secret
        self.verified: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ChallengeStub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(200, SCRIPT.encode(), "text/javascript")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fields = dict(parse_qsl(self.rfile.read(length).decode()))
                stub.verified.append(fields)
                success = fields.get("response") == ANSWER and fields.get("secret") == stub.secret
                self._answer(200, json.dumps({"success": success}).encode(), "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Quiet: the test says what failed."""

        return Handler
