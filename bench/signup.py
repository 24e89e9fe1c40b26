"""Sign-up throughput and latency: `POST /api/v1/subscriptions` and the HTML form, each
request a new address, against a Django view that inserts one row, all under the same
gunicorn in one run.

Targets (issue 8): the API serves at least 70% of the one-insert view's requests/s, p99
under 100 ms, no errors; every successful answer left exactly one subscriber and one
queued confirmation email.

    .venv/bin/python -m bench.signup [--seconds 20] [--connections 64]
"""

import re
import sys
import tempfile
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

# wrk runs this in each of its threads: a new address per request, each with a form token
# of its own (a token serves one address), from a pool signed before the run; each thread
# takes every WRK_THREADS-th one.
WRK_THREADS = 2
LUA = """
local counter = 0
local threads = 0
local tokens = {}
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  for line in io.lines("{tokens}") do tokens[#tokens + 1] = line end
end
function request()
  counter = counter + 1
  local email = string.format("%s-%d-%d@example.org", "{prefix}", tid, counter)
  local token = tokens[(counter * WRK_THREADS + tid) % #tokens + 1]
  return wrk.format("POST", nil, {headers}, {body})
end
""".replace("WRK_THREADS", str(WRK_THREADS))
# Requests a second no run here comes near, for the size of each script's token pool.
MAX_REQUESTS_PER_SECOND = 4000


def main() -> int:
    options = harness.load_options(__doc__, seconds=20)

    print("Preparing: a fresh database with the demo newsletters ...")
    prepare_database()
    load = {"connections": options.connections, "seconds": options.seconds}
    with (
        tempfile.TemporaryDirectory(prefix="bench-signup-") as scratch,
        harness.gunicorn(**UNLIMITED) as base,
    ):
        scripts = write_scripts(Path(scratch), base, seconds=max(options.seconds, 3))
        warm_up(base, scripts)
        first = load_baseline("one-insert view (baseline)", base, scripts["base1"], **load)
        statement = harness.wrk(
            "the sign-up's statement alone (view)",
            f"{base}/bench/signup-statement",
            script=scripts["statement"],
            **load,
        )
        api = load_api(base, scripts["api"], **load)
        form = load_form(base, scripts["form"], **load)
        second = load_baseline("one-insert view (again)", base, scripts["base2"], **load)

    baseline = harness.mean("one-insert view (baseline, mean)", first, second)
    print()
    print(
        f"{harness.server_description()}; wrk -t2 -c{options.connections} "
        f"-d{options.seconds}s; a new address per request"
    )
    harness.report([first, second, statement, api, form], baseline)
    ratio = api.requests_per_second / baseline.requests_per_second
    print()
    print(
        f"API / the sign-up's statement alone: "
        f"{api.requests_per_second / statement.requests_per_second:.2f} (what validation, "
        "limits and the enqueue cost on top of the database's share)"
    )
    print(
        f"API / baseline: {ratio:.2f} (target >= 0.70): {'met' if ratio >= 0.7 else 'MISSED'}; "
        f"p99 {api.p99_ms:.1f} ms (target < 100): {'met' if api.p99_ms < 100 else 'MISSED'}"
    )
    problems = check_app(first, api, form, second, connections=options.connections)
    if statement.errors:
        problems.append(f"{statement.name}: {statement.errors} errors")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def prepare_database() -> None:
    """A fresh bench database with the demo newsletters and the one-insert view's table."""
    harness.fresh_database()
    harness.django(
        "from django.core.management import call_command\n"
        "from django.db import connection\n"
        "call_command('load_demo_newsletters', verbosity=0)\n"
        "with connection.cursor() as cursor:\n"
        f"    cursor.execute('CREATE TABLE {ONE_INSERT_TABLE} (id bigserial PRIMARY KEY, "
        "email varchar(254) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())')\n"
    )


API_BODY = (
    'string.format(\'{"email": "%s", "newsletters": ["'
    + NEWSLETTER
    + '"], "form_token": "%s"}\', email, token)'
)
JSON_HEADERS = '{["Content-Type"] = "application/json"}'


