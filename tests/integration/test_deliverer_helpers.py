"""Helpers for the deliverer's integration tests: configs, tasks, settings, a subprocess runner."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from deliverer.settings import DelivererSettings
from tests.support.kafka import read_topic
from webhooks_common.kafka import make_producer, started
from webhooks_common.models import DeliveryTask, SigningSecret, WebhookConfig
from webhooks_common.secrets import SecretBox, generate_secret
from webhooks_common.topics import Topics
from webhooks_devtools.procs import Proc
from webhooks_devtools.services import DELIVERER_READY_LINE, deliverer_ready, service_argv

ROOT = Path(__file__).resolve().parents[2]


def deliverer_settings(
    bootstrap: str, topics: Topics, group_id: str, secrets_key: str, **overrides: Any
) -> DelivererSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": topics.prefix,
        "secrets_key": secrets_key,
        "allow_private_targets": True,
        "group_id": group_id,
        "metrics_port": 0,
        "metrics_host": "127.0.0.1",
        "retry_schedule": "0,0.5,0.5",
        "jitter": 0.0,
        "timeout_s": 5.0,
        "shutdown_grace_s": 2.0,
        "commit_interval_s": 0.1,
    }
    values.update(overrides)
    return DelivererSettings(**values)


@dataclass
class Hook:
    config: WebhookConfig
    secret: str  # plain `whsec_...`, for verifying with standardwebhooks


def make_hook(secrets_key: str, url: str, *, enabled: bool = True, version: int = 1) -> Hook:
    secret = generate_secret()
    now = datetime.now(UTC)
    cfg = WebhookConfig(
        id=f"w{uuid.uuid4().hex[:8]}",
        entity_id="e1",
        entity_name="Entity",
        name="hook",
        enabled=enabled,
        event_url=url,
        version=version,
        secrets=[SigningSecret(encrypted=SecretBox(secrets_key).encrypt(secret), created_at=now)],
        updated_at=now,
    )
    return Hook(cfg, secret)


def changed(hook: Hook, **fields: Any) -> WebhookConfig:
    """The hook's config one version later with some fields changed."""
    cfg = hook.config.model_copy(update={**fields, "version": hook.config.version + 1})
    hook.config = cfg
    return cfg


def make_task(hook: Hook, n: int = 0, *, url: str | None = None) -> DeliveryTask:
    ev = f"ev{n}-{uuid.uuid4().hex[:6]}"
    body = orjson.dumps(
        {
            "id": ev,
            "type": "booking.create",
            "timestamp": "2026-11-27T10:00:00Z",
            "entityId": "e1",
            "data": {"n": n},
        }
    ).decode()
    return DeliveryTask(
        task_id=f"{ev}:{hook.config.id}",
        event_id=ev,
        event_type="booking.create",
        entity_id="e1",
        webhook_id=hook.config.id,
        webhook_version=hook.config.version,
        url=url or hook.config.event_url,
        body=body,
        entered_at_ms=int(time.time() * 1000),
    )


async def publish(
    bootstrap: str,
    topics: Topics,
    *,
    configs: list[WebhookConfig] = (),  # type: ignore[assignment]
    tasks: list[DeliveryTask] = (),  # type: ignore[assignment]
    partition: int | None = None,
) -> None:
    async with started(make_producer(bootstrap)) as producer:
        futs = [await producer.send(topics.config, key=c.id.encode(), value=c.to_bytes()) for c in configs]
        futs += [
            await producer.send(
                topics.deliveries, key=t.url.encode(), value=t.to_bytes(), partition=partition
            )
            for t in tasks
        ]
        await asyncio.gather(*futs)


async def records(
    bootstrap: str, topic: str, *, idle: float = 0.5, timeout: float = 5.0
) -> list[ConsumerRecord]:
    return await read_topic(bootstrap, topic, idle=idle, timeout=timeout)


def values(recs: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in recs if r.value is not None]


class DelivererProcess:
    """`python -m deliverer` in a subprocess (output to a file), for kill/scale tests."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: Proc | None = None
        self.metrics_port: int | None = None

    async def start(self, within_s: float = 30.0) -> None:
        port = self.env.get("DELIVERER_METRICS_PORT", "9100")
        self.proc = Proc(
            "deliverer",
            service_argv("deliverer"),
            self.env,
            cwd=ROOT,
            log_path=self.log_path,
            ready=deliverer_ready(port),
        ).start()
        await self.proc.wait_ready(within_s)
        line = self.proc.found(DELIVERER_READY_LINE)
        self.metrics_port = int(line.group(1)) if line else int(port)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    async def terminate(self, within_s: float = 20.0) -> int:
        assert self.proc is not None
        code = await self.proc.stop(within_s)
        assert code is not None
        return code


def process_env(
    bootstrap: str, topics: Topics, group_id: str, secrets_key: str, **extra: str
) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "WEBHOOK_SECRETS_KEY": secrets_key,
        "DELIVERY_ALLOW_PRIVATE_TARGETS": "true",
        "DELIVERER_GROUP_ID": group_id,
        "DELIVERER_METRICS_PORT": "0",
        "DELIVERER_METRICS_HOST": "127.0.0.1",
        "DELIVERER_RETRY_SCHEDULE": "0,0.5,0.5",
        "DELIVERER_JITTER": "0",
        "LOG_FORMAT": "text",
    }
    env.update(extra)
    return env
