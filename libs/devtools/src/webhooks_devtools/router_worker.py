"""Router workers (`python -m router`) as child processes, for the tests and the router bench.

    async with RouterWorker(kafka, topics.prefix) as w:     # SIGTERM (then SIGKILL) on the way out
        await w.wait_ready()
    # or: w = RouterWorker(...).start(); await w.wait_ready(); ...; w.kill() / await w.astop()

Workers started with the same prefix and `app_id` share one consumer group.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import Proc, http_get
from webhooks_devtools.services import readyz, service_argv


class RouterWorker:
    def __init__(
        self,
        kafka: str,
        prefix: str,
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
            "KAFKA_TOPIC_PREFIX": prefix,
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
        self.proc = Proc(
            "router",
            service_argv("router"),
            self.env,
            cwd=self.datadir,
            log_path=self.log_path,
            ready=readyz(self.web_port),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> Self:
        self.proc.start()
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.url + path)

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until /readyz answers 200 (config caught up); fails early when the process died."""
        await self.proc.wait_ready(within)

    def partitions(self) -> list[str]:
        """Input partitions assigned to this worker (`topic:partition`), from /readyz."""
        status, body = self.get("/readyz")
        return list(json.loads(body).get("partitions", [])) if status == 200 else []

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def kill(self) -> None:
        """SIGKILL: the crash the at-least-once guarantee must survive."""
        self.proc.kill()
        self.proc.stop_sync(10)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code."""
        return self.proc.stop_sync(grace)

    async def astop(self, grace: float = 15.0) -> int | None:
        return await self.proc.stop(grace)

    def log_tail(self, n: int = 60) -> str:
        return self.proc.log_tail(n)

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()
