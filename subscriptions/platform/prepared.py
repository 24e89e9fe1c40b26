"""A cursor whose statements PostgreSQL parses and plans once per connection.

The sign-up's one statement (`signup/fast_path.py`) and the worker's send statement
(`mail/sending.py`) are long chains of inserts and joins: PostgreSQL spends about as long
parsing and planning each as running it (BENCHMARKS.md). Django binds parameters on the
client and prepares nothing (so
connection poolers in transaction mode keep working), so these two statements are sent
with server-side parameters as prepared statements instead; the web and worker
processes keep their connections (`CONN_MAX_AGE`), so each prepares once.

`PREPARED_STATEMENTS = False` turns this off, for a pooler that cannot carry prepared
statements (PgBouncer before 1.21 in transaction mode).

Django offers server-side binding only for every cursor of a connection (OPTIONS'
`server_side_binding`), which would move every ORM query to it; so this builds on
Django's own cursor classes (`ServerBindingCursor`, `CursorDebugWrapper.debug_sql`),
which are not a public interface: tests/test_library_patches.py fails when the pinned
Django changes them (requirements.txt says so beside the pin).
"""

from typing import Any

from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

_ONLY_WHEN_ASKED = 2**31 - 1


class _PreparingCursor(ServerBindingCursor):
    """Server-side parameters (Django's default cursor binds on the client, which
    PostgreSQL cannot prepare), and every statement prepared."""

    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        return super().execute(  # type: ignore[misc] # psycopg's, through Django's mixin
            query, params, **{**options, "prepare": True}
        )


def prepared_cursor() -> CursorWrapper:
    """A cursor for one of the statements above; Django's own cursor where preparing is
    off or the database is not PostgreSQL. Queries still show in Django's query log."""
    if connection.vendor != "postgresql" or not settings.PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    psycopg_connection = connection.connection
    if psycopg_connection.prepare_threshold is None:
        # Django leaves psycopg's automatic preparing off (None), which also refuses
        # prepare=True; a threshold never reached allows that and nothing else (the
        # ORM's client-side cursors never prepare).
        psycopg_connection.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors:
        raw = _PreparingCursor(psycopg_connection)  # type: ignore[call-arg] # psycopg's init
    if connection.queries_logged:
        return _LoggedCursor(raw, connection)
    return connection.make_cursor(raw)  # type: ignore[arg-type] # a psycopg cursor


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log asks the client-side cursor for the query it sent, which a
    prepared one does not keep: log the statement as written instead."""

    def execute(self, sql: str, params: Any = None) -> Any:  # type: ignore[override]
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)
