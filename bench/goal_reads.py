"""Goal reads: GET /api/v1/goal and the article page with its banner, against a Django
view that touches no database, all under the same gunicorn in one run.

Targets (issue 3 and 8): the API serves at least 80% of the baseline's requests/s and
reading the counter costs zero SQL queries.

    .venv/bin/python -m bench.goal_reads [--seconds 10]
"""

import json
import sys
import urllib.request

from bench import harness

MEMBERS = 12_345


def main() -> int:
    options = harness.load_options(__doc__, seconds=10)
    print(f"Preparing: a fresh database, an active goal and {MEMBERS:,} active members ...")
    harness.fresh_database()
    queries = harness.django(
        "from django.db import connection\n"
        "from django.test import Client\n"
        "from django.test.utils import CaptureQueriesContext\n"
        "from subscriptions.membership import goal_counter, milestones\n"
        "from subscriptions.models import Member, MembershipGoal\n"
        "milestones.save_goal(MembershipGoal())\n"
        "Member.objects.bulk_create(\n"
        f"    Member(status='active', source='import') for _ in range({MEMBERS})\n"
        ")\n"
        "goal_counter.reconcile()\n"
        "client = Client()\n"
        "client.get('/api/v1/goal')\n"
        "with CaptureQueriesContext(connection) as api:\n"
        "    client.get('/api/v1/goal')\n"
        "from django.template import Context, Template\n"
        "with CaptureQueriesContext(connection) as banner:\n"
        "    Template('{% load membership %}{% membership_banner %}').render(Context())\n"
        "print(len(api), len(banner))\n"
    ).split()
    api_queries, banner_queries = (int(n) for n in queries)

    load = {"connections": options.connections, "seconds": options.seconds}
    with harness.gunicorn() as base:
        harness.wrk("warm-up", f"{base}/api/v1/goal", seconds=2, connections=16)
        first = harness.wrk("no-database view (baseline)", f"{base}/bench/no-database", **load)
        api = harness.wrk("GET /api/v1/goal", f"{base}/api/v1/goal", **load)
        page = harness.wrk("GET / (article with banner)", f"{base}/", **load)
        second = harness.wrk("no-database view (again)", f"{base}/bench/no-database", **load)
        with urllib.request.urlopen(f"{base}/api/v1/goal") as response:  # noqa: S310 - loopback
            served = json.load(response)["members"]

    baseline = harness.mean("no-database view (baseline, mean)", first, second)
    print()
    print(f"{harness.server_description()}; wrk -t2 -c{options.connections} -d{options.seconds}s")
    harness.report([first, second, api, page], baseline)
    ratio = api.requests_per_second / baseline.requests_per_second
    print()
    print(f"SQL queries per goal read: API {api_queries}, banner {banner_queries} (target 0)")
    print(f"API / baseline: {ratio:.2f} (target >= 0.80): {'met' if ratio >= 0.8 else 'MISSED'}")
    problems = []
    if served != MEMBERS:
        problems.append(f"the API said {served} members, the database has {MEMBERS}")
    if any(r.errors for r in (first, second, api, page)):
        problems.append("some requests failed (see the errors column)")
    if api_queries or banner_queries:
        problems.append("reading the counter ran SQL")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
