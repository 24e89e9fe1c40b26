"""A peer in the same run: django-newsletter's subscribe view against our API and HTML
form and the one-insert view, each under the same gunicorn configuration, each request
a new address.

django-newsletter lives in a throwaway virtualenv of its own (var/bench-peer-venv, made
on the first run and again whenever its pins change), never a dependency of the
project. Its site is a minimal Django project written to a temporary directory, with
its own database (newsroom_bench_peer, re-created each run) and Django's locmem email
backend, so the activation email it sends inside the request is really built and
"sent", in-process, without touching the network.

    .venv/bin/python -m bench.peer [--seconds 20] [--connections 64]
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench import harness, signup
from bench.peer_project import GUNICORN_CONFIG, SETTINGS, URLS, WSGI

VENV = harness.REPO / "var" / "bench-peer-venv"
PEER_LOG = harness.REPO / "var" / "bench-peer-gunicorn.log"
PEER_DATABASE = "newsroom_bench_peer"
PEER_SERVER = "postgresql://postgres@127.0.0.1:5432"
SLUG = "daily-digest"
SUBSCRIBE_PATH = f"/newsletter/{SLUG}/subscribe/"


def _project_pin(name: str) -> str:
    """The project's own pin for `name` (requirements.txt), so both servers run the same
    gunicorn and database driver."""
    text = (harness.REPO / "requirements.txt").read_text()
    match = re.search(rf"^({re.escape(name)}(\[\w+\])?==\S+)", text, re.MULTILINE | re.IGNORECASE)
    if match is None:
        sys.exit(f"requirements.txt pins no {name}")
    return match.group(1)


# django-newsletter 1.2.1 is the newest release; it declares Django 4.2 and 5.2, so it
# runs on the project's own Django (5.2.19) and the comparison is between the two apps,
# not two Djangos. sorl-thumbnail is its default image field's library (newsletter/fields.py
# imports it even though a sign-up never makes a thumbnail).
PEER_REQUIREMENTS = "\n".join(
    [
        "django-newsletter==1.2.1",
        "Django==5.2.19",
        "asgiref==3.13.0",
        "sqlparse==0.6.1",
        "chardet==7.7.0",
        "pillow==13.0.0",
        "sorl-thumbnail==13.4.0",
        "typing_extensions==4.16.0",
        _project_pin("gunicorn"),
        _project_pin("psycopg"),
        _project_pin("psycopg-binary"),
        "",
    ]
)

# Made before the load: one newsletter, and one sign-up through Django's test client to
# show that the view answers with its redirect and sends the activation email.
SET_UP = f"""
import django

django.setup()
from django.contrib.sites.models import Site
from django.core import mail
from django.test import Client
from newsletter.models import Newsletter, Subscription

newsletter = Newsletter.objects.create(
    title="Daily digest", slug={SLUG!r}, email="news@example.org", sender="The Newsroom"
)
newsletter.site.set([Site.objects.get_current()])
response = Client(HTTP_HOST="127.0.0.1").post(
    {SUBSCRIBE_PATH!r}, {{"name_field": "", "email_field": "check@example.org"}}
)
if response.status_code != 302 or [m.to for m in mail.outbox] != [["check@example.org"]]:
    raise SystemExit(f"the view answered {{response.status_code}}, sent {{mail.outbox}}")
Subscription.objects.all().delete()
"""

COUNT_ROWS = f"""
import django

django.setup()
from newsletter.models import Subscription

