"""One pooled Redis client per URL, with short timeouts: Redis holds counters and rate
limits, and a slow Redis must never make a page slow."""

from functools import lru_cache

import redis


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        health_check_interval=30,
        decode_responses=True,
    )
