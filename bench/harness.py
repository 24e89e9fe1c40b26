"""What every benchmark needs: a fresh PostgreSQL database and Redis DB of its own, the
app under gunicorn with a production-like configuration, wrk as the load generator in
a separate process, and a table of results with ratios to a baseline.

Traffic goes to 127.0.0.1 only; every run is bounded by wrk's duration.
"""

import argparse
import os
import re
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsroom_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
GUNICORN_CONFIG = REPO / "newsroom" / "gunicorn.conf.py"
# Nothing on top of the production configuration file unless a run asks for another.
GUNICORN_ARGS = os.environ.get("BENCH_GUNICORN_ARGS", "").split()


def server_description(args: Sequence[str] = GUNICORN_ARGS) -> str:
    """How gunicorn runs the app: the production file's workers, and any arguments on top."""
    config = runpy.run_path(str(GUNICORN_CONFIG))
    described = (
        f"gunicorn -c {GUNICORN_CONFIG.relative_to(REPO)} ({config['workers']} "
        f"{config.get('worker_class', 'sync')} workers x {config.get('threads', 1)} threads)"
    )
    return f"{described} {' '.join(args)}".rstrip()


_SECRET_KEY = secrets.token_urlsafe(50)


def environment(**extra: str) -> dict[str, str]:
    """The app's environment for a bench process: production settings plus baselines."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "DEBUG", "CI"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        # One key for every process of a run: the form tokens a script signs before a
        # load must verify in the server under load.
        SECRET_KEY=_SECRET_KEY,
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SITE_URL="https://news.example.org",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        CONN_MAX_AGE="600",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        sys.exit(f"{binary} is not installed (make bench installs it with apt-get)")
    return path


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our interpreter and our own arguments
        [PYTHON, "manage.py", *args],
        cwd=REPO,
        env=env or environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def django(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run Python with Django set up (bench settings), `args` as its sys.argv[1:], and
    return what it printed."""
    return run(PYTHON, "import django; django.setup()\n" + code, *args, env=env or environment())