pending = Subscription.objects.filter(newsletter__slug={SLUG!r}, subscribed=False)
print(pending.filter(email_field__startswith="peer-").count(), Subscription.objects.count())
"""


def main() -> int:
    options = harness.load_options(__doc__, seconds=20)

    python = peer_virtualenv()
    print("Preparing: a fresh database with the demo newsletters ...")
    signup.prepare_database()
    load = {"connections": options.connections, "seconds": options.seconds}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as scratch:
        folder = Path(scratch)
        env = write_peer_site(folder)
        print(f"Preparing: a fresh {PEER_DATABASE} with one django-newsletter newsletter ...")
        prepare_peer_database(python, env)
        log_start = PEER_LOG.stat().st_size if PEER_LOG.exists() else 0
        with (
            harness.gunicorn(**signup.UNLIMITED) as base,
            harness.serve(
                python,
                "peer_site.wsgi:application",
                cwd=folder,
                env=env,
                config=folder / "gunicorn.conf.py",
                log=PEER_LOG,
            ) as peer_base,
        ):
            scripts = signup.write_scripts(folder, base, seconds=max(options.seconds, 3))
            # django-newsletter's form takes no token of ours; its scripts read a pool
            # they ignore.
            unused = signup.token_pools(folder, ["peer"], 1)["peer"]
            for prefix in ("warmpeer", "peer"):
                scripts[prefix] = signup.write_lua(
                    folder / f"{prefix}.lua",
                    prefix=prefix,
                    tokens=unused,
                    **subscribe_request(peer_base),
                )
            peer_url = f"{peer_base}{SUBSCRIBE_PATH}"
            signup.warm_up(base, scripts)
            harness.wrk("warm-up", peer_url, seconds=3, connections=16, script=scripts["warmpeer"])
            first = signup.load_baseline(
                "one-insert view (baseline)", base, scripts["base1"], **load
            )
            api = signup.load_api(base, scripts["api"], **load)
            form = signup.load_form(base, scripts["form"], **load)
            peer = harness.wrk(
                "django-newsletter subscribe view", peer_url, script=scripts["peer"], **load
            )
            second = signup.load_baseline("one-insert view (again)", base, scripts["base2"], **load)
        peer_rows, all_rows = (int(n) for n in run_peer(python, COUNT_ROWS, env).split())
    statuses = subscribe_statuses(log_start)

    baseline = harness.mean("one-insert view (baseline, mean)", first, second)
    print()
    print(
        f"{harness.server_description()} for both; wrk -t2 -c{options.connections} "
        f"-d{options.seconds}s; a new address per request; django-newsletter 1.2.1 on "
        "Django 5.2.19 (its own virtualenv), activation email sent in the request (locmem)"
    )
    harness.report([first, second, api, form, peer], baseline)
    print()
    print(
        f"How we compare: our API serves {api.requests_per_second / peer.requests_per_second:.2f}"
        f" times django-newsletter's subscribe view ({api.requests_per_second:.0f} against "
        f"{peer.requests_per_second:.0f} requests/s); our HTML form "
        f"{form.requests_per_second / peer.requests_per_second:.2f} times."
    )
    problems = signup.check_app(first, api, form, second, connections=options.connections)
    problems += check_peer(peer, peer_rows, all_rows, statuses, connections=options.connections)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def peer_virtualenv() -> str:
    """The peer's virtualenv, made with python3.11 and PEER_REQUIREMENTS unless one with
    exactly these requirements is already there; returns its interpreter."""
    python = VENV / "bin" / "python"
    installed = VENV / "bench-requirements.txt"
    if python.exists() and installed.exists() and installed.read_text() == PEER_REQUIREMENTS:
        return str(python)
    print(f"Preparing: a virtualenv for django-newsletter in {VENV.relative_to(harness.REPO)} ...")
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(exist_ok=True)
    subprocess.run(  # noqa: S603 - python3.11 and our own arguments
        [harness.require("python3.11"), "-m", "venv", str(VENV)], check=True, timeout=120
    )
    requirements = VENV / "requirements.txt"
    requirements.write_text(PEER_REQUIREMENTS)
    result = subprocess.run(  # noqa: S603 - the virtualenv's pip and our own pins
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["--requirement", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode:
        sys.exit(f"installing django-newsletter failed:\n{result.stdout}\n{result.stderr}")
    # Written last: a virtualenv whose install broke off is made again next time.
    installed.write_text(PEER_REQUIREMENTS)
    return str(python)


def write_peer_site(folder: Path) -> dict[str, str]:
    """A minimal Django project for django-newsletter in `folder`; returns the
    environment its processes run with."""
    package = folder / "peer_site"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(
        SETTINGS.format(secret_key=secrets.token_urlsafe(50), database=PEER_DATABASE)
    )
    (package / "urls.py").write_text(URLS)
    (package / "wsgi.py").write_text(WSGI)
    (folder / "gunicorn.conf.py").write_text(
        GUNICORN_CONFIG.format(
            newsroom=str(harness.REPO / "newsroom"), config=str(harness.GUNICORN_CONFIG)
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(DJANGO_SETTINGS_MODULE="peer_site.settings", PYTHONPATH=str(folder))
    return env


def prepare_peer_database(python: str, env: dict[str, str]) -> None:
    """Drop and re-create the peer's database, migrate it, add the newsletter."""
    run_peer(
        python,
        "import psycopg\n"
        f"with psycopg.connect({PEER_SERVER + '/postgres'!r}, autocommit=True) as c:\n"
        f"    c.execute('DROP DATABASE IF EXISTS {PEER_DATABASE} WITH (FORCE)')\n"
        f"    c.execute('CREATE DATABASE {PEER_DATABASE}')\n",
        env,
    )
    run_peer(
        python,
        "import django\ndjango.setup()\nfrom django.core.management import call_command\n"
        "call_command('migrate', verbosity=0, interactive=False)\n",
        env,
    )
    run_peer(python, SET_UP, env)


