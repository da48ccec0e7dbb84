"""Start and stop router workers (`python -m router`) as subprocesses, for integration, e2e and chaos tests.

    async with RouterWorker(servers.kafka, topics, web_port=free_port()) as w:
        await w.wait_ready()
        ...
    # or: w = RouterWorker(...); w.start(); await w.wait_ready(); ...; w.kill() / w.stop()

All workers started with the same `topics` (prefix) and `app_id` share one consumer group.
Stopping sends SIGTERM and SIGKILLs after `grace` seconds (a faust worker whose agent crashed can hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from webhooks_common.kafka import start_client, stop_client
from webhooks_common.topics import Topics

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RouterWorker:
    def __init__(
        self,
        kafka: str,
        topics: Topics,
        *,
        web_port: int | None = None,
        app_id: str = "webhooks-router",
        input_partitions: int = 3,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.web_port = web_port or free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="router-"))
        self.log_path = log_path or self.datadir / "worker.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_TOPIC_PREFIX": topics.prefix,
            "ROUTER_APP_ID": app_id,
            "ROUTER_WEB_PORT": str(self.web_port),
            "ROUTER_WEB_BIND": "127.0.0.1",
            "ROUTER_INPUT_PARTITIONS": str(input_partitions),
            "ROUTER_DATADIR": str(self.datadir),
            "ROUTER_SESSION_TIMEOUT_S": "6",
            "ROUTER_COMMIT_INTERVAL_S": "0.5",
            "LOG_FORMAT": "text",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> RouterWorker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router"], env=self.env, cwd=self.datadir, stdout=log, stderr=log
        )
        log.close()
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def is_ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until /readyz answers 200 (config caught up); fails early when the process died."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"router exited with {self.proc.returncode}:\n{self.log_tail()}")
            if await asyncio.to_thread(self.is_ready):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"router not ready after {within}s:\n{self.log_tail()}")

    def partitions(self) -> list[str]:
        """Input partitions assigned to this worker (`topic:partition`), from /readyz."""
        try:
            status, body = self.get("/readyz")
        except OSError:
            return []
        return list(orjson.loads(body).get("partitions", [])) if status == 200 else []

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def kill(self) -> None:
        """SIGKILL: the crash the at-least-once guarantee must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    async def astop(self, grace: float = 15.0) -> int | None:
        return await asyncio.to_thread(self.stop, grace)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def __aenter__(self) -> RouterWorker:
        self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()


class TopicCollector:
    """Reads a topic from the beginning in the background, keeping every record (for assertions)."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.records: list[ConsumerRecord] = []
        self._next: dict[int, int] = {}  # partition -> offset after the last record seen
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicCollector:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.kafka,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await start_client(consumer)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))
        return self

    async def catch_up(self, within: float = 20.0) -> None:
        """Wait until every record written to the topic so far has been collected."""
        assert self._consumer is not None
        parts = self._consumer.partitions_for_topic(self.topic) or set()
        end = await self._consumer.end_offsets([TopicPartition(self.topic, p) for p in parts])
        deadline = time.monotonic() + within
        while any(self._next.get(tp.partition, 0) < off for tp, off in end.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"collector of {self.topic} did not catch up in {within}s")
            await asyncio.sleep(0.05)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                for tp, recs in batch.items():
                    self.records.extend(recs)
                    self._next[tp.partition] = recs[-1].offset + 1
        finally:
            await stop_client(consumer)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
