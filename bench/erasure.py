"""Erasure of one person on a database of 1,000,000 subscribers, against deleting one
bare subscriber row by primary key (the floor) and the erasure as it looked the person
up before issue 15, in one run: milliseconds per erasure, median and 95th percentile.

Target (issue 15): an erasure in under 100 ms.

    .venv/bin/python -m bench.erasure [--subscribers 1000000] [--runs 20]

The database is built set-based in a fresh bench database (a row per reader in every
table that grows with readers, about seven million rows), analysed, and measured right
after, with PostgreSQL still writing it out: no checkpoint is forced first. The
database is dropped at the end.
"""

import argparse
import json
import math
import statistics
import sys
import time

from bench import harness

TARGET_MS = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--before-runs", type=int, default=3, help="erasures with the lookups before issue 15"
    )
    options = parser.parse_args()
    runs, before_runs = options.runs, options.before_runs
    # One person more than are timed: the first erasure warms the connection up.
    people, bare = runs + before_runs + 1, runs + 1

    print(f"Preparing: a fresh database with {options.subscribers:,} subscribers ...")
    harness.fresh_database()
    try:
        started = time.perf_counter()
        rows = json.loads(
            harness.django(
                "from bench.erasure_scene import build\n"
                f"build({options.subscribers}, {people}, {bare})\n"
            ).splitlines()[-1]
        )
        built = time.perf_counter() - started
        measured = json.loads(
            harness.django(
                f"from bench.erasure_scene import measure\nmeasure({runs}, {before_runs})\n"
            ).splitlines()[-1]
        )
    finally:
        harness.drop_database()

    print(f"Built in {built:.0f} s: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    timings = measured["timings"]
    floor, _ = summary(timings["floor"])
    print()
    print(f"{'':52} {'runs':>5} {'median ms':>10} {'p95 ms':>8} {'x floor':>8}")
    for name, key in [
        ("one bare subscriber deleted by primary key (floor)", "floor"),
        ("erasure before issue 15 (__iexact lookups)", "before"),
        ("erasure (privacy.erase)", "erasure"),
    ]:
        median, p95 = summary(timings[key])
        print(f"{name:52} {len(timings[key]):5d} {median:10.1f} {p95:8.1f} {median / floor:8.1f}")
    median, p95 = summary(timings["erasure"])
    before, _ = summary(timings["before"])
    print()
    print(f"The erasure before issue 15 took {before / median:.0f} times as long.")
    print(
        f"Erasure: median {median:.1f} ms, p95 {p95:.1f} ms (target < {TARGET_MS} ms): "
        f"{'met' if p95 < TARGET_MS else 'MISSED'}"
    )
    problems = list(measured["problems"])
    expected = options.subscribers + people + bare - (1 + runs + before_runs) - (1 + runs)
    if measured["left"] != expected:
        problems.append(f"{measured['left']:,} subscribers left, expected {expected:,}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def summary(values: list[float]) -> tuple[float, float]:
    """Median and 95th percentile (nearest rank) of the milliseconds."""
    ranked = sorted(values)
    return statistics.median(ranked), ranked[math.ceil(0.95 * len(ranked)) - 1]


if __name__ == "__main__":
    sys.exit(main())
