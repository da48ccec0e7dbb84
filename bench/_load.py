"""Kafka side of the bench: fresh topics per stack, webhook configs written straight to the config topic,
and input events (a backlog written at once, or a paced stream at a fixed rate).

Configs go straight onto `webhooks.config` as `WebhookConfig` records (what the registry publishes),
with secrets encrypted by a key generated for the run: the registry and its database are not on the
delivery path, so the bench leaves them out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from webhooks_common.kafka import ensure_topics, make_producer
from webhooks_common.models import SigningSecret, WebhookConfig
from webhooks_common.secrets import SecretBox, generate_secret
from webhooks_common.topics import Topics, topic_specs
from webhooks_devtools.topic_tap import TopicTap

BODY_BYTES = 515  # size of the JSON body an integrator receives (and of the ceiling client's payload)
EVENT_TYPE = "booking.create"
OCCURRED_AT = "2026-11-27T10:00:00Z"


@dataclass(frozen=True)
class Hook:
    id: str
    entity_id: str
    path: str  # on the receiver; the URL is http://127.0.0.1:<port><path>
    url: str


def make_hooks(
    prefix: str, n: int, ports: list[int], *, entity: str | None = None, first: int = 0
) -> list[Hook]:
    """`n` webhooks on `n` distinct URLs (paths spread over the receiver's ports).

    Without `entity` each webhook belongs to its own entity (one event -> one delivery); with it, all of
    them belong to that entity (one event -> n deliveries: the fan-out case).
    """
    hooks = []
    for i in range(first, first + n):
        path = f"/{prefix}h{i}"
        port = ports[i % len(ports)]
        hooks.append(
            Hook(f"{prefix}wh{i}", entity or f"{prefix}e{i}", path, f"http://127.0.0.1:{port}{path}")
        )
    return hooks


def body_dict(event_id: str, entity_id: str, t_us: int, pad: str) -> dict[str, object]:
    """The body an integrator receives: {"id","type","timestamp","entityId","data"} (router's render)."""
    return {
        "id": event_id,
        "type": EVENT_TYPE,
        "timestamp": OCCURRED_AT,
        "entityId": entity_id,
        "data": {"t": t_us, "pad": pad},
    }


# the rendered body without id, entity id and padding (t has 16 digits until the year 2286)
_BARE = len(orjson.dumps(body_dict("", "", 10**15, "")))


def pad_for(event_id: str, entity_id: str) -> str:
    """Padding that makes the body the router renders BODY_BYTES long (ASCII ids)."""
    return "p" * max(0, BODY_BYTES - _BARE - len(event_id) - len(entity_id))


def event_value(event_id: str, entity_id: str, t_us: int) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": EVENT_TYPE,
            "occurredAt": OCCURRED_AT,
            "entityId": entity_id,
            "data": {"t": t_us, "pad": pad_for(event_id, entity_id)},
        }
    )


async def create_stack_topics(kafka: str, topics: Topics) -> None:
    await ensure_topics(kafka, topic_specs(topics))


async def write_configs(kafka: str, topics: Topics, hooks: list[Hook], secrets_key: str) -> None:
    box = SecretBox(secrets_key)
    now = datetime.now(UTC)
    producer = make_producer(kafka)
    await producer.start()
    try:
        futs = []
        for h in hooks:
            cfg = WebhookConfig(
                id=h.id,
                entity_id=h.entity_id,
                entity_name=f"bench {h.entity_id}",
                name=f"bench {h.id}",
                enabled=True,
                event_url=h.url,
                event_list=[],
                version=1,
                secrets=[SigningSecret(encrypted=box.encrypt(generate_secret()), created_at=now)],
                updated_at=now,
            )
            futs.append(await producer.send(topics.config, key=h.id.encode(), value=cfg.to_bytes()))
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


class EventWriter:
    """Writes input events to `wink.events` (key = entity id), as a product service would."""

    def __init__(self, kafka: str, topics: Topics, run_id: str) -> None:
        self.topic = topics.wink_events
        self.run_id = run_id
        self.seq = 0
        # linger 0: an event is on its way when it is stamped; latency is the system's, not this client's
        # batching (a 2 ms linger here added ~2 ms to every figure before 2026-12-01)
        self.producer: AIOKafkaProducer = make_producer(kafka, linger_ms=0)

    async def __aenter__(self) -> EventWriter:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, entity_id: str) -> asyncio.Future[object]:
        self.seq += 1
        value = event_value(f"{self.run_id}-{self.seq}", entity_id, time.time_ns() // 1000)
        fut: asyncio.Future[object] = await self.producer.send(
            self.topic, key=entity_id.encode(), value=value
        )
        return fut

    async def backlog(self, entities: list[str], n: int) -> None:
        """`n` events round-robin over `entities`, all written (acked) before returning."""
        futs = [await self.send(entities[i % len(entities)]) for i in range(n)]
        await asyncio.gather(*futs)

    async def paced(self, entities: list[str], rate: float, seconds: float) -> int:
        """`rate` events/s for `seconds`, sent in 5 ms ticks, each stamped when sent. Returns the count."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        futs: list[asyncio.Future[object]] = []
        total = int(rate * seconds)
        i = 0
        while sent < total:
            due = min(total, int((loop.time() - start) * rate) + 1)
            while sent < due:
                futs.append(await self.send(entities[i % len(entities)]))
                i += 1
                sent += 1
            if len(futs) > 2000:
                await asyncio.gather(*futs)
                futs = []
            await asyncio.sleep(0.005)
        await asyncio.gather(*futs)
        return sent


class TaskTap(TopicTap):
    """Reads the deliveries topic beside the deliverer: produce -> task-on-Kafka time per task.

    A task record's timestamp is the router's producer clock when it wrote the task (CreateTime), and its
    body carries the event's produce time, so this splits end-to-end latency into the router's share and
    the rest (deliverer fetch, queueing, POST). Group-less: it takes no partitions from the deliverers;
    from the topic's end (the warm-up runs before anything is measured).
    """

    def __init__(self, kafka: str, topics: Topics) -> None:
        # answered once a second (unless 1 MB is waiting) rather than per record or every 100 ms: the tap's
        # own fetches must not load the broker it measures (each task's Kafka timestamp is what is read,
        # not when the tap gets it). At 100 ms they cost the broker 0.04 of a core at 100 events/s and
        # 0.006-0.012 idle, counted as the system's (bench/RESULTS.md, 2026-12-01 10:44).
        super().__init__(
            kafka,
            topics.deliveries,
            self._time,
            from_beginning=False,
            fetch_max_wait_ms=1000,
            fetch_min_bytes=1024 * 1024,
        )
        self.ms: list[float] = []

    def _time(self, records: list[ConsumerRecord]) -> None:
        for r in records:
            try:
                t_us = orjson.loads(orjson.loads(r.value)["body"])["data"]["t"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            self.ms.append(r.timestamp - t_us / 1000)
