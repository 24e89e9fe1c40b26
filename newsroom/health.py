"""Health checks, answered over plain HTTP (exempt from the HTTPS redirect: a check runs
inside the container, behind the TLS proxy).

- `/healthz/`: the container's health check: whether the database answers. Redis is
  left out on purpose: sign-ups work without it, so its outage must not get the web
  container restarted.
- `/readyz/`: whether this process can do all its work: the database answers and every
  migration is applied, Redis and the broker answer. 503 names what failed, and no
  more (no address, no error text); each check has its own deadline, so the answer
  comes within a second.
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from newsroom.celery import app as celery_app
from subscriptions.platform.redis_store import redis_client

logger = logging.getLogger(__name__)

# The whole answer's deadline; each check's own timeouts are shorter.
READY_SECONDS = 1.0
_CHECK_TIMEOUT = 0.5
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
# Once every migration is applied it stays so for this process's life (a new release's
# migrations come with new processes): the graph is read once, not per probe.
_migrated = False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Callable[[], str]] = {"database": _database, "migrations": _migrations}
    if settings.REDIS_URL:
        checks["redis"] = _redis
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = _broker
    started = time.monotonic()
    futures = {name: _pool.submit(_in_thread, check) for name, check in checks.items()}
    wait(futures.values(), timeout=READY_SECONDS)
    results = {
        name: future.result() if future.done() else "timed out" for name, future in futures.items()
    }
    ready = all(result == "ok" for result in results.values())
    if not ready:
        logger.warning(
            "not ready after %.2f s: %s",
            time.monotonic() - started,
            ", ".join(f"{name} {result}" for name, result in results.items() if result != "ok"),
        )
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)


def _in_thread(check: Callable[[], str]) -> str:
    try:
        return check()
    except Exception:  # noqa: BLE001 - any failure is "unavailable"; the log has the rest
        logger.warning("readiness check %s failed", check.__name__, exc_info=True)
        return "unavailable"
    finally:
        connections.close_all()  # this pool thread's own


def _database() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET statement_timeout = %s", [int(_CHECK_TIMEOUT * 1000)])
        cursor.execute("SELECT 1")
    return "ok"


def _migrations() -> str:
    global _migrated
    if not _migrated:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if unapplied:
            return f"{len(unapplied)} not applied"
        _migrated = True
    return "ok"


def _redis() -> str:
    redis_client(settings.REDIS_URL).ping()  # the app's own pooled client, short timeouts
    return "ok"


def _broker() -> str:
    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=0, timeout=_CHECK_TIMEOUT)  # once, no retry
    return "ok"
