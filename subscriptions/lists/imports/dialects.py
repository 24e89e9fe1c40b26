"""The import's staging table, and what differs between PostgreSQL and SQLite in
writing a chunk (writing.py): how rows are staged, ids reserved and subscribers locked."""

from collections.abc import Sequence

from django.db import connection

from subscriptions.models import OutboundEmail, Subscriber, Subscription

SUBSCRIBER = Subscriber._meta.db_table
SUBSCRIPTION = Subscription._meta.db_table
OUTBOX = OutboundEmail._meta.db_table

STAGE = "import_stage"
# What the reader gives (`ImportRow`'s fields) and when a confirmation may go out (a
# pending import's rows only), with the types COPY is told, so that it need not look
# up each value's.
_DATA_COLUMNS = {
    "line": "int4",
    "email": "text",
    "email_ci": "text",
    "name": "text",
    "attributes": "text",
    "target_status": "text",
    "consent_basis": "text",
    "signed_up_at": "timestamptz",
    "signup_ip": "text",
    "due_at": "timestamptz",
    "mailbox_key": "text",
}


class Dialect:
    """SQLite: one writer at a time, so the transaction itself is the lock."""

    json = "%s"
    inet = "%s"
    timestamp = "TEXT"

    def start_import(self, cursor) -> None:
        """Fresh scratch tables for this import (they live as long as the connection,
        which may have served another import before)."""
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ("
            "line INTEGER PRIMARY KEY, email TEXT, email_ci TEXT, "
            "name TEXT, attributes TEXT, target_status TEXT, "
            f"consent_basis TEXT, signed_up_at {self.timestamp}, signup_ip TEXT, "
            f"due_at {self.timestamp}, mailbox_key TEXT, "
            f"subscriber_id BIGINT{self._id_default(cursor, SUBSCRIBER)}, "
            f"new_id BIGINT{self._id_default(cursor, SUBSCRIPTION)}, outbound_id BIGINT, "
            "existed BOOLEAN DEFAULT FALSE, existing_id BIGINT, "
            "existing_status TEXT, capped BOOLEAN DEFAULT FALSE)"
        )

    def _id_default(self, cursor, table: str) -> str:
        return ""

    def start_chunk(self, cursor) -> None:
        """Called first in each chunk's transaction."""

    def load(self, cursor, rows: Sequence[tuple], columns: Sequence[str]) -> None:
        """Stage the chunk's rows, each with an id reserved for the subscriber and the
        subscription it may create."""
        cursor.execute(f"DELETE FROM {STAGE}")
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(
            f"INSERT INTO {STAGE} ({', '.join(columns)}) VALUES ({placeholders})", rows
        )
        self._reserve_ids(cursor, "subscriber_id", SUBSCRIBER, "true")
        self._reserve_ids(cursor, "new_id", SUBSCRIPTION, "true")

    def reserve_outbound_ids(self, cursor, where: str) -> None:
        """An id for the confirmation email of each staged row matching `where`."""
        self._reserve_ids(cursor, "outbound_id", OUTBOX, where)

    def _reserve_ids(self, cursor, column: str, table: str, where: str) -> None:
        # Nobody else inserts into `table` until this transaction ends, and lines are
        # unique: the highest id plus the line is free (the gaps are harmless).
        cursor.execute(
            f"UPDATE {STAGE} SET {column} = (SELECT COALESCE(MAX(id), 0) FROM {table}) + line "
            f"WHERE {where}"
        )

    def lock(self, cursor, subscriber_ids: list[int]) -> None:
        """Nothing to do: SQLite's write transaction already excludes every other."""


class PostgresDialect(Dialect):
    json = "%s::jsonb"
    inet = "%s::inet"
    timestamp = "TIMESTAMPTZ"

    def _id_default(self, cursor, table: str) -> str:
        # Ids from the table's own sequence, drawn by the database as the rows are
        # staged, so concurrent sign-ups never collide and no id travels through
        # Python; an id a row turns out not to need is a harmless gap. The sequence is
        # named once here: resolving it per row costs fifteen times the nextval.
        return f" DEFAULT nextval({self._sequence(cursor, table)!r}::regclass)"

    def _sequence(self, cursor, table: str) -> str:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return cursor.fetchone()[0]

    def start_chunk(self, cursor) -> None:
        # A crash can lose at most the last chunk's commit, and a resumed import redoes
        # that chunk; not waiting for the WAL flush saves seconds a million rows.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # Every join here is a chunk of thousands of rows against a table of millions:
        # probing the big table's index per row beats hashing all of it, which is what
        # the planner picks when its statistics lag behind a fast-growing table.
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
        # Two chunks write at once (pipeline.py) in an order no lock wait can reverse;
        # should one ever wait on a lock for this long all the same, it fails (and the
        # import with it, resumably) rather than hang.
        cursor.execute("SET LOCAL lock_timeout = '120s'")

    def load(self, cursor, rows: Sequence[tuple], columns: Sequence[str]) -> None:
        cursor.execute(f"TRUNCATE {STAGE}")
        with cursor.copy(f"COPY {STAGE} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.set_types([_DATA_COLUMNS[column] for column in columns])
            for row in rows:
                copy.write_row(row)

    def reserve_outbound_ids(self, cursor, where: str) -> None:
        cursor.execute(
            f"UPDATE {STAGE} SET outbound_id = nextval(%s::regclass) WHERE {where}",
            [self._sequence(cursor, OUTBOX)],
        )

    def lock(self, cursor, subscriber_ids: list[int]) -> None:
        # In id order, as every service locks, so no two transactions deadlock.
        cursor.execute(
            f"SELECT id FROM {SUBSCRIBER} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [subscriber_ids],
        )


def dialect() -> Dialect:
    return PostgresDialect() if connection.vendor == "postgresql" else Dialect()
