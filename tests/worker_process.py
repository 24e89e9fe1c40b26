"""A Celery worker in a process of its own, started as a deployment starts it: settings
from the environment, the database the test uses, the broker the test points at. The
test can kill it, stop it, and read what it logged."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings


def test_database_url() -> str:
    """The database pytest-django created for the test (not the one DATABASE_URL names)."""
    database = settings.DATABASES["default"]
    credentials = quote(database["USER"] or "", safe="")
    if database["PASSWORD"]:
        credentials += ":" + quote(database["PASSWORD"], safe="")
    host = f"{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{database['NAME']}"


class WorkerProcess:
    """`celery -A newsroom worker ARGS` with `environment` over the test's own."""

    def __init__(self, *, arguments: list[str], environment: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = log_path.open("wb")
        # Its own session, so stopping it can reach a prefork pool's children too.
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter and arguments
            [sys.executable, "-m", "celery", "-A", "newsroom", "worker", *arguments],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DATABASE_URL": test_database_url(),
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "SITE_URL": settings.SITE_URL,
                **environment,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pool_children(self) -> set[int]:
        """The pids of the parent's children (its prefork pool), read from /proc."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while we looked
            if int(fields[1]) == self.process.pid:
                children.add(int(stat.parent.name))
        return children

    def log(self, tail: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        """Warm shutdown (the parent stops its pool first), or SIGKILL to the whole
        session if that does not end in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # The parent is still there (not reaped), so its session id is still ours.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._log.close()
