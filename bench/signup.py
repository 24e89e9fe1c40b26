"""Sign-up throughput and latency: `POST /api/v1/subscriptions` and the HTML form, each
request a new address, against a Django view that inserts one row, all under the same
gunicorn in one run.

Targets (issue 8): the API serves at least 70% of the one-insert view's requests/s, p99
under 100 ms, no errors; every successful answer left exactly one subscriber and one
queued confirmation email.

    .venv/bin/python -m bench.signup [--seconds 20] [--connections 64]
"""

import argparse
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import harness
from bench.baselines import ONE_INSERT_TABLE

NEWSLETTER = "daily-digest"
# Generous limits: the load comes from one address, and the limits have tests of their
# own (tests/test_rate_limits.py).
UNLIMITED = {
    f"RATE_LIMIT_{name}": "100000000/h" for name in ("FORM_IP", "FORM_EMAIL", "API_IP", "API_EMAIL")
}

# wrk runs this in each of its threads: a new address per request.
LUA = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local email = string.format("%s-%d-%d@example.org", "{prefix}", tid, counter)
  return wrk.format("POST", nil, {headers}, {body})
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each load run")
    parser.add_argument("--connections", type=int, default=64)
    options = parser.parse_args()
    harness.require("wrk")

    print("Preparing: a fresh database with the demo newsletters ...")
    harness.fresh_database()
    harness.django(
        "from django.core.management import call_command\n"
        "from django.db import connection\n"
        "call_command('load_demo_newsletters', verbosity=0)\n"
        "with connection.cursor() as cursor:\n"
        f"    cursor.execute('CREATE TABLE {ONE_INSERT_TABLE} (id bigserial PRIMARY KEY, "
        "email varchar(254) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())')\n"
    )
    load = {"connections": options.connections, "seconds": options.seconds}
    with (
        tempfile.TemporaryDirectory(prefix="bench-signup-") as scratch,
        harness.gunicorn(**UNLIMITED) as base,
    ):
        folder = Path(scratch)
        api_body = (
            'string.format(\'{"email": "%s", "newsletters": ["' + NEWSLETTER + "\"]}', email)"
        )
        json_headers = '{["Content-Type"] = "application/json"}'
        scripts = {
            name: write_lua(folder / f"{name}.lua", prefix=name, headers=headers, body=body)
            for name, headers, body in [
                ("warm", json_headers, api_body),
                ("base1", json_headers, api_body),
                ("api", json_headers, api_body),
                ("base2", json_headers, api_body),
            ]
        }
        scripts["form"] = write_lua(folder / "form.lua", prefix="form", **form_request(base))
        api_url = f"{base}/api/v1/subscriptions"
        harness.wrk("warm-up", api_url, seconds=3, connections=16, script=scripts["warm"])
        first = harness.wrk(
            "one-insert view (baseline)",
            f"{base}/bench/one-insert",
            script=scripts["base1"],
            **load,
        )
        api = harness.wrk("POST /api/v1/subscriptions", api_url, script=scripts["api"], **load)
        form = harness.wrk(
            "POST /subscribe/ (HTML form)", f"{base}/subscribe/", script=scripts["form"], **load
        )
        second = harness.wrk(
            "one-insert view (again)", f"{base}/bench/one-insert", script=scripts["base2"], **load
        )

    stored = dict(
        line.split()
        for line in harness.django(
            "from django.db import connection\n"
            "with connection.cursor() as cursor:\n"
            "    for prefix in ('api', 'form'):\n"
            '        cursor.execute("SELECT COUNT(*) FROM subscriptions_subscriber WHERE email '
            "LIKE %s\", [prefix + '-%'])\n"
            "        print(prefix + '-subscribers', cursor.fetchone()[0])\n"
            '        cursor.execute("SELECT COUNT(*) FROM subscriptions_outboundemail WHERE '
            "to_email LIKE %s AND kind = 'confirmation'\", [prefix + '-%'])\n"
            "        print(prefix + '-confirmations', cursor.fetchone()[0])\n"
            f'    cursor.execute("SELECT COUNT(*) FROM {ONE_INSERT_TABLE} WHERE email LIKE '
            "'base%%'\")\n"
            "    print('baseline-rows', cursor.fetchone()[0])\n"
        ).splitlines()
        if line.strip()
    )
    baseline = harness.mean("one-insert view (baseline, mean)", first, second)
    print()
    print(
        f"gunicorn {' '.join(harness.GUNICORN_ARGS)}; wrk -t2 -c{options.connections} "
        f"-d{options.seconds}s; a new address per request"
    )
    harness.report([first, second, api, form], baseline)
    ratio = api.requests_per_second / baseline.requests_per_second
    print()
    print(
        f"API / baseline: {ratio:.2f} (target >= 0.70): {'met' if ratio >= 0.7 else 'MISSED'}; "
        f"p99 {api.p99_ms:.1f} ms (target < 100): {'met' if api.p99_ms < 100 else 'MISSED'}"
    )
    problems = []
    for result in (first, second, api, form):
        if result.errors:
            problems.append(f"{result.name}: {result.errors} errors")
    # wrk stops counting at the deadline, so the requests in flight then (at most one
    # per connection) may have been stored without being counted.
    for prefix, result in (("api", api), ("form", form)):
        for what in ("subscribers", "confirmations"):
            found = int(stored[f"{prefix}-{what}"])
            if not result.requests <= found <= result.requests + options.connections:
                problems.append(f"{result.name}: {result.requests} answered, {found} {what} stored")
    baseline_rows = int(stored["baseline-rows"])
    if baseline_rows < first.requests + second.requests:
        problems.append(f"baseline: {baseline_rows} rows for {first.requests + second.requests}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def write_lua(path: Path, *, prefix: str, headers: str, body: str) -> Path:
    path.write_text(
        LUA.replace("{prefix}", prefix).replace("{headers}", headers).replace("{body}", body)
    )
    return path


def form_request(base: str) -> dict[str, str]:
    """The HTML form's headers and body: a CSRF cookie and token and a signed render
    time, read from the article page as a browser would, then left to age past
    SIGNUP_FORM_MIN_SECONDS (one token serves every request, as for a reader who
    submits many times)."""
    with urllib.request.urlopen(f"{base}/") as response:  # noqa: S310 - loopback
        page = response.read().decode()
        cookie = response.headers.get_all("Set-Cookie") or []
    csrf_cookie = next(c.split(";")[0] for c in cookie if c.startswith("csrftoken="))
    fields = {
        name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
        for name in ("csrfmiddlewaretoken", "form_token")
    }
    time.sleep(2.5)
    body = (
        f"'csrfmiddlewaretoken={fields['csrfmiddlewaretoken']}&form_token={fields['form_token']}"
        f"&newsletters={NEWSLETTER}&website=&email=' .. email"
    )
    headers = (
        f'{{["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "{csrf_cookie}"}}'
    )
    return {"headers": headers, "body": body}


if __name__ == "__main__":
    sys.exit(main())