def run_peer(python: str, code: str, env: dict[str, str]) -> str:
    """Run Python in the peer's virtualenv and return what it printed."""
    return harness.run(python, code, env=env, cwd=Path(env["PYTHONPATH"]))


def subscribe_request(base: str) -> dict[str, str]:
    """The subscribe form's headers and body: a CSRF cookie and token read from the form's
    page as a browser would (one token serves every request)."""
    with urllib.request.urlopen(f"{base}{SUBSCRIBE_PATH}") as response:  # noqa: S310 - loopback
        page = response.read().decode()
        cookies = response.headers.get_all("Set-Cookie") or []
    csrf_cookie = next(c.split(";")[0] for c in cookies if c.startswith("csrftoken="))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', page).group(1)
    return {
        "headers": (
            '{["Content-Type"] = "application/x-www-form-urlencoded", '
            f'["Cookie"] = "{csrf_cookie}"}}'
        ),
        "body": f"'csrfmiddlewaretoken={token}&name_field=&email_field=' .. email",
    }


def subscribe_statuses(log_start: int) -> dict[str, int]:
    """How often the peer's gunicorn answered each status to a subscribe POST in this
    run, from its access log. The view answers 302 once it has saved the subscription
    and sent the email; a failed send answers 200 with the form again, which wrk would
    count as a success."""
    with PEER_LOG.open("rb") as log:
        log.seek(log_start)
        text = log.read().decode(errors="replace")
    statuses: dict[str, int] = {}
    for status in re.findall(rf'"POST {re.escape(SUBSCRIBE_PATH)} HTTP/1.1" (\d{{3}})', text):
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def check_peer(
    peer: harness.LoadResult,
    peer_rows: int,
    all_rows: int,
    statuses: dict[str, int],
    *,
    connections: int,
) -> list[str]:
    """What went wrong with the peer, if anything: errors, rows stored against answers
    given, and answers other than the redirect that follows a sent email."""
    problems = []
    if peer.errors:
        problems.append(f"{peer.name}: {peer.errors} errors")
    # As for our own views: the requests in flight at wrk's deadline (at most one per
    # connection) may have been stored without being counted.
    answered = peer.requests - peer.errors
    if not answered <= peer_rows <= peer.requests + connections:
        problems.append(f"{peer.name}: {answered} answered, {peer_rows} subscriptions stored")
    redirects = statuses.pop("302", 0)
    if statuses:
        problems.append(f"{peer.name}: answers other than 302 in its access log: {statuses}")
    if redirects != all_rows:
        problems.append(f"{peer.name}: {redirects} redirects logged, {all_rows} subscriptions")
    return problems


if __name__ == "__main__":
    sys.exit(main())
