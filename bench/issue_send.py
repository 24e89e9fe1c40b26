"""An issue to 1,000,000 readers through anymail's Mailgun backend, pointed at a local
stand-in for Mailgun's API (tests/mailgun_stub.py: it accepts the batch calls, counts
every recipient and checks each one's variables), sent by two Celery workers as
production runs them.

Targets (issue 18): from pressing Send to the last batch accepted in at most 120 s
(over 8,000 recipients a second), each worker's peak RSS at most 200 MB, every
recipient exactly once.

    .venv/bin/python -m bench.issue_send [--readers 1000000] [--workers 2]
    .venv/bin/python -m bench.issue_send --smtp [--readers 50000]

With `--smtp`, through Django's SMTP backend to a local sink (tests/smtp_stub.py), one
message a reader over a reused connection; target: at least 500 messages a second.

Prints the time to fix the audience, to send, calls and recipients a second, and each
worker's peak memory (VmHWM), with the baseline of the same run: the stand-in's own
time for the calls (what the provider's side costs on this machine, which a real
provider's servers would not take from ours). The database is fresh, built set-based
and analysed, and sent from at once: no checkpoint is forced. It is dropped at the end.
"""

import argparse
import smtplib
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import harness
from tests.mailgun_stub import MailgunStub
from tests.smtp_stub import SMTPStub

TARGET_SECONDS = 120
TARGET_RSS_MB = 200
# Through SMTP to a local sink, one message a reader (issue 18).
TARGET_SMTP_RATE = 500
SMTP_READERS = 50_000

BUILD = """
import sys
from django.db import connection, transaction
from subscriptions.models import Newsletter
newsletter, _ = Newsletter.objects.get_or_create(
    slug="explaining-ukraine", defaults={"name": "Explaining Ukraine"}
)
with transaction.atomic(), connection.cursor() as cursor:
    cursor.execute("SET LOCAL session_replication_role = replica")
    cursor.execute(
        "INSERT INTO subscriptions_subscriber (email, name, attributes, language, created_at) "
        "SELECT 'reader' || n || '@example.org', '', '{}', "
        "CASE WHEN n %% 10 = 0 THEN 'uk' ELSE '' END, now() FROM generate_series(1, %s) n",
        [int(sys.argv[1])],
    )
    cursor.execute(
        "INSERT INTO subscriptions_subscription (subscriber_id, newsletter_id, status, source, "
        "created_at, pending_since, confirmed_at, updated_at) "
        "SELECT id, %s, 'active', 'import', now(), now(), now(), now() "
        "FROM subscriptions_subscriber",
        [newsletter.pk],
    )
with connection.cursor() as cursor:
    cursor.execute("ANALYZE subscriptions_subscriber")
    cursor.execute("ANALYZE subscriptions_subscription")
from subscriptions.issues import services
issue = services.create_issue(
    newsletter=newsletter,
    subject="Thursday: what the front line looks like",
    body=open(sys.argv[2]).read(),
    actor="bench",
)
print(issue.pk)
"""

PRESS_SEND = """
import sys
import time
from subscriptions.issues import services
started = time.time()
issue = services.send_now(issue_id=int(sys.argv[1]), actor="bench")
print(started, time.time(), issue.audience)
"""

