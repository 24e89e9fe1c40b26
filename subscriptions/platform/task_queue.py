"""Handing a task to the Celery worker, by its registered name, in one Redis call.

Code below the task module enqueues through here by name and never imports it: the
tasks call into every capability, so an import the other way would close a loop.

Celery's `delay()` spends most of its time in kombu's channel and connection
machinery around a single LPUSH, a large share of a whole sign-up (BENCHMARKS.md). Here
the message is built by Celery's own `as_task_v2`, wrapped the way kombu's Redis
transport wraps it, and pushed onto the queue Celery's router names with one LPUSH on a
pooled connection: byte for byte what `delay()` pushes (tests/test_task_queue.py
compares them under the pinned kombu, and a real worker runs it in
tests/test_celery_worker.py).

Only for the configuration that comparison covers (`hand_built_envelope_fits`): with a
key prefix, priorities, TLS, custom routes or another serializer, and without a Redis
broker (eager mode, the embedded set-up), it is `delay()` itself. A transport option
this module does not know stops start-up (`unknown_transport_options`, a system check):
a new kombu option may change the message.
"""

import base64
import json
import uuid
from functools import lru_cache

import redis
from celery import Celery, current_app
from celery.utils.nodenames import anon_nodename

# kombu's Redis transport: the body base64-encoded inside a JSON envelope.
_CONTENT_TYPE = "application/json"
_PERSISTENT = 2
# Which process sent the task, as Celery writes it (for the worker's logs).
_ORIGIN = anon_nodename()

# kombu Redis transport options that change neither the message nor the key it is
# pushed to: connections, timeouts, and the consumer's side (acknowledgement, order).
NEUTRAL_TRANSPORT_OPTIONS = frozenset(
    {
        "visibility_timeout",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "max_connections",
        "health_check_interval",
        "retry_on_timeout",
        "client_name",
        "queue_order_strategy",
        "ack_emulation",
        "unacked_key",
        "unacked_index_key",
        "unacked_mutex_key",
        "unacked_mutex_expire",
        "unacked_restore_limit",
        "unacked_restore_interval",
        "unacked_restore_throttle",
        "fanout_prefix",
        "fanout_patterns",
        "polling_interval",
    }
)
# Options that do change them (a key prefix, the priority queues, the body's encoding):
# with any of these set, the message goes through `delay()`.
SHAPING_TRANSPORT_OPTIONS = frozenset(
    {"global_keyprefix", "sep", "priority_steps", "body_encoding", "deadletter_queue"}
)


def unknown_transport_options(options: dict) -> list[str]:
    """The transport options this module was never checked against."""
    return sorted(set(options) - NEUTRAL_TRANSPORT_OPTIONS - SHAPING_TRANSPORT_OPTIONS)


def hand_built_envelope_fits(app: Celery) -> bool:
    """Whether the configuration is one the hand-built message matches `delay()` in."""
    return not app.conf.task_always_eager and _configuration_fits(app)


def _configuration_fits(app: Celery) -> bool:
    conf = app.conf
    return (
        conf.broker_url.startswith("redis://")
        and not conf.broker_use_ssl
        and set(conf.broker_transport_options or {}) <= NEUTRAL_TRANSPORT_OPTIONS
        and conf.task_default_priority is None
        and conf.task_queue_max_priority is None
        and not conf.task_routes
        and not conf.task_queues
        and not conf.task_compression
        and conf.task_serializer == "json"
        and conf.task_protocol == 2
    )


def send_to_worker(task_name: str, *args: object) -> str:
    """Enqueue the task registered as `task_name` with `args` for a worker; returns the
    task id. Raises what the broker raises when it cannot be reached (the callers'
    sweepers are the safety net), and KeyError for a name no task is registered under."""
    app = current_app
    task = app.tasks[task_name]
    if app.conf.task_always_eager or not _fits(app, app.conf.broker_url):
        return task.delay(*args).id
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(
        task_id,
        task.name,
        args=args,
        kwargs={},
        # What saferepr would make of a few ids, without its walk through the config.
        argsrepr=repr(args),
        kwargsrepr="{}",
        origin=_ORIGIN,
        ignore_result=task.ignore_result,
        reply_to=app.thread_oid,
    )
    queue = _queue(app, task.name, app.conf.task_default_queue)
    envelope = {
        "body": base64.b64encode(json.dumps(message.body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": _CONTENT_TYPE,
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": _PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    _client(app.conf.broker_url).lpush(queue, json.dumps(envelope))
    return task_id


def send_to_queue(task_name: str, queue: str, *args: object) -> str:
    """Enqueue the task registered as `task_name` on `queue` rather than its default
    one: through Celery itself (eagerly in the embedded set-up), since the hand-built
    message is proved for the default queue only; for work enqueued rarely."""
    return current_app.tasks[task_name].apply_async(args, queue=queue).id


@lru_cache(maxsize=8)
def _fits(app: Celery, broker_url: str) -> bool:
    """Read once per broker URL: the rest of the configuration is fixed at start-up."""
    return _configuration_fits(app)


@lru_cache(maxsize=64)
def _queue(app: Celery, task_name: str, default_queue: str) -> str:
    """The queue Celery's router sends this task to (remembered: the router reads the
    configuration a dozen times a call; a changed default queue is a new key)."""
    return app.amqp.router.route({}, task_name, (), {})["queue"].name


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts: a sign-up must not hang on a broker that is down.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


# A key the broker keeps as long as it keeps its messages (same Redis, same database).
_EPOCH_KEY = "newsroom:broker-epoch"


def broker_lost_its_messages(broker_url: str) -> bool:
    """Whether the Redis broker came back without the data it held (restarted without
    persistence, or flushed), so every task message it held is gone: the first caller
    to see the broker's data gone answers True, once; every later caller False. Any
    other broker keeps its (durable) messages, and an unreachable one answers False.
    """
    if not broker_url.startswith(("redis://", "rediss://")):
        return False
    try:
        return bool(_client(broker_url).set(_EPOCH_KEY, uuid.uuid4().hex, nx=True))
    except redis.RedisError:
        return False
