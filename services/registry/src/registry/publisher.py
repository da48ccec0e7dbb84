"""The outbox publisher: sends the store's pending changes to the compacted config topic, then marks them.

Woken on every change (so routing sees it within milliseconds) and on a short poll (recovery after a crash
or a Kafka outage). Sends are acks=all; a change is marked published only after the ack, so nothing accepted
by the API can be lost between MongoDB and Kafka. Several registry processes may each run one, but only the
holder of the outbox lease (`lease.py`) publishes, so revisions of one webhook reach the topic in version
order whichever process wrote them; a change sent twice (after a takeover) is the same record again.

A change whose document cannot be turned into a config (damaged, or written by another writer) is set aside
rather than retried: its revision leaves the pending set with the reason (`state: set_aside`, `error`), a
log line and a metric, and the others keep flowing. Setting the revision back to `state: pending` after a
repair in the store makes the publisher try it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import pymongo.errors
from aiokafka.errors import KafkaError

from registry import documents as d
from registry.errors import UnreadableDocument
from registry.lease import Lease, SoleLease
from registry.store import Store
from webhooks_common.aio import raise_if_cancelled, wait_event
from webhooks_common.kafka import make_producer, start_client, stop_client

log = logging.getLogger(__name__)

BATCH = 500
# Sent and acknowledged before the next chunk starts: under one producer batch (256 KB), so the lease's bound
# on one batch's delivery (`lease.send_budget_s`) holds for each chunk.
CHUNK_BYTES = 128 * 1024


class ConfigSink(Protocol):
    """Where configs go: `send` returns once the record is acknowledged."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, key: bytes, value: bytes | None) -> None: ...


class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, request_timeout_ms: int = 10000) -> None:
        self._bootstrap, self._topic, self._timeout = bootstrap, topic, request_timeout_ms
        self._producer = None

    async def start(self) -> None:
        # Not idempotent: aiokafka retries an idempotent batch for ever, and a lease holder must know that
        # its sends are acknowledged or given up within three request timeouts (`lease.send_budget_s`).
        # Ordering holds without it (one batch in flight per partition); a retried duplicate is the same
        # record on a compacted topic.
        producer = make_producer(self._bootstrap, request_timeout_ms=self._timeout, enable_idempotence=False)
        await start_client(producer)
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await stop_client(producer)

    async def send(self, key: bytes, value: bytes | None) -> None:
        assert self._producer is not None, "start() first"
        fut = await self._producer.send(self._topic, key=key, value=value)
        await fut


def in_version_order(docs: list[d.Doc]) -> list[d.Doc]:
    """The batch in store order, except that each webhook's revisions go out oldest version first: their
    order in the store comes from the clocks of the processes that wrote them, which may disagree."""
    by_hook: dict[str, list[d.Doc]] = {}
    for doc in docs:
        by_hook.setdefault(repr(doc.get("_id")), []).append(doc)
    for revisions in by_hook.values():
        revisions.sort(key=lambda doc: doc["version"] if d.is_int(doc.get("version")) else -1)
    queues = {hook: iter(revisions) for hook, revisions in by_hook.items()}
    return [next(queues[repr(doc.get("_id"))]) for doc in docs]


