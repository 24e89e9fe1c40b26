"""A stand-in SMTP server on 127.0.0.1 that refuses mail the way real ones do, quoting
the recipient's address in its answers (as Postfix does: "<ann@example.org>: Recipient
address rejected"). Django's real SMTP backend talks to it, so the exceptions it raises
are the ones production sees.

Each delivery attempt takes the next scripted outcome: DEFER answers the message's
DATA with a 451 (smtplib raises SMTPDataError, which the outbox retries); REFUSE
answers RCPT with a 550 (SMTPRecipientsRefused, which fails the row). Once the script
runs out, mail is accepted. `seconds_per_message` makes it as slow as a real server
under load; `delivered` lists the recipients of every message it accepted.
"""

import socketserver
import threading
import time

DEFER = "defer"
REFUSE = "refuse"


class SMTPStub:
    def __init__(self, script: list[str], *, seconds_per_message: float = 0.0) -> None:
        self._script = list(script)
        self._lock = threading.Lock()
        self._seconds_per_message = seconds_per_message
        self.attempts = 0
        self.delivered: list[str] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> "SMTPStub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_outcome(self) -> str | None:
        with self._lock:
            self.attempts += 1
            return self._script.pop(0) if self._script else None

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        stub = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 smtp.example.net ESMTP")
                outcome: str | None = None
                recipient = ""
                for raw in self.rfile:
                    command = raw.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 smtp.example.net")
                    elif verb == "MAIL":
                        outcome = stub._next_outcome()
                        self.reply("250 2.1.0 Ok")
                    elif verb == "RCPT":
                        recipient = command.partition(":")[2].strip()
                        if outcome == REFUSE:
                            self.reply(
                                f"550 5.1.1 {recipient}: Recipient address rejected: "
                                "User unknown in virtual mailbox table"
                            )
                        else:
                            self.reply("250 2.1.5 Ok")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        for line in self.rfile:
                            if line in (b".\r\n", b".\n"):
                                break
                        time.sleep(stub._seconds_per_message)
                        if outcome == DEFER:
                            self.reply(f"451 4.3.0 {recipient}: Temporary lookup failure")
                        else:
                            with stub._lock:
                                stub.delivered.append(recipient.strip("<>"))
                            self.reply("250 2.0.0 Ok: queued")
                    elif verb == "QUIT":
                        self.reply("221 2.0.0 Bye")
                        return
                    else:  # RSET, NOOP
                        self.reply("250 2.0.0 Ok")

        return Handler
