"""Where a sign-up's time goes: one client, no concurrency, each step of
`POST /api/v1/subscriptions` timed on its own (wall and this process's CPU) against the
whole request and the one-insert view, on the real PostgreSQL and Redis.

    .venv/bin/python -m bench.signup_profile [--requests 500]
"""

import argparse
import sys

from bench import harness, signup

STEPS = """
import json, time
from django.db import connection
from django.test import Client
from django.utils import timezone
from subscriptions.abuse import ratelimit
from subscriptions.signup import fast_path, lookups
from subscriptions.web.forms import SignupForm
from subscriptions.mail.outbox import enqueue
from subscriptions.signup.transitions import ConsentContext
from subscriptions.signup.addresses import canonical_mailbox, normalize_email

N = int(__import__("sys").argv[1])
client = Client(SERVER_NAME="127.0.0.1")
newsletter = lookups.public_newsletters_by_slug()["daily-digest"]
unique = str(time.time_ns())

from subscriptions.abuse.bot_traps import make_form_token

def body(prefix, i):
    return json.dumps({"email": f"{prefix}-{unique}-{i}@example.org",
                       "newsletters": ["daily-digest"],
                       "form_token": make_form_token(rendered_at=time.time() - 10)})

def timed(name, run):
    for i in range(20):
        run(-1 - i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(N):
        run(i)
    print(name, (time.perf_counter() - wall) / N * 1000, (time.process_time() - cpu) / N * 1000)

timed("one-insert view (whole request)", lambda i: client.post(
    "/bench/one-insert", body("p-base", i), content_type="application/json"))
timed("POST /api/v1/subscriptions (whole request)", lambda i: client.post(
    "/api/v1/subscriptions", body("p-api", i), content_type="application/json"))
timed("  rate limits (one Redis call, two windows)", lambda i: ratelimit.enforce_all(
    [("api-ip", "127.0.0.1"), ("api-email", canonical_mailbox(f"p-{unique}-{i}@example.org"))]))
timed("  form: address check and newsletters", lambda i: SignupForm(
    data=json.loads(body("p-form", i)), remote_ip=None).is_valid())
timed("  the sign-up's one SQL statement", lambda i: fast_path.insert_new_address(
    address=f"p-sql-{unique}-{i}@example.org", newsletter_ids=[newsletter.pk], source="api",
    actor="reader", consent=ConsentContext(), consent_kind="signup", language="",
    now=timezone.now()))
timed("  enqueue after commit (one LPUSH)", lambda i: enqueue(10**12 + i))
timed("  address validation alone", lambda i: normalize_email(f"p-v-{unique}-{i}@example.org"))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    options = parser.parse_args()
    print("Preparing: a fresh database with the demo newsletters ...")
    signup.prepare_database()
    env = harness.environment(**signup.UNLIMITED)
    out = harness.django(
        f"import sys\nsys.argv = ['profile', '{options.requests}']\n" + STEPS, env=env
    )
    # The enqueued tasks have no worker here; they must not wait in the bench's Redis DB.
    harness.django(
        "import redis\nfrom django.conf import settings\n"
        "redis.Redis.from_url(settings.REDIS_URL).delete('celery')\n",
        env=env,
    )
    rows = [line.rsplit(" ", 2) for line in out.splitlines() if line.strip()]
    whole = next(float(wall) for name, wall, _ in rows if name.startswith("POST"))
    print()
    print(f"{options.requests} requests of each, one after another; ms per request")
    print(f"{'':48} {'wall':>7} {'CPU':>7} {'of API':>7}")
    for name, wall, cpu in rows:
        print(f"{name:48} {float(wall):7.2f} {float(cpu):7.2f} {float(wall) / whole:7.0%}")
    print("(CPU: this process's; the database's and Redis's own work shows in wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
