"""Run as a script by tests/test_task_queue.py, in a process of its own (the Celery
configuration is read once): pushes one task through `send_to_worker` and the same task
through Celery's own `apply_async`, and prints, as JSON, the Redis key and the exact
bytes each left there.

    python tests/envelope_probe.py <redis url> <case> <task name> <json args>
"""

import json
import os
import sys
import uuid
from pathlib import Path

CASES = {
    "as deployed": {},
    "key prefix": {"transport": {"global_keyprefix": "probe:"}},
    "priorities": {"conf": {"task_default_priority": 5}},
}
QUEUE = "envelope-probe"
TASK_ID = "11111111-1111-4111-8111-111111111111"
DELIVERY_TAG = "22222222-2222-4222-8222-222222222222"


def main(redis_url: str, case: str, task_name: str, args: list) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="newsroom.settings",
        REDIS_URL=redis_url,
        CELERY_TASK_ALWAYS_EAGER="false",
    )
    import django

    django.setup()
    import celery.app.base
    import kombu.transport.virtual.base
    import redis
    from celery import current_app

    from subscriptions.platform import task_queue

    conf = current_app.conf
    conf.task_default_queue = QUEUE
    conf.broker_transport_options = {
        **conf.broker_transport_options,
        **CASES[case].get("transport", {}),
    }
    for name, value in CASES[case].get("conf", {}).items():
        conf[name] = value
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"*{QUEUE}*"):
        client.delete(key)

    def pushed() -> tuple[str, bytes]:
        # kombu also keeps a set of its bindings under a key with the queue's name.
        (key,) = [
            k.decode() for k in client.scan_iter(match=f"*{QUEUE}*") if client.type(k) == b"list"
        ]
        (raw,) = client.lrange(key, 0, -1)
        client.delete(key)
        return key, raw

    def kombu_uuid() -> str:
        return DELIVERY_TAG

    ours = iter([uuid.UUID(TASK_ID), uuid.UUID(DELIVERY_TAG)])
    real_uuid4 = uuid.uuid4
    kombu.transport.virtual.base.uuid = kombu_uuid  # type: ignore[attr-defined]
    # The id delay() makes up when the helper hands the task to Celery.
    celery.app.base.uuid = lambda: TASK_ID  # type: ignore[attr-defined]
    uuid.uuid4 = lambda: next(ours)
    try:
        task_queue.send_to_worker(task_name, *args)
    finally:
        uuid.uuid4 = real_uuid4
    our_key, our_bytes = pushed()
    # As delay(*args) passes them: a tuple.
    current_app.tasks[task_name].apply_async(tuple(args), task_id=TASK_ID)
    their_key, their_bytes = pushed()
    print(
        json.dumps(
            {
                "hand_built": task_queue.hand_built_envelope_fits(current_app),
                "ours": [our_key, our_bytes.decode()],
                "kombu": [their_key, their_bytes.decode()],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
