"""Which Kafka and MongoDB-protocol servers the tests talk to.

1. KAFKA_BOOTSTRAP_SERVERS / MONGO_URL when set (someone's own servers, or CI's);
2. else testcontainers when a Docker engine answers;
3. else the local servers of `make infra-up` (started here if needed; idempotent).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Servers:
    kafka: str
    mongo_url: str
    how: str


def _docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        # A pinned API version keeps from_env from connecting (and leaking a socket) before ping.
        client = docker.from_env(timeout=3, version="1.41")
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def select_servers() -> Iterator[Servers]:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGO_URL")
    if kafka and mongo:
        yield Servers(kafka, mongo, "settings")
        return
    if os.environ.get("TESTS_USE_DOCKER", "auto") != "never" and _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as k, MongoDbContainer("mongo:7") as m:
            yield Servers(k.get_bootstrap_server(), m.get_connection_url() + "/webhooks", "testcontainers")
        return
    subprocess.run([sys.executable, str(ROOT / "tools" / "infra.py"), "up"], check=True, cwd=ROOT)
    yield Servers(kafka or "127.0.0.1:9092", mongo or "mongodb://127.0.0.1:27017/webhooks", "local")
