"""One view of the compacted config topic (`webhooks.config`), shared by the router and the deliverer.

Each process reads the whole topic from the beginning with its own group-less consumer (no offsets are
committed: the topic *is* the state), then follows it. What a process keeps per webhook is its own
business (the router a subscription index, the deliverer URLs and decrypted secrets): the view hands every
accepted change to a `ConfigSink`.

The version rule (`decide`, pure):
- A config record is accepted only if its `version` is greater than the version held for that webhook.
  Older-or-equal never replaces what is held: the registry raises `version` with every change, so an equal
  version is the same change published again (outbox retry, resync) and an older one is a replay.
- A tombstone (null value) deletes, whatever is held, because it has no version to compare and Kafka keeps
  one key's records in write order. The view remembers the deletion with the last version it held (0 if it
  held none), so a stale record replayed after the delete cannot bring the webhook back; a record with a
  greater version can (the rule stays one comparison). A second tombstone is ignored.
Deleted webhooks stay remembered (id and version) for the life of the process.

Records that cannot be used are skipped with a log line and `<prefix>_config_skipped_records_total{reason}`,
never a crash: no key, a key that is not UTF-8, a value that is not a `WebhookConfig`, a value whose `id` is
not its key, or a config the sink refused (raised).

Readiness: `ready` is true once the view has read every partition up to the end offsets taken when it
(re)connected, and false again as soon as its feed fails (consumer error, topic gone, partitions changed,
Kafka not answering an end-offset probe within `request_timeout_s`); `reason` says why. After a failure the
view reconnects with backoff, reads the topic from the beginning again (the version rule makes that safe,
and a topic deleted and made again is read whole; resuming at the old offsets would skip its records), and
is ready again once caught up. What it held stays in force meanwhile: the last known state is the best
there is (a webhook missing from a re-made topic stays held until a tombstone says otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from webhooks_common.aio import cancelled_by_us
from webhooks_common.kafka import started
from webhooks_common.metrics import LATENCY_BUCKETS
from webhooks_common.models import WebhookConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConfigSink(Protocol):
    """Where accepted changes go: called only for records that pass the version rule."""

    def put(self, config: WebhookConfig) -> None: ...
    def remove(self, webhook_id: str) -> None: ...


# --- the version rule (pure) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """What the view holds for one webhook: the version of its last accepted record, and whether deleted."""

    version: int
    deleted: bool = False


def decide(held: Held | None, version: int | None) -> Held | None:
    """The record's effect under the version rule (module docstring): what to hold after it, None to ignore.

    `version` is the record's config version, None for a tombstone.
    """
    if version is None:
        if held is not None and held.deleted:
            return None
        return Held(0 if held is None else held.version, deleted=True)
    if held is not None and version <= held.version:
        return None
    return Held(version)


# --- decoding one record (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str  # metric label: no_key | bad_key | undecodable | key_mismatch | refused
    detail: str


def decode(key: bytes | None, value: bytes | None) -> tuple[str, WebhookConfig | None] | Skip:
    """(webhook id, config or None for a tombstone), or why the record cannot be used."""
    if key is None:
        return Skip("no_key", "record without key")
    try:
        webhook_id = key.decode("utf-8")
    except UnicodeDecodeError:
        return Skip("bad_key", f"key is not UTF-8: {key[:60]!r}")
    if value is None:
        return webhook_id, None
    try:
        cfg = WebhookConfig.from_bytes(value)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return Skip("undecodable", f"not a WebhookConfig: {str(exc)[:300]}")
    if cfg.id != webhook_id:
        return Skip("key_mismatch", f"value id {cfg.id[:60]!r} is not the key")
    return webhook_id, cfg


@dataclass(frozen=True, slots=True)
class Applied:
    webhook_id: str
    config: WebhookConfig | None  # None: removed


class ConfigApplier:
    """Decode, the version rule, the sink: one record at a time (no I/O of its own)."""

    def __init__(self, sink: ConfigSink) -> None:
        self.sink = sink
        self._held: dict[str, Held] = {}

    def held(self, webhook_id: str) -> Held | None:
        return self._held.get(webhook_id)

    def apply(self, key: bytes | None, value: bytes | None) -> Applied | Skip | None:
        """Applied, skipped (unusable record), or None: older-or-equal, nothing changed."""
        decoded = decode(key, value)
        if isinstance(decoded, Skip):
            return decoded
        webhook_id, cfg = decoded
        after = decide(self._held.get(webhook_id), None if cfg is None else cfg.version)
        if after is None:
            return None
        try:
            if cfg is None:
                self.sink.remove(webhook_id)
            else:
                self.sink.put(cfg)
        except Exception as exc:  # one config the sink cannot take must not stop the others
            return Skip("refused", f"{type(exc).__name__}: {exc}"[:300])
        self._held[webhook_id] = after
        return Applied(webhook_id, cfg)


# --- metrics -----------------------------------------------------------------------------------------


class ConfigViewMetrics:
    """The view's metrics, named `<prefix>_config_*`, in the service's registry."""

    def __init__(self, prefix: str, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.ready = Gauge(
            f"{prefix}_config_ready",
            "1 while this process has read the config topic up to its end (0 while catching up or while its "
            "feed is down).",
            registry=r,
        )
        self.lag = Gauge(
            f"{prefix}_config_lag_records",
            "Config records written but not yet applied by this process.",
            registry=r,
        )
        self.apply = Histogram(
            f"{prefix}_config_apply_seconds",
            "From a config change (changed_at_ms, else the record timestamp) to this process applying it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            f"{prefix}_config_skipped_records_total",
            "Config records skipped because they cannot be used, by reason.",
            ["reason"],
            registry=r,
        )
        self.failures = Counter(
            f"{prefix}_config_feed_failures_total",
            "Times the config feed failed (and reconnected).",
            registry=r,
        )


class FeedDown(Exception):
    """The feed cannot go on; the message is the readiness reason."""


# --- the view ------------------------------------------------------------------------------------------


class ConfigTopicView:
    """Follows the config topic into a sink; `ready` / `reason` (or `status()`) say whether it is current.

    Either `await view.start(within_s=...)` (runs in its own task; `await view.stop()`), or run
    `await view.run()` in a task of your own (it runs until cancelled).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        sink: ConfigSink,
        *,
        metrics: ConfigViewMetrics | None = None,
        request_timeout_s: float = 10.0,
        probe_interval_s: float = 5.0,
        retry_max_s: float = 10.0,
        # The broker answers a fetch as soon as a change is there (fetch.min.bytes 1): the wait bounds only
        # how often an idle view asks again, not how late a change arrives. 100 ms made the two views of a
        # router and a deliverer the busiest clients of an idle broker (20 fetches/s).
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self.applier = ConfigApplier(sink)
        self._metrics = metrics
        self._request_timeout_s = request_timeout_s
        self._probe_interval_s = probe_interval_s
        self._retry_max_s = retry_max_s
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._ready = False
        self._ready_event = asyncio.Event()
        self._reason = "not started"
        self._failure: str | None = None  # the last failure, until caught up again
        self._failures = 0  # consecutive failed connections (the backoff)
        self._task: asyncio.Task[None] | None = None

    # --- readiness ---

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def reason(self) -> str:
        return self._reason

    def status(self) -> tuple[bool, str]:
        """(ready, why): what a `/readyz` answers."""
        return self._ready, self._reason

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    def _set_ready(self) -> None:
        self._ready = True
        self._failure = None
        self._reason = "caught up with the config topic"
        self._ready_event.set()
        if self._metrics is not None:
            self._metrics.ready.set(1)

    def _set_not_ready(self, state: str) -> None:
        self._ready = False
        self._reason = state if self._failure is None else f"{state} (after: {self._failure})"
        self._ready_event.clear()
        if self._metrics is not None:
            self._metrics.ready.set(0)

    # --- lifecycle ---

    async def start(self, within_s: float | None = None) -> None:
        """Start following in a task; with `within_s`, return once ready (TimeoutError with the reason)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"config-view:{self.topic}")
        if within_s is not None:
            try:
                await asyncio.wait_for(self.wait_ready(), within_s)
            except TimeoutError:
                raise TimeoutError(f"config view not ready within {within_s}s: {self._reason}") from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Until cancelled: connect, catch up, follow; on a failure: not ready, reconnect with backoff."""
        self._failures = 0
        try:
            while True:
                try:
                    await self._connect_and_follow()
                except asyncio.CancelledError as exc:
                    if cancelled_by_us():
                        raise
                    await self._failed(FeedDown(f"the Kafka client was cancelled under us ({exc!r})"))
                except Exception as exc:
                    await self._failed(exc)
        finally:
            self._failure = None
            self._set_not_ready("stopped")

    async def _failed(self, exc: BaseException) -> None:
        """Not ready with the reason, then wait (backoff) before the next connection."""
        self._failures = 0 if self._ready else self._failures
        self._failure = _describe(exc)
        self._set_not_ready("config feed down, reconnecting")
        if self._metrics is not None:
            self._metrics.failures.inc()
        delay = min(self._retry_max_s, 0.5 * 2**self._failures)
        self._failures += 1
        log.error(
            "config feed of %s failed (%s); reconnecting in %.1fs",
            self.topic,
            self._failure,
            delay,
            exc_info=not isinstance(exc, FeedDown | KafkaError),  # the unexpected: with trace
        )
        await asyncio.sleep(delay)

    # --- one connection ---

    async def _connect_and_follow(self) -> None:
        self._set_not_ready("connecting to Kafka")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            request_timeout_ms=int(self._request_timeout_s * 1000),
        )
        async with started(consumer):
            tps = await self._assign(consumer)
            ends = await self._within(consumer.end_offsets(tps), "end offsets")
            await consumer.seek_to_beginning(*tps)
            await self._follow(consumer, tps, ends)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # Checked first: subscribing to a missing topic makes aiokafka log a warning every 100 ms.
        if self.topic not in await self._within(consumer.topics(), "metadata"):
            raise FeedDown(f"config topic {self.topic!r} does not exist")
        # A group-less subscription is assigned every partition of the topic, and drops them when the topic
        # goes away (which `_check_assignment` notices). Only public aiokafka API is used here.
        consumer.subscribe([self.topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._request_timeout_s
        while not consumer.assignment():
            if loop.time() > deadline:
                raise FeedDown(f"no partition of {self.topic!r} assigned within {self._request_timeout_s}s")
            await asyncio.sleep(0.01)
        return sorted(consumer.assignment())

    async def _follow(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> None:
        loop = asyncio.get_running_loop()
        next_probe = loop.time() + self._probe_interval_s
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for record in records:
                    self._on_record(record)
            _check_assignment(consumer, tps, self.topic)
            positions = {tp: await consumer.position(tp) for tp in tps}
            if loop.time() >= next_probe:
                # A consumer whose broker went away just returns nothing: ask for something, with a deadline.
                latest = await self._within(consumer.end_offsets(tps), "end offsets")
                ends = {tp: max(ends[tp], latest[tp]) for tp in tps}
                next_probe = loop.time() + self._probe_interval_s
            behind = sum(max(0, max(ends[tp], consumer.highwater(tp) or 0) - positions[tp]) for tp in tps)
            if self._metrics is not None:
                self._metrics.lag.set(behind)
            if not self._ready:
                if all(positions[tp] >= end for tp, end in ends.items()):
                    self._set_ready()
                    log.info("config view of %s caught up", self.topic)
                else:
                    self._set_not_ready(f"reading the config topic up to its end ({behind} records to go)")

    def _on_record(self, record: ConsumerRecord) -> None:
        got = self.applier.apply(record.key, record.value)
        if isinstance(got, Skip):
            log.error(
                "config record %s:%s@%s skipped (%s): %s",
                record.topic,
                record.partition,
                record.offset,
                got.reason,
                got.detail,
            )
            if self._metrics is not None:
                self._metrics.skipped.labels(got.reason).inc()
        elif got is not None and self._ready and self._metrics is not None:
            cfg = got.config
            changed_at_ms = cfg.changed_at_ms if cfg is not None and cfg.changed_at_ms else record.timestamp
            self._metrics.apply.observe(max(0.0, time.time() - changed_at_ms / 1000))

    async def _within(self, step: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(step, self._request_timeout_s)
        except TimeoutError:
            raise FeedDown(f"Kafka did not answer ({what}) within {self._request_timeout_s}s") from None


def _check_assignment(consumer: AIOKafkaConsumer, tps: list[TopicPartition], topic: str) -> None:
    assigned = consumer.assignment()
    if assigned != set(tps):
        if not assigned:
            raise FeedDown(f"config topic {topic!r} is gone (no partition assigned)")
        raise FeedDown(f"partitions of {topic!r} changed: {len(tps)} -> {len(assigned)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FeedDown):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
