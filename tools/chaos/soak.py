"""The bad-input soak: malformed records of every kind interleaved with valid events on the input topics.

Expected: every valid event delivered, every malformed record on `webhooks.invalid` (matched by source
topic, partition and offset), no service restart, RSS flat. Used by `make soak` (tools/chaos, 100,000
records) and tests/integration/test_bad_input_soak.py (reduced, on the shared servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from tools.chaos.stack import PrivateInfra, Stack, start_with_webhooks
from tools.chaos.traffic import Lag, Producer, Receivers, Sent, event_value, new_id, steady
from webhooks_common.kafka import ensure_topics
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import Topics, topic_specs
from webhooks_devtools.topic_tap import TopicTap

MB = 1024 * 1024


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _event(entity: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": new_id(),
        "type": "booking.created",
        "occurredAt": _ts(),
        "entityId": entity,
        "data": {"bookingId": "B1"},
    }
    doc.update(over)
    return doc


def _without(entity: str, name: str) -> dict[str, Any]:
    doc = _event(entity)
    doc.pop(name)
    return doc


WRONG_TYPES: list[dict[str, Any]] = [{"id": 7}, {"data": [1, 2]}, {"occurredAt": 1700000000}, {"type": None}]

# Each maker returns (key, value) for one malformed record. Weights: how often each kind is picked.
Maker = Callable[[random.Random, str], tuple[bytes | None, bytes | None]]
BAD_KINDS: dict[str, tuple[float, Maker]] = {
    "random_bytes": (20, lambda r, e: (e.encode(), r.randbytes(r.randint(1, 2000)))),
    "truncated_json": (6, lambda r, e: (e.encode(), orjson.dumps(_event(e))[: r.randint(1, 60)])),
    "invalid_utf8": (3, lambda r, e: (e.encode(), b'{"id":"\xff\xfe","type":"booking.created"}')),
    "deep_nesting": (1, lambda r, e: (e.encode(), b"[" * 5000 + b"]" * 5000)),
    "json_array": (4, lambda r, e: (e.encode(), orjson.dumps([_event(e)]))),
    "json_scalar": (4, lambda r, e: (e.encode(), r.choice([b"42", b'"booking"', b"null", b"true", b"{}"]))),
    "missing_field": (
        8,
        lambda r, e: (
            e.encode(),
            orjson.dumps(_without(e, r.choice(["id", "type", "entityId", "occurredAt"]))),
        ),
    ),
    "wrong_types": (
        8,
        lambda r, e: (e.encode(), orjson.dumps(_event(e, **r.choice(WRONG_TYPES)))),
    ),
    "bad_timestamp": (3, lambda r, e: (e.encode(), orjson.dumps(_event(e, occurredAt="yesterday")))),
    "long_field": (3, lambda r, e: (e.encode(), orjson.dumps(_event(e, id="x" * 5000)))),
    "unknown_type": (
        15,
        lambda r, e: (
            e.encode(),
            orjson.dumps(_event(e, type=r.choice(["booking.teleported", "x", "BOOKING"]))),
        ),
    ),
    "key_mismatch": (15, lambda r, e: (b"someone-else", orjson.dumps(_event(e)))),
    "no_key": (4, lambda r, e: (None, orjson.dumps(_event(e)))),
    "tombstone": (3, lambda r, e: (e.encode(), None)),
    # Large but under the router's limit (and Kafka's): a 200 kB value of the wrong shape.
    "big_wrong_shape": (0.3, lambda r, e: (e.encode(), orjson.dumps({"blob": "y" * 200_000}))),
    # Over the router's 512 kB limit (still under Kafka's 1 MB): the `too_large` reason.
    "huge_value": (0.1, lambda r, e: (e.encode(), orjson.dumps(_event(e, data={"blob": "z" * 600_000})))),
}


@dataclass
class SoakConfig:
    bad: int = 100_000
    valid: int = 10_000
    rate: float = 1500.0  # records per second (malformed + valid)
    webhooks: int = 20
    routers: int = 2
    deliverers: int = 2
    input_partitions: int = 6
    rss_every_s: float = 1.0
    rss_growth_limit_mb: float = 40.0
    drain_within_s: float = 180.0
    seed: int = 20261127
    # Servers to use; None starts a private pair (and stops it at the end).
    kafka: str | None = None
    mongo_url: str | None = None
    workdir: Path | None = None
    progress: Callable[[str], None] = field(default=lambda _m: None, repr=False)


class InvalidCollector(TopicTap):
    """Reads `webhooks.invalid` from the beginning in the background, keyed by source record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic, self._count, max_partition_fetch_bytes=4 * MB)
        self.keys: set[str] = set()
        self.reasons: Counter[str] = Counter()
        self.records = 0

    def _count(self, records: list[ConsumerRecord]) -> None:
        for r in records:
            self.records += 1
            inv = InvalidEvent.from_bytes(r.value)
            key = inv.key()
            if key not in self.keys:
                self.keys.add(key)
                self.reasons[inv.reason] += 1


