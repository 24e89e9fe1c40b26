"""The confirmation-latency benchmark's baseline: a task that does nothing but note
when a worker started it, so Celery and Redis's own hand-over time is measured in the
same run as the sign-up's. The worker loads it with `--include bench.latency_tasks`."""

import time
from functools import lru_cache

import redis
from celery import shared_task
from django.conf import settings

STARTED_KEY = "bench:baseline-started"


@shared_task(ignore_result=True)
def note_start(sent_at: float) -> None:
    _client(settings.REDIS_URL).rpush(STARTED_KEY, f"{sent_at} {time.time()}")


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)