def in_chunks(records: list[d.ConfigRecord], limit: int) -> list[list[d.ConfigRecord]]:
    """Consecutive runs of records of at most `limit` bytes of key and value (a larger record alone)."""
    chunks: list[list[d.ConfigRecord]] = []
    size = limit
    for r in records:
        n = len(r.key) + len(r.value or b"")
        if size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(r)
        size += n
    return chunks


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying later (broker or store unreachable) rather than crashing the publisher."""
    return isinstance(exc, KafkaError | pymongo.errors.PyMongoError | OSError | TimeoutError)


class Publisher:
    def __init__(
        self,
        store: Store,
        sink_factory: Callable[[], ConfigSink],
        poll_seconds: float = 1.0,
        on_published: Callable[[d.ConfigRecord], None] = lambda _record: None,
        max_backoff: float = 5.0,
        on_set_aside: Callable[[], None] = lambda: None,
        gather_s: float = 0.0,
        lease: Lease | None = None,
    ) -> None:
        self.store, self._sink_factory, self.poll = store, sink_factory, poll_seconds
        self.lease: Lease = lease or SoleLease()
        self._gather_s = gather_s
        self._on_published, self._max_backoff = on_published, max_backoff
        self._on_set_aside = on_set_aside
        # Set aside but not markable in the store (no string id, or a deleted one): skipped in this process.
        self._unmarkable: set[tuple[str, object]] = set()
        self._wake = asyncio.Event()
        self._sink: ConfigSink | None = None
        self.kafka_ok = False
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    async def _ensure_sink(self) -> ConfigSink:
        if self._sink is None:
            sink = self._sink_factory()
            await sink.start()
            self._sink = sink
            self.kafka_ok = True
        return self._sink

    async def _drop_sink(self) -> None:
        sink, self._sink = self._sink, None
        self.kafka_ok = False
        if sink is not None:
            try:
                await sink.stop()
            except Exception:  # already broken; a new one is made on the next round
                log.debug("producer stop failed", exc_info=True)

    async def round(self) -> None:
        """One wake-up: drain while this process holds the lease."""
        if await self.lease.acquire():
            await self.drain()
        else:
            await self._ensure_sink()  # readiness reflects Kafka on every registry

    async def drain(self) -> int:
        """Publish every pending document once; returns how many were published and marked."""
        done = 0
        # Connect first even with nothing to send, so readiness reflects Kafka while idle too.
        sink = await self._ensure_sink()
        while True:
            docs = in_version_order(await self.store.pending(BATCH))
            if not docs:
                return done
            records: list[d.ConfigRecord] = []
            set_aside = 0
            for doc in docs:
                if (repr(doc.get("_id")), doc.get("version")) in self._unmarkable:
                    continue
                try:
                    records.append(d.config_record(doc))
                except UnreadableDocument as exc:
                    set_aside += await self._set_aside(doc, exc)
            sent: list[d.ConfigRecord] = []
            for chunk in in_chunks(records, CHUNK_BYTES):
                # Asked before every chunk: renewed when due (a long backlog drains on), and no chunk starts
                # unless the lease outlives its sends; if it is lost, its next holder sends the rest.
                if not await self.lease.acquire():
                    break
                # In order, one partition: the acks come back in the order sent.
                await asyncio.gather(*(sink.send(r.key, r.value) for r in chunk))
                sent.extend(chunk)
            # One request marks the configs; a tombstone also removes its document, so it goes alone.
            published = await self.store.mark_all_published(
                [(r.webhook_id, r.version) for r in sent if not r.deleted]
            )
            for r in sent:
                if r.deleted and await self.store.remove_deleted(r.webhook_id, r.version):
                    published += 1
                self._on_published(r)
            if len(sent) < len(records):
                return done + published
            done += published
            if len(docs) < BATCH or published + set_aside == 0:
                # Everything pending when we looked is on Kafka; a change written since has woken us
                # (or, if it changed under us, the next wake-up or poll picks it up).
                return done

    async def _set_aside(self, doc: d.Doc, exc: UnreadableDocument) -> int:
        """Take a document that cannot be published out of the pending set; 1 if the store marked it."""
        webhook_id, version = doc.get("_id"), doc.get("version")
        log.error(
            "webhook document cannot be published; set aside until its next change",
            extra={"webhook_id": exc.webhook_id, "version": version, "error": exc.reason},
        )
        self._on_set_aside()
        marked = False
        if isinstance(webhook_id, str) and d.is_int(version):
            marked = await self.store.set_aside(webhook_id, int(version), exc.reason[:1000])
        if not marked:
            self._unmarkable.add((repr(webhook_id), version))
            return 0
        return 1

    async def run(self) -> None:
        backoff = 0.2
        while True:
            raise_if_cancelled()
            self._wake.clear()
            try:
                await self.round()
                backoff = 0.2
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("outbox publisher failed; retrying")
                else:
                    log.warning("outbox publisher cannot publish yet", extra={"error": repr(exc)})
                self.last_error = repr(exc)
                if isinstance(exc, KafkaError | OSError | TimeoutError):
                    await self._drop_sink()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if await wait_event(self._wake, self.poll) and self._gather_s:
                await asyncio.sleep(self._gather_s)  # let the changes of the next moments join this drain

    async def close(self) -> None:
        try:
            await self.lease.release()
        except Exception as exc:  # the store is down: the others take over when the lease ends
            log.warning("outbox lease not handed back", extra={"error": repr(exc)})
        await self._drop_sink()
