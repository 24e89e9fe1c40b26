"""redis-server processes of a test's own: a plain one to stop and start again on one
port (the real way to see what the app does while Redis is down), and a single-node
Redis Cluster (the real way to see what a cluster refuses)."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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

    def arguments(self) -> list[str]:
        return [
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our arguments
            [self.binary, *self.arguments()],
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


class ClusterRedis(SpareRedis):
    """A Redis Cluster of one node that serves all 16384 hash slots. One node is enough
    to see what a cluster enforces: it refuses a command or script whose keys hash to
    different slots (CROSSSLOT) as a cluster of many nodes does."""

    def __init__(self, binary: str, directory: Path) -> None:
        super().__init__(binary)
        self.directory = directory
        # The cluster bus gets a port of its own: the default, port + 10000, may be
        # taken or past 65535.
        self.bus_port = free_port()
        while self.bus_port == self.port:
            self.bus_port = free_port()

    def arguments(self) -> list[str]:
        return [
            *super().arguments(),
            *("--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)),
            *("--cluster-config-file", str(self.directory / "nodes.conf")),
            *("--dir", str(self.directory)),
        ]

    def start(self) -> None:
        super().start()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, decode_responses=True)
        try:
            if client.cluster("info")["cluster_slots_assigned"] == "0":
                client.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            # A master that has just started waits a moment before it calls its
            # cluster ok and takes writes.
            deadline = time.monotonic() + 15
            while client.cluster("info")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError("the cluster node did not reach cluster_state:ok")
                time.sleep(0.05)
        finally:
            client.close()


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI runs the tests that need one")
        pytest.skip("needs the redis-server binary")
    return binary


@pytest.fixture
def spare_redis() -> Iterator[SpareRedis]:
    server = SpareRedis(_redis_server_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[ClusterRedis]:
    server = ClusterRedis(_redis_server_binary(), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
