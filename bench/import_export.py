"""Import and export of 1,000,000 subscribers, with PostgreSQL's own COPY of the same
rows as the baseline, in one run: wall time, rows per second and peak resident memory.

Targets (issue 6): the import in at most 30 s and 300 MB, the export in at most 15 s.

    .venv/bin/python -m bench.import_export [--rows 1000000]
"""

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import harness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()
    rows = options.rows

    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        folder = Path(scratch)
        source = folder / "readers.csv"
        invalid, repeated = write_file(source, rows)
        print(
            f"Preparing: a fresh database and a file of {rows:,} rows "
            f"({source.stat().st_size / 2**20:.0f} MB; {invalid:,} invalid, "
            f"{repeated:,} repeated) ..."
        )
        harness.fresh_database()
        harness.django(
            "from django.core.management import call_command\n"
            "call_command('load_demo_newsletters', verbosity=0)\n"
        )
        env = harness.environment(IMPORT_DIR=str(folder / "imports"))

        copy_seconds = timed_copy_baseline(source)
        check_seconds = timed_checks_only(source)
        # The benchmarks before this one leave PostgreSQL gigabytes of changed pages to
        # write out; without a checkpoint here the import pays for their writing.
        checkpoint()
        seconds, peak_mb, output = timed(
            [
                "import_subscribers",
                str(source),
                "--newsletter",
                "daily-digest",
                "--status",
                "active",
                "--consent-basis",
                "bench: consented elsewhere",
            ],
            env,
        )
        summary = next(line for line in output.splitlines() if line.startswith("Done:"))
        exported = folder / "export.csv"
        export_copy_seconds = timed_export_baseline(exported.with_suffix(".copy.csv"))
        export_seconds, export_mb, _ = timed(
            ["export_subscribers", "--newsletter", "daily-digest", "-o", str(exported)], env
        )
        with exported.open(newline="", encoding="utf-8") as handle:
            exported_rows = sum(1 for _ in csv.reader(handle)) - 1

    added = int(summary.split(";")[1].split()[0])
    print()
    print(f"{'':42} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'x COPY':>7}")
    for name, took, mb, baseline in [
        ("PostgreSQL COPY into a bare table (baseline)", copy_seconds, None, copy_seconds),
        ("the sign-up validator alone, one core", check_seconds, None, copy_seconds),
        ("import_subscribers (active)", seconds, peak_mb, copy_seconds),
        ("PostgreSQL COPY (SELECT ...) TO a file", export_copy_seconds, None, export_copy_seconds),
        ("export_subscribers", export_seconds, export_mb, export_copy_seconds),
    ]:
        memory = f"{mb:8.0f}" if mb is not None else f"{'':>8}"
        print(f"{name:42} {took:8.1f} {rows / took:9.0f} {memory} {took / baseline:7.1f}")
    print()
    print(summary)
    print(
        f"Import: {seconds:.1f} s (target <= 30 s), {peak_mb:.0f} MB (target <= 300 MB): "
        f"{'met' if seconds <= 30 and peak_mb <= 300 else 'MISSED'}"
    )
    print(
        f"Export: {export_seconds:.1f} s for {exported_rows:,} rows (target <= 15 s), "
        f"{export_mb:.0f} MB: {'met' if export_seconds <= 15 else 'MISSED'}"
    )
    problems = []
    if added != rows - invalid - repeated:
        problems.append(f"added {added:,}, expected {rows - invalid - repeated:,}")
    if exported_rows != added:
        problems.append(f"exported {exported_rows:,} rows, expected {added:,}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def write_file(path: Path, rows: int) -> tuple[int, int]:
    """A realistic list: names and a city column, about 0.5% invalid and 0.5% repeated.
    Returns how many rows are invalid and how many repeat an earlier valid address."""
    generator = random.Random(2026)
    domains = [f"example{i}.org" for i in range(500)] + ["gmail.com", "ukr.net", "proton.me"]
    seen: set[str] = set()
    invalid = repeated = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            roll = generator.random()
            if roll < 0.005:
                email = f"broken address {i}"
                invalid += 1
            else:
                n = i - 100 if roll < 0.01 and i > 100 else i
                email = f"reader{n}@{domains[n % len(domains)]}"
                if email in seen:
                    repeated += 1
                seen.add(email)
            writer.writerow([email, f"Reader {i}", f"City {i % 97}"])
    return invalid, repeated


def timed(arguments: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a manage.py command; its wall time, peak resident memory (MB) and output."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and our own arguments
            [harness.PYTHON, "manage.py", *arguments],
            cwd=harness.REPO,
            env=env,
            stdout=out,
            stderr=err,
        )
        # wait4 gives this one child's own peak memory.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        took = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode:
            sys.exit(f"{arguments[0]} failed:\n{err.read()}")
        return took, usage.ru_maxrss / 1024, out.read()


def timed_checks_only(source: Path) -> float:
    """Read the file and check every row as the import does (with the interpreter set
    up as for an import), writing nothing: the part of an import that is Python, on
    one core."""
    out = harness.django(
        "import time\n"
        "from pathlib import Path\n"
        "from subscriptions.lists.imports.interpreter import set_for_bulk_work\n"
        "from subscriptions.lists.imports.reading import ImportFile, RowChecker, chunks\n"
        f"source = ImportFile(Path({str(source)!r}))\n"
        "checker = RowChecker(columns=source.columns, target_status='active', "
        "consent_basis='b', rules={}, suppressed=set(), suppressed_hashes=set())\n"
        "started = time.perf_counter()\n"
        "with set_for_bulk_work():\n"
        "    for _ in chunks(source, checker, size=20000):\n"
        "        pass\n"
        "print(time.perf_counter() - started)\n"
    )
    return float(out.strip().splitlines()[-1])


def checkpoint() -> None:
    harness.django(
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('CHECKPOINT')\n"
    )


def timed_copy_baseline(source: Path) -> float:
    """COPY the file's email and name columns into a bare table: the database's floor."""
    out = harness.django(
        "import time\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('CREATE TEMP TABLE baseline (email text, name text, city text)')\n"
        "    started = time.perf_counter()\n"
        f"    with open({str(source)!r}, 'rb') as data, cursor.copy("
        "'COPY baseline FROM STDIN WITH (FORMAT csv, HEADER true)') as copy:\n"
        "        while block := data.read(1 << 20):\n"
        "            copy.write(block)\n"
        "    print(time.perf_counter() - started)\n"
    )
    return float(out.strip().splitlines()[-1])


def timed_export_baseline(target: Path) -> float:
    out = harness.django(
        "import time\n"
        "from django.db import connection\n"
        "started = time.perf_counter()\n"
        f"with connection.cursor() as cursor, open({str(target)!r}, 'wb') as out:\n"
        '    with cursor.copy("COPY (SELECT s.email, s.name, sub.status FROM '
        "subscriptions_subscription sub JOIN subscriptions_subscriber s "
        'ON s.id = sub.subscriber_id) TO STDOUT WITH (FORMAT csv)") as copy:\n'
        "        for block in copy:\n"
        "            out.write(block)\n"
        "print(time.perf_counter() - started)\n"
    )
    return float(out.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
