"""For tests that run a real Celery worker in a thread of the test process."""

from django.db import connection


def end_worker_sessions() -> None:
    """End the database sessions a stopped worker's threads left open.

    Between tasks a worker keeps its connection (newsroom/celery.py), as it should; but
    a worker run in a thread of the test process leaves that connection behind with
    the thread, and PostgreSQL cannot drop the test database while it is open.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