def run(python: str, code: str, *args: str, env: dict[str, str], cwd: Path = REPO) -> str:
    """Run `code` with the interpreter `python` in a process of its own; what it printed.
    A failure ends the benchmark, with what the process said."""
    result = subprocess.run(  # noqa: S603 - our interpreters and our own code
        [python, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode:
        sys.exit(f"bench step failed:\n{result.stderr}")
    return result.stdout


def stop(process: subprocess.Popen, *, timeout: float = 15) -> None:
    """Stop a process started in a session of its own, and everything it started: a
    warm shutdown first, then SIGKILL if it does not end in time."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def fresh_database() -> None:
    """Drop and re-create the bench database, migrate it, collect the static files and
    empty the bench Redis DB."""
    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    django(
        "import psycopg, redis\n"
        f"with psycopg.connect({admin_url!r}, autocommit=True) as c:\n"
        f"    c.execute('DROP DATABASE IF EXISTS {name} WITH (FORCE)')\n"
        f"    c.execute('CREATE DATABASE {name}')\n"
        f"redis.Redis.from_url({REDIS_URL!r}).flushdb()\n",
        env=environment(DJANGO_SETTINGS_MODULE="bench.settings", DATABASE_URL=admin_url),
    )
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput")


def drop_database() -> None:
    """Drop the bench database and empty the bench Redis DB: for a benchmark that leaves
    gigabytes behind."""
    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    django(
        "import psycopg, redis\n"
        f"with psycopg.connect({admin_url!r}, autocommit=True) as c:\n"
        f"    c.execute('DROP DATABASE IF EXISTS {name} WITH (FORCE)')\n"
        f"redis.Redis.from_url({REDIS_URL!r}).flushdb()\n",
        env=environment(DATABASE_URL=admin_url),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(args: Sequence[str] = GUNICORN_ARGS, **env: str) -> Iterator[str]:
    """The app under gunicorn on a free loopback port; yields its base URL. Its output
    goes to var/bench-gunicorn.log."""
    with serve(
        PYTHON, "newsroom.wsgi:application", cwd=REPO, env=environment(**env), args=args
    ) as base:
        yield base


@contextmanager
def serve(
    python: str,
    wsgi: str,
    *,
    cwd: Path,
    env: dict[str, str],
    args: Sequence[str] = GUNICORN_ARGS,
    config: Path = GUNICORN_CONFIG,
    log: Path = REPO / "var" / "bench-gunicorn.log",
) -> Iterator[str]:
    """A WSGI application under gunicorn with a configuration file (the app's production
    one unless told), on a free loopback port; yields its base URL once `/healthz/`
    answers. `python` must have gunicorn installed. Its output is appended to `log`."""
    port = free_port()
    log.parent.mkdir(exist_ok=True)
    output = log.open("ab")
    process = subprocess.Popen(  # noqa: S603 - our interpreter and our own arguments
        [
            python,
            "-m",
            "gunicorn",
            # The production configuration (access log without IPs included), with the
            # bench's own port and worker settings on top.
            *("--config", str(config)),
            wsgi,
            *("--bind", f"127.0.0.1:{port}"),
            *("--log-level", "warning", "--backlog", "2048"),
            *args,
        ],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=output,
        stderr=output,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz/", process)
        yield base
    finally:
        stop(process)
        output.close()


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {timeout}s")


def load_options(doc: str, *, seconds: int) -> argparse.Namespace:
    """A wrk benchmark's command line (how long each load run lasts, how many
    connections), after checking that wrk is here."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=seconds, help="length of each load run")
    parser.add_argument("--connections", type=int, default=64)
    options = parser.parse_args()
    require("wrk")
    return options


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    # Of the errors, requests wrk gave up on after its 2 s timeout.
    timeouts: int = 0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(
    name: str,
    url: str,
    *,
    connections: int = 64,
    seconds: int = 10,
    threads: int = 2,
    script: Path | None = None,
) -> LoadResult:
    """Load `url` with wrk from a separate process and parse what it reports."""
    command = [require("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(  # noqa: S603 - wrk and our own arguments
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    return LoadResult(
        name=name,
        requests_per_second=float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        p50_ms=_latency(output, "50%"),
        p99_ms=_latency(output, "99%"),
        requests=int(_find(r"(\d+) requests in", output)),
        errors=_errors(output),
        timeouts=int(_search(r"Socket errors: .*timeout (\d+)", output) or 0),
    )


def _search(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        sys.exit(f"could not read wrk's output:\n{text}")
    return match.group(1)


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"{re.escape(percentile)}\s+([\d.]+)(us|ms|s|m)\b", output)
    if match is None:
        sys.exit(f"wrk printed no {percentile} latency:\n{output}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _errors(output: str) -> int:
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return errors


def mean(name: str, first: LoadResult, second: LoadResult) -> LoadResult:
    """A baseline measured before and after the runs it is compared with, averaged, so a
    drift of the shared machine during the run shows in neither direction alone."""
    return LoadResult(
        name=name,
        requests_per_second=(first.requests_per_second + second.requests_per_second) / 2,
        p50_ms=(first.p50_ms + second.p50_ms) / 2,
        p99_ms=(first.p99_ms + second.p99_ms) / 2,
        requests=first.requests + second.requests,
        errors=first.errors + second.errors,
        timeouts=first.timeouts + second.timeouts,
    )


def report(results: Sequence[LoadResult], baseline: LoadResult) -> None:
    """Print the table: absolute numbers, then the ratio to the baseline's requests/s."""
    print(f"{'':34} {'req/s':>9} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for result in (baseline, *results):
        ratio = result.requests_per_second / baseline.requests_per_second
        print(
            f"{result.name:34} {result.requests_per_second:9.0f} {ratio:7.2f} "
            f"{result.p50_ms:8.2f} {result.p99_ms:8.2f} {result.errors:7d}"
        )
