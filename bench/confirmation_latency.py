"""Confirmation latency: at a steady rate of sign-ups (200 a second), the time from a
sign-up's outbox row (stamped in its transaction, just before the commit) to the worker
handing its confirmation email to the email backend. Baseline, in the same run: the
time Celery and Redis alone take from `delay()` of a task that does nothing to a worker
starting it, at the same rate.

Targets (issue 8): p50 under 100 ms, p99 under 500 ms; every sign-up's email handed over.

    .venv/bin/python -m bench.confirmation_latency [--rate 200] [--seconds 15]
"""

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from statistics import quantiles

from bench import harness
from bench.latency_tasks import STARTED_KEY
from bench.recording_email import HANDED_OVER_KEY
from bench.signup import UNLIMITED

# A separate process sends the sign-ups at a fixed pace: request i leaves at start + i/rate
# (a request that takes longer delays only its own thread's next one).
PACED_SIGNUPS = """
import http.client, json, sys, threading, time
from subscriptions.abuse.bot_traps import make_form_token
# As if each reader's form was rendered a few seconds before they sent it.
rendered_at = time.time() - 10
host, port, rate, seconds, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \\
    float(sys.argv[4]), 16
total = int(rate * seconds)
start = time.time() + 0.5
failures = []
def run(offset):
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for i in range(offset, total, threads):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"email": f"latency-{i}@example.org", "newsletters": ["daily-digest"],
                           "form_token": make_form_token(rendered_at=rendered_at)})
        connection.request("POST", "/api/v1/subscriptions", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 202:
            failures.append(response.status)
workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
for worker in workers: worker.start()
for worker in workers: worker.join()
print(total, len(failures), time.time() - start)
"""

PACED_TASKS = """
import sys, time
from bench.latency_tasks import note_start
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
total = int(rate * seconds)
start = time.time() + 0.5
for i in range(total):
    delay = start + i / rate - time.time()
    if delay > 0:
        time.sleep(delay)
    note_start.delay(time.time())
print(total)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="sign-ups a second")
    parser.add_argument("--seconds", type=float, default=15, help="length of each run")
    options = parser.parse_args()

    print("Preparing: a fresh database with the demo newsletters ...")
    harness.fresh_database()
    harness.django(
        "from django.core.management import call_command\n"
        "call_command('load_demo_newsletters', verbosity=0)\n"
    )
    env = harness.environment(EMAIL_BACKEND="bench.recording_email.EmailBackend", **UNLIMITED)
    with harness.gunicorn(**env) as base, celery_worker(env):
        wait_for_worker(env)
        sent = int(harness.django(PACED_TASKS, str(options.rate), str(options.seconds), env=env))
        baseline = wait_for(STARTED_KEY, sent, env)
        host, port = base.removeprefix("http://").split(":")
        total, failures, took = harness.django(
            PACED_SIGNUPS, host, port, str(options.rate), str(options.seconds), env=env
        ).split()
        handed_over = wait_for(HANDED_OVER_KEY, int(total), env)

    baseline_ms = [1000 * (started - sent_at) for sent_at, started in baseline]
    rows = dict(
        line.split()
        for line in harness.django(
            "from subscriptions.models import OutboundEmail\n"
            "for pk, created in OutboundEmail.objects.values_list('pk', 'created_at'):\n"
            "    print(pk, created.timestamp())\n",
            env=env,
        ).splitlines()
    )
    # In the order the sign-ups were made, to see whether the latency holds or grows.
    timed = sorted(
        (float(rows[str(int(pk))]), 1000 * (handed - float(rows[str(int(pk))])))
        for pk, handed in handed_over
    )
    signup_ms = [latency for _, latency in timed]
    achieved = int(total) / float(took)
    print()
    print(
        f"{int(total):,} sign-ups at {achieved:.0f}/s (asked for {options.rate:.0f}/s) for "
        f"{options.seconds:.0f} s; {harness.server_description()}; "
        f"celery worker {' '.join(WORKER_ARGS)}"
    )
    print(f"{'':44} {'count':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in [
        ("delay() to a worker starting a no-op task", baseline_ms),
        ("sign-up's outbox row to the email handed over", signup_ms),
    ]:
        p50, p90, p99 = percentiles(values)
        print(f"{name:44} {len(values):7d} {p50:8.1f} {p90:8.1f} {p99:8.1f} {max(values):8.1f}")
    p50, _, p99 = percentiles(signup_ms)
    base_p50, _, _ = percentiles(baseline_ms)
    thirds = [signup_ms[i * len(signup_ms) // 3 : (i + 1) * len(signup_ms) // 3] for i in range(3)]
    print(
        "sign-up p50 in each third of the run (steady or growing): "
        + " / ".join(f"{percentiles(third)[0]:.1f}" for third in thirds)
        + " ms"
    )
    print()
    print(f"sign-up p50 / no-op task p50: {p50 / base_p50:.1f}")
    print(
        f"p50 {p50:.1f} ms (target < 100): {'met' if p50 < 100 else 'MISSED'}; "
        f"p99 {p99:.1f} ms (target < 500): {'met' if p99 < 500 else 'MISSED'}"
    )
    problems = []
    if int(failures):
        problems.append(f"{failures} sign-ups were not answered 202")
    if len(handed_over) != int(total) or len(rows) != int(total):
        problems.append(
            f"{total} sign-ups, {len(rows)} outbox rows, {len(handed_over)} emails handed over"
        )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


# The worker as docker-compose.yml runs it (BENCH_WORKER_ARGS tries another).
WORKER_ARGS = os.environ.get("BENCH_WORKER_ARGS", "--pool threads --concurrency 8").split()


@contextmanager
def celery_worker(env: dict[str, str]):
    """A Celery worker as production runs it, with the baseline's task included;
    stopped when the block ends."""
    log = (harness.REPO / "var" / "bench-worker.log").open("ab")
    process = subprocess.Popen(
        [
            harness.PYTHON,
            "-m",
            "celery",
            "-A",
            "newsroom",
            "worker",
            "--include",
            "bench.latency_tasks",
            "--without-gossip",
            "--without-mingle",
            *WORKER_ARGS,
        ],
        cwd=harness.REPO,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=log,
    )
    try:
        yield process
    finally:
        harness.stop(process, timeout=20)
        log.close()


def wait_for_worker(env: dict[str, str]) -> None:
    harness.django(
        "import time\n"
        "from newsroom.celery import app\n"
        "deadline = time.time() + 60\n"
        "while not app.control.ping(timeout=1.0):\n"
        "    if time.time() > deadline:\n"
        "        raise SystemExit('the worker did not start')\n",
        env=env,
    )


def wait_for(key: str, expected: int, env: dict[str, str], timeout: float = 60) -> list:
    """The pairs of numbers the worker recorded under `key`, once there are `expected`
    of them (or the timeout passed)."""
    out = harness.django(
        "import sys, time, redis\n"
        "from django.conf import settings\n"
        "client = redis.Redis.from_url(settings.REDIS_URL)\n"
        f"deadline = time.time() + {timeout}\n"
        f"while client.llen({key!r}) < {expected} and time.time() < deadline:\n"
        "    time.sleep(0.2)\n"
        f"for item in client.lrange({key!r}, 0, -1):\n"
        "    print(item.decode())\n",
        env=env,
    )
    return [tuple(float(n) for n in line.split()) for line in out.splitlines() if line.strip()]


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)")
    sys.exit(code)