def write_scripts(folder: Path, base: str, *, seconds: int) -> dict[str, Path]:
    """wrk's Lua scripts for the warm-up, the two baseline runs, the API and the form,
    each with its own address prefix and token pool (the form's reads its CSRF token
    from `base`)."""
    tokens = token_pools(folder, ["warm", "base1", "statement", "api", "base2", "form"], seconds)
    scripts = {
        name: write_lua(
            folder / f"{name}.lua",
            prefix=name,
            headers=JSON_HEADERS,
            body=API_BODY,
            tokens=tokens[name],
        )
        for name in ("warm", "base1", "statement", "api", "base2")
    }
    scripts["form"] = write_lua(
        folder / "form.lua", prefix="form", tokens=tokens["form"], **form_request(base)
    )
    return scripts


def token_pools(folder: Path, names: list[str], seconds: int) -> dict[str, Path]:
    """A file of form tokens per script, signed with the bench settings' key as if each
    form had been rendered ten seconds before the run (past SIGNUP_FORM_MIN_SECONDS,
    far inside its max age)."""
    count = max(20_000, MAX_REQUESTS_PER_SECOND * seconds)
    paths = {name: folder / f"{name}.tokens" for name in names}
    harness.django(
        "import sys, time\n"
        "from subscriptions.abuse.bot_traps import make_form_token\n"
        "rendered_at = time.time() - 10\n"
        "count = int(sys.argv[1])\n"
        "for path in sys.argv[2:]:\n"
        "    with open(path, 'w') as pool:\n"
        "        pool.write('\\n'.join(make_form_token(rendered_at=rendered_at) "
        "for _ in range(count)))\n",
        str(count),
        *map(str, paths.values()),
    )
    return paths


def warm_up(base: str, scripts: dict[str, Path]) -> None:
    """A short run on the API, so the first measured run meets warm workers."""
    harness.wrk(
        "warm-up", f"{base}/api/v1/subscriptions", seconds=3, connections=16, script=scripts["warm"]
    )


def load_baseline(name: str, base: str, script: Path, **load: int) -> harness.LoadResult:
    """The one-insert view (bench/baselines.py): the database's ceiling for a view."""
    return harness.wrk(name, f"{base}/bench/one-insert", script=script, **load)


def load_api(base: str, script: Path, **load: int) -> harness.LoadResult:
    return harness.wrk(
        "POST /api/v1/subscriptions", f"{base}/api/v1/subscriptions", script=script, **load
    )


def load_form(base: str, script: Path, **load: int) -> harness.LoadResult:
    return harness.wrk("POST /subscribe/ (HTML form)", f"{base}/subscribe/", script=script, **load)


def check_app(
    first: harness.LoadResult,
    api: harness.LoadResult,
    form: harness.LoadResult,
    second: harness.LoadResult,
    *,
    connections: int,
) -> list[str]:
    """What went wrong, if anything: errors, and rows stored against answers given."""
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
    problems = []
    for result in (first, second, api, form):
        if result.errors:
            problems.append(f"{result.name}: {result.errors} errors")
    # wrk stops counting at the deadline, so the requests in flight then (at most one
    # per connection) may have been stored without being counted.
    for prefix, result in (("api", api), ("form", form)):
        for what in ("subscribers", "confirmations"):
            found = int(stored[f"{prefix}-{what}"])
            if not result.requests <= found <= result.requests + connections:
                problems.append(f"{result.name}: {result.requests} answered, {found} {what} stored")
    baseline_rows = int(stored["baseline-rows"])
    if baseline_rows < first.requests + second.requests:
        problems.append(f"baseline: {baseline_rows} rows for {first.requests + second.requests}")
    return problems


def write_lua(path: Path, *, prefix: str, headers: str, body: str, tokens: Path) -> Path:
    path.write_text(
        LUA.replace("{prefix}", prefix)
        .replace("{headers}", headers)
        .replace("{body}", body)
        .replace("{tokens}", str(tokens))
    )
    return path


def form_request(base: str) -> dict[str, str]:
    """The HTML form's headers and body: a CSRF cookie and token read from the article
    page as a browser would (one serves every request), and a form token per request
    from the pool."""
    with urllib.request.urlopen(f"{base}/") as response:  # noqa: S310 - loopback
        page = response.read().decode()
        cookie = response.headers.get_all("Set-Cookie") or []
    csrf_cookie = next(c.split(";")[0] for c in cookie if c.startswith("csrftoken="))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', page).group(1)
    body = (
        f"'csrfmiddlewaretoken={csrf}&newsletters={NEWSLETTER}&website=&form_token=' .. token "
        "..  '&email=' .. email"
    )
    headers = (
        f'{{["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "{csrf_cookie}"}}'
    )
    return {"headers": headers, "body": body}


if __name__ == "__main__":
    sys.exit(main())
