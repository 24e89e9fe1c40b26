"""What PostgreSQL's prepared statements of this test's connection show: for the tests
of the statements `subscriptions/platform/prepared.py` prepares."""

from django.db import connection


def prepared_runs(containing: str) -> dict[str, int]:
    """This connection's prepared statements whose text contains `containing`, with how
    often each ran (PostgreSQL counts each execution as a generic or a custom plan)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            [f"%{containing}%"],
        )
        return dict(cursor.fetchall())


def runs_since(before: dict[str, int], after: dict[str, int]) -> list[int]:
    """For each prepared statement that ran in between, how many times."""
    return [after[name] - before.get(name, 0) for name in after if after[name] != before.get(name)]