BODY = """Good morning. Here is what happened overnight, and what it means.

## The front line

A paragraph of reporting, with [a link to the full story](https://news.example.org/story/)
and **what our correspondent saw**. Another sentence or two, as a real issue has.

> A quotation from someone who was there.

## What to read next

- [The first story](https://news.example.org/a/)
- [The second story](https://news.example.org/b/)
- [The third story](https://news.example.org/c/)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--smtp", action="store_true", help="through Django's SMTP backend to a local sink"
    )
    options = parser.parse_args()
    readers = options.readers or (SMTP_READERS if options.smtp else 1_000_000)

    print(f"Preparing: a fresh database with {readers:,} active readers ...", flush=True)
    harness.fresh_database()
    body = harness.REPO / "var" / "bench-issue.md"
    body.parent.mkdir(exist_ok=True)
    body.write_text(BODY, encoding="utf-8")
    baseline_rate = 0.0
    try:
        issue_id = int(harness.django(BUILD, str(readers), str(body)).splitlines()[-1])
        if options.smtp:
            with SMTPStub([]) as sink:
                env = harness.environment(
                    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                    EMAIL_HOST="127.0.0.1",
                    EMAIL_PORT=str(sink.port),
                )
                baseline_rate = _smtp_baseline(sink.port)
                sink.delivered.clear()
                sent = _send(issue_id, env, options.workers)
                recipients, calls, problems, stub_seconds = Counter(sink.delivered), 0, [], 0.0
        else:
            with MailgunStub(keep_calls=False) as stub:
                env = harness.environment(
                    EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
                    ANYMAIL=(
                        '{"MAILGUN_API_KEY": "bench-key", "MAILGUN_SENDER_DOMAIN": '
                        f'"mg.news.example.org", "MAILGUN_API_URL": "{stub.api_url}"}}'
                    ),
                )
                sent = _send(issue_id, env, options.workers)
                recipients, calls, problems = stub.recipients, stub.accepted_calls, stub.problems
                stub_seconds = stub.busy_seconds
    finally:
        harness.drop_database()

    total = sent.finished - sent.pressed
    expected = sent.audience
    once = sum(1 for count in recipients.values() if count == 1)
    print(f"\nAudience fixed: {expected:,} readers in {sent.started - sent.pressed:.1f} s")
    print(f"Pressing Send to the last batch accepted: {total:.1f} s")
    print(f"  {expected / total:,.0f} recipients a second")
    if not options.smtp:
        print(f"  {calls / total:.1f} calls a second")
        print(f"  the stand-in's own time for the calls (baseline): {stub_seconds:.1f} s")
    print(f"  worker peak RSS: {', '.join(f'{p:.0f} MB' for p in sent.peaks)}")
    print(
        f"Recipients counted by the stand-in: {sum(recipients.values()):,} in all, "
        f"{len(recipients):,} different, {once:,} exactly once; variable problems: {len(problems)}"
    )
    exact = len(recipients) == expected == once and not problems
    print(f"Every recipient exactly once: {'met' if exact else 'PROBLEM'}")
    if options.smtp:
        rate = expected / total
        fast = rate >= TARGET_SMTP_RATE
        print(
            f"  baseline: the sink taking a ready-made message over one connection, "
            f"{baseline_rate:,.0f} a second (ours {rate / baseline_rate:.2f} of it)"
        )
        print(
            f"SMTP, one message a reader: {rate:,.0f} a second "
            f"(target >= {TARGET_SMTP_RATE}): {'met' if fast else 'MISSED'}"
        )
    else:
        fast = total <= TARGET_SECONDS
        print(
            f"Send time {total:.1f} s (target <= {TARGET_SECONDS}): {'met' if fast else 'MISSED'}"
        )
    lean = max(sent.peaks) <= TARGET_RSS_MB
    print(
        f"Peak RSS {max(sent.peaks):.0f} MB (target <= {TARGET_RSS_MB}): "
        f"{'met' if lean else 'MISSED'}"
    )
    return 0 if exact else 1


def _smtp_baseline(port: int, messages: int = 5000) -> float:
    """Messages a second the sink takes from smtplib over one connection, each a
    ready-made message of an issue's size: the floor under any sender on this machine."""
    message = ("Subject: Thursday\r\n\r\n" + BODY * 8).encode()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        started = time.perf_counter()
        for n in range(messages):
            connection.sendmail("hello@example.org", [f"baseline{n}@example.org"], message)
        return messages / (time.perf_counter() - started)


@dataclass
class Sent:
    pressed: float
    started: float
    finished: float
    audience: int
    peaks: list[float]


def _send(issue_id: int, env: dict[str, str], count: int) -> Sent:
    """Start the workers, press Send, wait for the issue to be sent."""
    workers = [_worker(n, env) for n in range(count)]
    try:
        _wait_for_workers(env, count)
        pressed, started, audience = harness.django(PRESS_SEND, str(issue_id), env=env).split()
        finished = _wait_until_sent(issue_id, timeout=900)
        peaks = [_peak_rss_mb(worker.pid) for worker in workers]
    finally:
        for worker in workers:
            harness.stop(worker, timeout=20)
    return Sent(float(pressed), float(started), finished, int(audience), peaks)


def _worker(n: int, env: dict[str, str], *, low_weight: bool = False) -> subprocess.Popen:
    """A worker of the issues' queue, as docker-compose.yml's sender. `low_weight`: at
    the lower CPU weight the sender has there (compose's `cpu_shares`), given here the
    bare machine's way: its scheduling group's nice value (Linux's autogroup; a process
    in a session of its own is weighed against the site's as a group, whatever the
    nice value of its threads)."""
    log = (harness.REPO / "var" / f"bench-issue-worker-{n}.log").open("ab")
    worker = subprocess.Popen(  # noqa: S603 - our interpreter and arguments
        [
            harness.PYTHON, "-m", "celery", "-A", "newsroom", "worker",
            "--pool", "threads", "--concurrency", "1",
            "-Q", env.get("ISSUE_QUEUE", "issues"),
            "--without-gossip", "--without-mingle", "-n", f"bench-issue-{n}@%h",
        ],
        cwd=harness.REPO,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=log,
    )  # fmt: skip
    if low_weight:
        Path(f"/proc/{worker.pid}/autogroup").write_text("19")
    return worker


def _wait_for_workers(env: dict[str, str], count: int) -> None:
    harness.django(
        "import time\n"
        "from newsroom.celery import app\n"
        "deadline = time.time() + 60\n"
        f"while len(app.control.ping(timeout=1.0)) < {count}:\n"
        "    if time.time() > deadline:\n"
        "        raise SystemExit('the workers did not start')\n",
        env=env,
    )


def _wait_until_sent(issue_id: int, *, timeout: float) -> float:
    """When the issue's last batch was recorded (its finish time), as a Unix time."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(harness.DATABASE_URL, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT status, extract(epoch FROM finished_at) FROM subscriptions_issue "
                "WHERE id = %s",
                [issue_id],
            ).fetchone()
            if row and row[0] == "sent":
                return float(row[1])
            time.sleep(0.5)
    sys.exit("the issue did not finish in time")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
