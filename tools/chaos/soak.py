"""The bad-input soak: malformed records of every kind interleaved with valid events, on the input topics
AND on every internal topic (deliveries, each retry tier, config, commands, attempts; see bad_records.py).

Expected: every valid event delivered; every malformed record set aside by its consumer and the consumer
going on: on `webhooks.invalid` (matched by source topic, partition and offset) for the input topics,
deliveries, retry tiers and commands; counted in `<service>_config_skipped_records_total{reason}` by every
router's and deliverer's config view for the config topic; nothing (and no harm) for attempts, which no
service consumes on main. No service restart, no process exit nobody caused, RSS flat. Used by
`make soak` (tools/chaos) and tests/integration/test_bad_input_soak.py (reduced, on the shared servers).
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

from aiokafka import ConsumerRecord

from tools.chaos.bad_records import (
    CONFIG_REASON,
    INPUT_KINDS,
    INTERNAL_WEIGHTS,
    SET_ASIDE,
    Maker,
    internal_kinds,
)
from tools.chaos.stack import PrivateInfra, Stack, start_with_webhooks
from tools.chaos.traffic import (
    Hook,
    Lag,
    Producer,
    Receivers,
    RegistryClient,
    Sent,
    event_value,
    new_id,
    steady,
)
from webhooks_common.kafka import ensure_topics
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import RETRY_TIERS, Topics, topic_specs
from webhooks_common.wire import disable_command, encode
from webhooks_devtools.topic_tap import TopicTap

MB = 1024 * 1024
DISABLE_ENTITY = "soak-entity-to-disable"
INTERNAL_FAMILIES = list(INTERNAL_WEIGHTS)


@dataclass
class SoakConfig:
    bad: int = 100_000  # malformed records on the input topics
    internal: int = 30_000  # malformed records on the internal topics (INTERNAL_WEIGHTS)
    valid: int = 10_000
    rate: float = 1500.0  # records per second (malformed + valid)
    webhooks: int = 20
    registries: int = 1
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
        self.by_source: Counter[str] = Counter()
        self.records = 0

    def _count(self, records: list[ConsumerRecord]) -> None:
        for r in records:
            self.records += 1
            inv = InvalidEvent.from_bytes(r.value)
            key = inv.key()
            if key not in self.keys:
                self.keys.add(key)
                self.reasons[inv.reason] += 1
                self.by_source[inv.source_topic] += 1


@dataclass
class BadRecord:
    topic: str  # without the run's prefix
    family: str  # key of bad_records.SET_ASIDE
    kind: str
    sent: Sent  # its meta (topic, partition, offset) once Kafka has it

    def key(self) -> str | None:
        """The key of its set-aside record on webhooks.invalid (InvalidEvent.key())."""
        return f"{self.sent.meta[0]}:{self.sent.meta[1]}:{self.sent.meta[2]}" if self.sent.meta else None


def schedule(valid: int, bad: int, internal: int) -> list[str]:
    """Which record goes at each position: `v` valid, `i` malformed input, `n` malformed internal, each
    kind spread evenly over the run (pure)."""
    total = valid + bad + internal
    valid_at = {round(k * total / valid) for k in range(valid)} if valid else set()
    plan: list[str] = []
    j = 0  # malformed records so far
    for i in range(total):
        if i in valid_at:
            plan.append("v")
            continue
        internal_now = (j + 1) * internal // (bad + internal) > j * internal // (bad + internal)
        plan.append("n" if internal_now else "i")
        j += 1
    return plan


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
        self.bad: list[BadRecord] = []
        self.entities = [f"soak-entity-{i:03d}" for i in range(cfg.webhooks)]
        self.hook_ids: list[str] = []
        # One more webhook, sent no event: a valid `disable` command for it goes to webhooks.commands after
        # every malformed one, and the registry must apply it (its commands consumer kept going).
        self.to_disable: Hook | None = None
        self.jwt_secret = secrets.token_urlsafe(32)
        self.rss: dict[str, list[tuple[int, int]]] = {}  # process -> [(records sent so far, rss bytes)]
        self.plan = schedule(cfg.valid, cfg.bad, cfg.internal)
        self.mongo: str | None = None
        self._input = _weighted({k: w for k, (w, _) in INPUT_KINDS.items()})
        self._families = _weighted(INTERNAL_WEIGHTS)
        self._kinds: dict[str, tuple[dict[str, tuple[float, Maker]], list[str], list[float]]] = {}
        for family in INTERNAL_WEIGHTS:
            kinds = internal_kinds(family)
            self._kinds[family] = (kinds, *_weighted({k: w for k, (w, _) in kinds.items()}))
        self._made: Counter[tuple[str, str]] = Counter()  # (family, kind) -> records made so far

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
            jwt_secret=self.jwt_secret,
            entities=[*self.entities, DISABLE_ENTITY],
            rx=self.rx,
            extra_env={"DELIVERER_RETRY_SCHEDULE": "0,1,2,5,10", "LOG_LEVEL": "WARNING"},
        )
        self.stack = stack
        *kept, self.to_disable = hooks
        self.hook_ids = [h.id for h in kept]
        self.say(f"soak: stack ready on {kafka}, {len(hooks)} webhooks")
        return kafka, mongo

    def _emit(self, i: int) -> None:
        assert self.producer is not None
        what = self.plan[i]
        n = self.rnd.randrange(len(self.entities))
        entity = self.entities[n]
        if what == "v":
            eid = new_id()
            rec = Sent(eid, f"{eid}:{self.hook_ids[n]}", time.time())
            self.producer.sent.append(rec)
            self.producer.send(self.topics.wink_events, entity.encode(), event_value(eid, entity, i), rec)
            return
        if what == "i":
            topic = self.topics.inputs[i % 2]
            family, kind = "inputs", self.rnd.choices(*self._input)[0]
            key, value = INPUT_KINDS[kind][1](self.rnd, entity)
        else:
            family = self.rnd.choices(*self._families)[0]
            topic = self._internal_topic(family)
            kinds, names, weights = self._kinds[family]
            kind = self.rnd.choices(names, weights)[0]
            key, value = kinds[kind][1](self.rnd, self._made[family, kind])
            self._made[family, kind] += 1
        rec = Sent(new_id(), kind, time.time())
        self.bad.append(BadRecord(topic.removeprefix(self.prefix), family, kind, rec))
        self.producer.send(topic, key, value, rec)

    def _internal_topic(self, family: str) -> str:
        if family == "retry":
            return self.topics.retry(self.rnd.choice(RETRY_TIERS)[0])
        return {
            "deliveries": self.topics.deliveries,
            "commands": self.topics.commands,
            "config": self.topics.config,
            "attempts": self.topics.attempts,
        }[family]

    async def _sample_rss(self, stop: asyncio.Event) -> None:
        assert self.stack is not None
        while not stop.is_set():
            progress = len(self.bad) + (len(self.producer.sent) if self.producer else 0)
            for name, rss in self.stack.rss().items():
                if rss is not None:
                    self.rss.setdefault(name, []).append((progress, rss))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.rss_every_s)

    def expected(self) -> tuple[set[str], set[str], Counter[str]]:
        """(keys that must reach webhooks.invalid, keys that may (attempts: all or none), the config skip
        reasons every config view must count)."""
        must: set[str] = set()
        may: set[str] = set()
        config: Counter[str] = Counter()
        for b in self.bad:
            way = SET_ASIDE[b.family]
            key = b.key()
            if way == "skip_metric":
                config[CONFIG_REASON.get(b.kind, "undecodable")] += 1
            elif key is not None:
                (must if way == "invalid" else may).add(key)
        return must, may, config

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
            await steady(len(self.plan), self.cfg.rate, self._emit)
            self._send_disable()
            await self.producer.flush(300)
            self.say(
                f"soak: {len(self.plan)} records written; waiting for the invalid topic and the deliveries"
            )
            lag = Lag(self.producer.sent, self.rx)
            must, may, config = self.expected()
            deadline = time.monotonic() + self.cfg.drain_within_s
            skips: dict[str, dict[str, int]] = {}
            while time.monotonic() < deadline:
                skips = await self.stack.config_skips()
                if (
                    lag.oldest_pending() is None
                    and await self.disabled() is True
                    and must <= collector.keys
                    and all(got == dict(config) for got in skips.values())
                    and (not may & collector.keys or may <= collector.keys)
                ):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2 * self.cfg.rss_every_s)
            stop.set()
            await sampler
            skips = await self.stack.config_skips()
            return self.report(t0, collector, skips, await self.disabled())
        finally:
            if collector is not None:
                await collector.stop()
            await self.teardown()

    def _send_disable(self) -> None:
        assert self.producer is not None and self.to_disable is not None
        hook = self.to_disable
        reason = "soak: the commands consumer must still apply a valid command"
        cmd = disable_command(hook.id, hook.entity, reason, "soak")
        self.producer.send(self.topics.commands, hook.id.encode(), encode(cmd))

    async def disabled(self) -> bool | None:
        """Whether the registry says the extra webhook is disabled (None: it did not answer)."""
        assert self.stack is not None and self.to_disable is not None
        hook = self.to_disable
        async with RegistryClient(self.stack.api, self.jwt_secret, [hook.entity]) as api:
            status, _, body = await api.call("GET", f"/api/managing-entity/{hook.entity}/webhook/{hook.id}")
        return (body.get("enabled") is False) if status == 200 and isinstance(body, dict) else None

    def report(
        self,
        t0: float,
        collector: InvalidCollector,
        skips: dict[str, dict[str, int]],
        disabled: bool | None,
    ) -> dict[str, Any]:
        assert self.stack is not None and self.producer is not None
        valid = self.producer.sent
        delivered = sum(1 for s in valid if s.task_id in self.rx.delivered)
        restarts = {s.name: s.starts - 1 for s in self.stack.services if s.starts > 1}
        must, may, config = self.expected()
        seen = collector.keys
        inputs = [b for b in self.bad if b.family == "inputs"]
        input_keys = {k for b in inputs if (k := b.key())}
        by_topic: dict[str, dict[str, Any]] = {}
        for b in self.bad:
            row = by_topic.setdefault(
                b.topic, {"family": b.family, "set_aside_by": SET_ASIDE[b.family], "sent": 0, "on_invalid": 0}
            )
            row["sent"] += 1
            row["on_invalid"] += (b.key() or "") in seen
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
            # the input topics, as before
            "bad_sent": len(inputs),
            "bad_by_kind": dict(Counter(b.kind for b in inputs)),
            "bad_seen": len(input_keys & seen),
            "bad_missing": len(input_keys - seen),
            # every topic
            "internal_sent": len(self.bad) - len(inputs),
            "internal_by_kind": {
                f: dict(Counter(b.kind for b in self.bad if b.family == f)) for f in INTERNAL_WEIGHTS
            },
            "by_topic": dict(sorted(by_topic.items())),
            "must_set_aside": len(must),
            "set_aside_missing": len(must - seen),
            "optional_set_aside": {"sent": len(may), "on_invalid": len(may & seen)},
            "unexpected_invalid": len(seen - must - may),
            "invalid_records": collector.records,
            "invalid_by_reason": dict(collector.reasons),
            "invalid_by_source": {
                t.removeprefix(self.prefix): n for t, n in sorted(collector.by_source.items())
            },
            # a valid command sent after the malformed ones, applied: the commands consumer kept going
            "valid_command_applied": disabled,
            "config_bad_expected": dict(config),
            "config_skipped": skips,
            "restarts": restarts,
            "unplanned_exits": {
                name: [str(e) for e in exits] for name, exits in self.stack.unplanned_exits().items()
            },
            "rss": {name: _rss_summary(samples, len(self.plan)) for name, samples in self.rss.items()},
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


def _weighted(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    return list(weights), list(weights.values())


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
