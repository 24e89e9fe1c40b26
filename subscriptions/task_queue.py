"""Handing a task to the Celery worker in one Redis call.

Celery's `delay()` costs about 0.4 ms a call on this machine, most of it kombu's
channel and connection machinery around a single LPUSH; a sign-up is a couple of
milliseconds in all, so every sign-up would spend a fifth of itself there. Here the
message is built by Celery's own `as_task_v2`, wrapped the way kombu's Redis transport
wraps it, and pushed onto the queue Celery's router names with one LPUSH on a pooled
connection. A worker cannot tell it from `delay()` (tests/test_celery_worker.py runs a
real one on it). Without a Redis broker (eager mode, the embedded set-up) it is
`delay()` itself.
"""

import base64
import json
import uuid
from functools import lru_cache

import redis
from celery import Celery, Task
from celery.utils.nodenames import anon_nodename

# kombu's Redis transport: the body base64-encoded inside a JSON envelope.
_CONTENT_TYPE = "application/json"
_PERSISTENT = 2
# Which process sent the task, as Celery writes it (for the worker's logs).
_ORIGIN = anon_nodename()


def send_to_worker(task: Task, *args: object) -> str:
    """Enqueue `task(*args)` for a worker; returns the task id. Raises what Redis
    raises when it cannot be reached (the caller's outbox sweeper is the safety net)."""
    app = task.app
    if app.conf.task_always_eager or not app.conf.broker_url.startswith(("redis://", "rediss://")):
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
