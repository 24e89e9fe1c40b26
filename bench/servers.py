"""Which server runs the app best on this machine: gunicorn's sync and gthread workers
and an ASGI server (uvicorn, as gunicorn's worker class), each serving the one-insert
view and `POST /api/v1/subscriptions` in the same run, with the same production
configuration file otherwise.

uvicorn is not one of the project's dependencies: the script installs it (pinned) into
var/bench-asgi/ and puts that on the ASGI run's path only.

    .venv/bin/python -m bench.servers [--seconds 8]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness, signup

ASGI_PACKAGES = ["uvicorn==0.55.0", "uvicorn-worker==0.4.0"]
ASGI_DIR = harness.REPO / "var" / "bench-asgi"

# (name, gunicorn arguments, application, with the ASGI packages)
SERVERS = [
    # One thread each: with the config file's threads, gunicorn would run sync as gthread.
    (
        "sync, 5 processes",
        ["--workers", "5", "--worker-class", "sync", "--threads", "1"],
        "wsgi",
        False,
    ),
    (
        "gthread, 3 processes x 4 threads (production)",
        ["--workers", "3", "--worker-class", "gthread", "--threads", "4"],
        "wsgi",
        False,
    ),
    (
        "gthread, 2 processes x 8 threads",
        ["--workers", "2", "--worker-class", "gthread", "--threads", "8"],
        "wsgi",
        False,
    ),
    (
        "ASGI: uvicorn, 3 processes",
        ["--workers", "3", "--worker-class", "uvicorn_worker.UvicornWorker"],
        "asgi",
        True,
    ),
]


def main() -> int:
    options = harness.load_options(__doc__, seconds=8)
    install_asgi_server()

    print("Preparing: a fresh database with the demo newsletters ...")
    signup.prepare_database()
    load = {"connections": options.connections, "seconds": options.seconds}
    rows = []
    problems = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-servers-") as scratch:
        for number, (name, args, application, asgi) in enumerate(SERVERS):
            env = dict(signup.UNLIMITED)
            if asgi:
                env["PYTHONPATH"] = f"{harness.REPO}:{ASGI_DIR}"
                # Django keeps no connection between requests under ASGI (its docs: a
                # persistent one per request thread piles up until PostgreSQL refuses).
                env["CONN_MAX_AGE"] = "0"
            with harness.serve(
                harness.PYTHON,
                f"newsroom.{application}:application",
                cwd=harness.REPO,
                env=harness.environment(**env),
                args=args,
            ) as base:
                folder = Path(scratch) / str(number)
                folder.mkdir()
                kinds = ("warm", "insert", "api")
                tokens = signup.token_pools(folder, list(kinds), options.seconds)
                scripts = {
                    kind: signup.write_lua(
                        folder / f"{kind}.lua",
                        prefix=f"s{number}{kind}",
                        headers=signup.JSON_HEADERS,
                        body=signup.API_BODY,
                        tokens=tokens[kind],
                    )
                    for kind in kinds
                }
                harness.wrk(
                    "warm-up",
                    f"{base}/api/v1/subscriptions",
                    seconds=2,
                    connections=16,
                    script=scripts["warm"],
                )
                insert = harness.wrk(
                    "one-insert", f"{base}/bench/one-insert", script=scripts["insert"], **load
                )
                api = harness.wrk(
                    "API", f"{base}/api/v1/subscriptions", script=scripts["api"], **load
                )
            rows.append((name, insert, api))
            production = "(production)" in name
            for result in (insert, api):
                # An alternative too slow for this load has requests over wrk's 2 s
                # timeout: a measured outcome. Any other error, or any on the production
                # configuration, is a fault.
                failures = result.errors - (0 if production else result.timeouts)
                if failures:
                    problems.append(f"{name}: {result.name} {failures} errors")
                elif result.errors:
                    notes.append(
                        f"{name}: {result.name}: {result.timeouts} requests took over wrk's "
                        "2 s timeout (too slow for this load)"
                    )

    best = max(insert.requests_per_second for _, insert, _ in rows)
    print()
    print(f"wrk -t2 -c{options.connections} -d{options.seconds}s; a new address per request")
    print(
        f"{'':46} {'one-insert':>10} {'ratio':>6} {'API':>6} {'ratio':>6} "
        f"{'API p99 ms':>10} {'API/insert':>10}"
    )
    for name, insert, api in rows:
        print(
            f"{name:46} {insert.requests_per_second:10.0f} "
            f"{insert.requests_per_second / best:6.2f} {api.requests_per_second:6.0f} "
            f"{api.requests_per_second / best:6.2f} {api.p99_ms:10.1f} "
            f"{api.requests_per_second / insert.requests_per_second:10.2f}"
        )
    print("(ratios to the fastest server's one-insert view)")
    for note in notes:
        print(f"Note: {note}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def install_asgi_server() -> None:
    marker = ASGI_DIR / (".installed-" + "-".join(ASGI_PACKAGES))
    if marker.exists():
        return
    print(f"Installing {', '.join(ASGI_PACKAGES)} into {ASGI_DIR.relative_to(harness.REPO)} ...")
    subprocess.run(  # noqa: S603 - our interpreter and pinned packages
        [
            harness.PYTHON,
            *("-m", "pip", "install", "--quiet", "--upgrade", "--no-deps"),
            *("--target", str(ASGI_DIR)),
            *ASGI_PACKAGES,
            # What uvicorn needs that the project's environment lacks.
            "h11==0.16.0",
        ],
        check=True,
    )
    marker.touch()


if __name__ == "__main__":
    sys.exit(main())
