"""The deliverer's own view of `webhooks.config`: current URL, state and decrypted secrets per webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from webhooks_common.kafka import start_client, stop_client
from webhooks_common.models import WebhookConfig
from webhooks_common.secrets import SecretBox, secret_bytes

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WebhookView:
    id: str
    entity_id: str
    version: int
    enabled: bool
    url: str
    # (key, expires_at unix seconds or None), decrypted once when the config arrives
    keys: list[tuple[bytes, float | None]] = field(default_factory=list)

    def valid_keys(self, now_s: float) -> list[bytes]:
        return [k for k, exp in self.keys if exp is None or exp > now_s]


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


class ConfigView:
    """webhook id -> WebhookView, fed from the compacted config topic (and local 410 disables)."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._hooks: dict[str, WebhookView] = {}
        self._removed: set[str] = set()

    def get(self, webhook_id: str) -> WebhookView | None:
        return self._hooks.get(webhook_id)

    def removed(self, webhook_id: str) -> bool:
        return webhook_id in self._removed

    def __len__(self) -> int:
        return len(self._hooks)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the config topic (a tombstone removes the webhook)."""
        if key is None:
            return
        wid = key.decode()
        if value is None:
            self._hooks.pop(wid, None)
            self._removed.add(wid)
            return
        try:
            cfg = WebhookConfig.from_bytes(value)
        except ValueError:
            log.exception("unreadable config record for webhook %s; keeping the previous one", wid)
            return
        current = self._hooks.get(wid)
        if current is not None and current.version > cfg.version:
            return  # an older record (e.g. re-read); a local disable also keeps its version until superseded
        keys: list[tuple[bytes, float | None]] = []
        for s in cfg.secrets:
            try:
                keys.append((secret_bytes(self._box.decrypt(s.encrypted)), _ts(s.expires_at)))
            except ValueError:
                log.error("signing secret of webhook %s cannot be decrypted with WEBHOOK_SECRETS_KEY", wid)
        self._removed.discard(wid)
        self._hooks[wid] = WebhookView(cfg.id, cfg.entity_id, cfg.version, cfg.enabled, cfg.event_url, keys)

    def mark_disabled(self, webhook_id: str) -> None:
        """Stop delivering at once (after a 410) without waiting for the registry's change to come back."""
        view = self._hooks.get(webhook_id)
        if view is not None:
            view.enabled = False


class ConfigFollower:
    """Reads the whole config topic from the beginning (group-less), then keeps following it."""

    def __init__(self, bootstrap: str, topic: str, view: ConfigView) -> None:
        self._topic = topic
        self._view = view
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self, within_s: float = 60.0) -> None:
        """Returns once the view holds everything the topic had when we started (our readiness)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        await start_client(self._consumer)
        # group-less subscription: this consumer is assigned every partition of the topic
        while not self._consumer.assignment():
            if loop.time() > deadline:
                raise TimeoutError(f"config topic {self._topic} not assigned within {within_s}s")
            await self._consumer.getmany(timeout_ms=100)
        tps = sorted(self._consumer.assignment())
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        while not await self._caught_up(ends):
            if loop.time() > deadline:
                raise TimeoutError(f"config topic not read to its end within {within_s}s")
            await self._poll(200)
        log.info("config view ready: %d webhooks", len(self._view))
        self._task = asyncio.create_task(self._follow(), name="config-follower")

    async def _caught_up(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def _poll(self, timeout_ms: int) -> None:
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for records in batch.values():
            for r in records:
                self._view.apply(r.key, r.value)

    async def _follow(self) -> None:
        while True:
            try:
                await self._poll(500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config follower error; retrying")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await stop_client(self._consumer)
