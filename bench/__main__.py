"""Every benchmark, one after another: `make bench` (or `.venv/bin/python -m bench`).

Each script starts what it needs and prints its figures with the ratio to a baseline
measured in the same run; this prints them as they come, then which targets were met.
Nothing else should load the machine meanwhile: the figures are only comparable
within a run. About sixteen minutes.
"""

import subprocess
import sys
import time

from bench import harness

# (script, its arguments): issue 8's list, in its order, with issue 15's erasure after
# the import, then the server comparison.
BENCHMARKS = [
    ("signup", []),
    ("signup_profile", []),
    ("confirmation_latency", []),
    ("goal_reads", []),
    ("import_export", []),
    ("erasure", []),
    ("issue_send", []),
    ("signup_while_sending", []),
    ("peer", ["--seconds", "10"]),
    ("servers", ["--seconds", "6"]),
]
# The lines of each script's output that say whether a target was met.
VERDICTS = ("met", "MISSED", "PROBLEM", "How we compare")


def main() -> int:
    started = time.monotonic()
    verdicts: list[str] = []
    failed = []
    for script, arguments in BENCHMARKS:
        print(f"\n=== bench.{script} {' '.join(arguments)}".rstrip(), flush=True)
        process = subprocess.Popen(  # noqa: S603 - our interpreter and our own modules
            [harness.PYTHON, "-m", f"bench.{script}", *arguments],
            cwd=harness.REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if any(word in line for word in VERDICTS):
                verdicts.append(f"{script}: {line.strip()}")
        if process.wait():
            failed.append(script)
    print(f"\n=== Summary ({(time.monotonic() - started) / 60:.1f} minutes)")
    for verdict in verdicts:
        print(verdict)
    for script in failed:
        print(f"bench.{script} reported a problem (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
