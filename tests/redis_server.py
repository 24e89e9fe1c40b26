"""A redis-server process of a test's own, to stop and start again on one port: the
real way to see what the app does while Redis is down."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SpareRedis:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our arguments
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while not (self.process.poll() is None and self._answers(client)):
            if time.monotonic() > deadline:
                raise TimeoutError("the spare redis-server did not start")
            time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False


@pytest.fixture
def spare_redis() -> Iterator[SpareRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must run the Redis-outage tests")
        pytest.skip("needs the redis-server binary")
    server = SpareRedis(binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