class SoakRun:
    def __init__(self, cfg: SoakConfig) -> None:
        self.cfg = cfg
        self.say = cfg.progress
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
        self.prefix = f"soak{new_id()[:8]}."
        self.topics = Topics(self.prefix)
        self.rnd = random.Random(cfg.seed)
        self.rx = Receivers(2)
        self.infra: PrivateInfra | None = None
        self.stack: Stack | None = None
        self.producer: Producer | None = None
        self.bad_sent: list[Sent] = []
        self.bad_kinds: Counter[str] = Counter()
        self.entities = [f"soak-entity-{i:03d}" for i in range(cfg.webhooks)]
        self.hook_ids: list[str] = []
        self.rss: dict[str, list[tuple[int, int]]] = {}  # process -> [(records sent so far, rss bytes)]
        total = cfg.bad + cfg.valid
        self.valid_at = {round(k * total / cfg.valid) for k in range(cfg.valid)} if cfg.valid else set()
        self.mongo: str | None = None
        names = list(BAD_KINDS)
        self._kinds, self._weights = names, [BAD_KINDS[k][0] for k in names]

    async def setup(self) -> tuple[str, str]:
        cfg = self.cfg
        if cfg.kafka and cfg.mongo_url:
            kafka, mongo = cfg.kafka, cfg.mongo_url
            mongo = mongo.rsplit("/", 1)[0] + f"/soak_{self.prefix.strip('.')}"
            self.mongo = mongo  # a database of our own on a shared server: dropped at the end
        else:
            self.infra = await PrivateInfra.start(self.workdir / "infra")
            kafka, mongo = self.infra.bootstrap, self.infra.mongo_url
        await ensure_topics(kafka, topic_specs(self.topics, input_partitions=cfg.input_partitions))
        await self.rx.start()
        stack, hooks, self.producer = await start_with_webhooks(
            kafka,
            mongo,
            self.prefix,
            self.workdir,
            cfg,
            jwt_secret=secrets.token_urlsafe(32),
            entities=self.entities,
            rx=self.rx,
            extra_env={"DELIVERER_RETRY_SCHEDULE": "0,1,2,5,10", "LOG_LEVEL": "WARNING"},
        )
        self.stack = stack
        self.hook_ids = [h.id for h in hooks]
        self.say(f"soak: stack ready on {kafka}, {len(hooks)} webhooks")
        return kafka, mongo

    def _emit(self, i: int) -> None:
        assert self.producer is not None
        topic = self.topics.inputs[i % 2]
        n = self.rnd.randrange(len(self.entities))
        entity = self.entities[n]
        if i in self.valid_at:
            eid = new_id()
            rec = Sent(eid, f"{eid}:{self.hook_ids[n]}", time.time())
            self.producer.sent.append(rec)
            self.producer.send(self.topics.wink_events, entity.encode(), event_value(eid, entity, i), rec)
            return
        kind = self.rnd.choices(self._kinds, self._weights)[0]
        key, value = BAD_KINDS[kind][1](self.rnd, entity)
        rec = Sent(new_id(), kind, time.time())
        self.bad_sent.append(rec)
        self.bad_kinds[kind] += 1
        self.producer.send(topic, key, value, rec)

    async def _sample_rss(self, stop: asyncio.Event) -> None:
        assert self.stack is not None
        while not stop.is_set():
            progress = len(self.bad_sent) + (len(self.producer.sent) if self.producer else 0)
            for name, rss in self.stack.rss().items():
                if rss is not None:
                    self.rss.setdefault(name, []).append((progress, rss))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.rss_every_s)

    async def run(self) -> dict[str, Any]:
        t0 = time.time()
        collector: InvalidCollector | None = None
        try:
            kafka, _ = await self.setup()
            assert self.stack is not None and self.producer is not None
            collector = InvalidCollector(kafka, self.topics.invalid)
            await collector.start()
            stop = asyncio.Event()
            sampler = asyncio.create_task(self._sample_rss(stop))
            total = self.cfg.bad + self.cfg.valid
            await steady(total, self.cfg.rate, self._emit)
            await self.producer.flush(300)
            self.say(f"soak: {total} records written; waiting for the invalid topic and the deliveries")
            lag = Lag(self.producer.sent, self.rx)
            bad_keys = {f"{s.meta[0]}:{s.meta[1]}:{s.meta[2]}" for s in self.bad_sent if s.meta}
            deadline = time.monotonic() + self.cfg.drain_within_s
            while time.monotonic() < deadline:
                if lag.oldest_pending() is None and bad_keys <= collector.keys:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2 * self.cfg.rss_every_s)
            stop.set()
            await sampler
            return self.report(t0, bad_keys, collector)
        finally:
            if collector is not None:
                await collector.stop()
            await self.teardown()

    def report(self, t0: float, bad_keys: set[str], collector: InvalidCollector) -> dict[str, Any]:
        assert self.stack is not None and self.producer is not None
        valid = self.producer.sent
        delivered = sum(1 for s in valid if s.task_id in self.rx.delivered)
        restarts = {s.name: s.starts - 1 for s in self.stack.services if s.starts > 1}
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "duration_s": round(time.time() - t0, 1),
            "config": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(self.cfg).items()
                if k not in ("progress",)
            },
            "valid_sent": len(valid),
            "valid_delivered": delivered,
            "valid_lost": len(valid) - delivered,
            "duplicates": self.rx.duplicates,
            "bad_sent": len(self.bad_sent),
            "bad_by_kind": dict(self.bad_kinds),
            "bad_seen": len(bad_keys & collector.keys),
            "bad_missing": len(bad_keys - collector.keys),
            "unexpected_invalid": len(collector.keys - bad_keys),
            "invalid_records": collector.records,
            "invalid_by_reason": dict(collector.reasons),
            "restarts": restarts,
            "rss": {
                name: _rss_summary(samples, len(valid) + len(self.bad_sent))
                for name, samples in self.rss.items()
            },
        }

    async def teardown(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.producer.stop(), 30)
        if self.stack is not None:
            await self.stack.stop()
        await self.rx.stop()
        if self.infra is not None:
            await self.infra.down()
        if self.mongo is not None:
            from pymongo import AsyncMongoClient

            client: AsyncMongoClient[Any] = AsyncMongoClient(self.mongo, serverSelectionTimeoutMS=5000)
            with contextlib.suppress(Exception):
                await client.drop_database(client.get_default_database().name)
            await client.close()


def _rss_summary(samples: list[tuple[int, int]], total: int) -> dict[str, Any]:
    """RSS when a quarter, half, three quarters of the records were written, peak, at the end, and the
    growth from the first quarter (after warm-up) to the end."""
    if not samples:
        return {}

    def at(fraction: float) -> int:
        return next((rss for sent, rss in samples if sent >= total * fraction), samples[-1][1])

    q1, end = at(0.25), samples[-1][1]
    return {
        "samples": len(samples),
        "q1_mb": round(q1 / MB, 1),
        "q2_mb": round(at(0.5) / MB, 1),
        "q3_mb": round(at(0.75) / MB, 1),
        "peak_mb": round(max(rss for _, rss in samples) / MB, 1),
        "end_mb": round(end / MB, 1),
        "growth_mb": round((end - q1) / MB, 1),
    }


async def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    return await SoakRun(cfg).run()
