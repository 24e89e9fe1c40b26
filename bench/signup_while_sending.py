"""Sign-up throughput while an issue goes out to 1,000,000 readers, against the same
sign-ups on the same site when nothing is being sent, in one run.

Target (issue 18): sending an issue must not slow the site: the API's sign-ups a second
while a million-reader issue sends stay at least 0.7 of its sign-ups a second idle.

    .venv/bin/python -m bench.signup_while_sending [--seconds 15] [--connections 64]

One fresh database: the demo newsletters and 1,000,000 active readers of one of them,
built set-based and analysed; gunicorn as production runs it; wrk signs new addresses
up to another newsletter (as bench.signup does), first with nothing else running, then
while two Celery workers send the issue through anymail's Mailgun backend to the
stand-in in tests/mailgun_stub.py (bench.issue_send's set-up). The workers are the
issues' own, at a lower CPU weight than the site, as docker-compose.yml's sender
(`BENCH_SENDER_WEIGHT=normal` gives them the site's, for comparison). The database is
dropped at the end.
"""

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg

from bench import harness, issue_send, signup
from tests.mailgun_stub import MailgunStub

TARGET = 0.7


def main() -> int:
    options = harness.load_options(__doc__, seconds=15)
    load = {"connections": options.connections, "seconds": options.seconds}

    print("Preparing: a fresh database with 1,000,000 active readers ...", flush=True)
    signup.prepare_database()
    body = harness.REPO / "var" / "bench-issue.md"
    body.parent.mkdir(exist_ok=True)
    body.write_text(issue_send.BODY, encoding="utf-8")
    try:
        issue_id = int(harness.django(issue_send.BUILD, "1000000", str(body)).splitlines()[-1])
        with (
            tempfile.TemporaryDirectory(prefix="bench-busy-") as scratch,
            harness.gunicorn(**signup.UNLIMITED) as base,
            # The provider's stand-in at the lowest priority: in production its work
            # runs on the provider's machines, not beside the site.
            MailgunStub(keep_calls=False, nice=19) as stub,
        ):
            scripts = signup.write_scripts(Path(scratch), base, seconds=max(options.seconds, 3))
            signup.warm_up(base, scripts)
            idle = replace(
                signup.load_api(base, scripts["api"], **load),
                name="POST /api/v1/subscriptions, idle",
            )
            env = harness.environment(
                EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
                ANYMAIL=(
                    '{"MAILGUN_API_KEY": "bench-key", "MAILGUN_SENDER_DOMAIN": '
                    f'"mg.news.example.org", "MAILGUN_API_URL": "{stub.api_url}"}}'
                ),
            )
            # As docker-compose.yml runs them: the issues' own workers, at a lower CPU
            # weight than the site (BENCH_SENDER_WEIGHT=normal: the same weight).
            low = os.environ.get("BENCH_SENDER_WEIGHT", "low") == "low"
            workers = [issue_send._worker(n, env, low_weight=low) for n in range(2)]
            try:
                issue_send._wait_for_workers(env, 2)
                harness.django(issue_send.PRESS_SEND, str(issue_id), env=env)
                _wait_for_recipients(stub, 20_000)
                # Another script of the same shape: new addresses, tokens of its own.
                busy = replace(
                    signup.load_api(base, scripts["base2"], **load),
                    name="POST /api/v1/subscriptions, while the issue sends",
                )
                sent_meanwhile = sum(stub.recipients.values())
                still_sending = _status(issue_id) == "sending"
            finally:
                for worker in workers:
                    harness.stop(worker, timeout=20)
    finally:
        harness.drop_database()

    print()
    print(f"{harness.server_description()}; wrk -t2 -c{options.connections} -d{options.seconds}s")
    harness.report([busy], idle)
    ratio = busy.requests_per_second / idle.requests_per_second
    print(
        f"\nRecipients the issue reached by the end of the busy run: {sent_meanwhile:,}; "
        f"still sending then: {still_sending}"
    )
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"While sending / idle: {ratio:.2f} (target >= {TARGET}): {verdict}")
    problems = [f"{r.name}: {r.errors} errors" for r in (idle, busy) if r.errors]
    if not still_sending:
        problems.append("the issue finished before the busy run ended: nothing to compare")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def _wait_for_recipients(stub: MailgunStub, count: int, timeout: float = 120) -> None:
    """Until the issue is well under way (its audience fixed, batches flowing)."""
    deadline = time.monotonic() + timeout
    while sum(stub.recipients.values()) < count:
        if time.monotonic() > deadline:
            sys.exit("the issue did not start sending")
        time.sleep(0.2)


def _status(issue_id: int) -> str:
    with psycopg.connect(harness.DATABASE_URL, autocommit=True) as connection:
        row = connection.execute(
            "SELECT status FROM subscriptions_issue WHERE id = %s", [issue_id]
        ).fetchone()
    return row[0] if row else ""


if __name__ == "__main__":
    sys.exit(main())
