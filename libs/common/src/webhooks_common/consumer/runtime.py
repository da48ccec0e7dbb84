"""One Kafka consumer runtime on aiokafka for every service that consumes with a group.

- Each topic has a decoder (bytes -> typed message). A record that does not decode is set aside on
  `webhooks.invalid` with its reason and original bytes; its offset is committed and the consumer goes on.
- The handler gets an `Inbound` and finishes it later with `done()` (or `fail(exc)`), possibly out of
  order and concurrently; offsets are committed per partition only up to the lowest record not finished
  (OffsetTracker), so a crash re-delivers whatever was not durable (at-least-once).
- A failure (raised by `handle` or passed to `fail`) goes through ONE policy function that maps it to an
  outcome: commit, retry later (same record, after a backoff), or dead-letter (set aside as above).
- A handler may hold a partition whose head is not due yet (`hold_ms`): the partition is paused, seeked
  back to that record and resumed when it is due, so a waiting record never blocks other partitions.
- `ready` says: joined the group (has an assignment, possibly empty) and the loop runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from webhooks_common.aio import wait_event
from webhooks_common.consumer.offsets import OffsetTracker
from webhooks_common.consumer.outcomes import (
    Outcome,
    Policy,
    Undecodable,
    default_outcome,
    reason_of,
)
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.models import InvalidEvent

log = logging.getLogger(__name__)

M = TypeVar("M")

Decoder = Callable[[bytes | None], Any]  # raises on a record that is not its topic's message


@dataclass(frozen=True)
class RuntimeSettings:
    bootstrap: str
    group_id: str
    invalid_topic: str
    max_poll_records: int = 500
    max_pending: int = 1000  # records read and not finished; fetching waits above it
    session_timeout_ms: int = 10_000
    # handlers may run long (an HTTP attempt); the loop polls continuously, so this is generous
    max_poll_interval_ms: int = 300_000
    commit_interval_s: float = 0.2
    retry_first_s: float = 0.2
    retry_max_s: float = 5.0
    revoke_wait_s: float = 3.0  # how long a revoke waits for work in flight, to commit it (fewer duplicates)


@dataclass(slots=True, eq=False)  # eq=False: each one is itself (hashed by identity)
class Inbound(Generic[M]):
    """A record read and decoded, not finished yet. Finish it exactly once: `done()` or `fail(exc)`."""

    _rt: ConsumerRuntime[Any] = field(repr=False)
    tp: TopicPartition
    offset: int
    key: bytes | None
    raw: bytes | None
    timestamp: int
    tracker: OffsetTracker = field(repr=False)
    value: M
    error: BaseException | None = None  # set when the record did not decode (then `value` is None)
    tries: int = field(default=0, init=False)
    _settled: bool = field(default=False, init=False, repr=False)

    @property
    def revoked(self) -> bool:
        """Its partition moved to another consumer, which handles it again: nothing more to do here."""
        return self.tracker.revoked

    def done(self) -> None:
        """Everything this record caused is durable: its offset may be committed."""
        if self._settled:
            return
        self._settled = True
        self._rt._finished(self)

    def fail(self, exc: BaseException) -> None:
        """Handling failed: the runtime's policy decides (commit, retry later, dead-letter)."""
        if self._settled:
            return
        self._rt._failed(self, exc)


class Handler(Protocol[M]):
    async def handle(self, rec: Inbound[M]) -> None:
        """Start handling `rec`; call rec.done() (now or later). Raising is the same as rec.fail(exc)."""
        ...

    def hold_ms(self, topic: str, value: M, timestamp_ms: int, now_ms: int) -> int:
        """> 0: this record (and its partition) is not due for that many ms; 0: take it now."""
        ...

    async def drain(self, within_s: float) -> None:
        """On a revoke: let work in flight finish (bounded) so that its offsets are committed."""
        ...

    def forget_revoked(self) -> None:
        """After a revoke: drop queued work of revoked records (their new owner handles them)."""
        ...


class BaseHandler(Generic[M]):
    """Defaults for the optional parts of Handler."""

    async def handle(self, rec: Inbound[M]) -> None:
        raise NotImplementedError

    def hold_ms(self, topic: str, value: M, timestamp_ms: int, now_ms: int) -> int:
        return 0

    async def drain(self, within_s: float) -> None:
        return None

    def forget_revoked(self) -> None:
        return None


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: ConsumerRuntime[Any]) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._owner._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._owner._on_assigned(list(assigned))


class ConsumerRuntime(Generic[M]):
    def __init__(
        self,
        settings: RuntimeSettings,
        decoders: Mapping[str, Decoder],
        handler: Handler[M],
        *,
        policy: Policy = default_outcome,
        producer: AIOKafkaProducer | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_set_aside: Callable[[Inbound[Any], BaseException], None] | None = None,
    ) -> None:
        self._s = settings
        self._decoders = dict(decoders)
        self._handler = handler
        self._policy = policy
        self._producer = producer
        self._own_producer = producer is None
        self._on_fatal = on_fatal
        self._on_tick = on_tick
        self._on_set_aside = on_set_aside
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1_000, settings.session_timeout_ms // 4),
        )
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._holds: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._retries: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._commit_lock = asyncio.Lock()
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._joined = False
        self.pending = 0  # records read and not finished
        self.invalid = 0  # records set aside on the invalid topic

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and start the loop (a task; see `ready`, `wait_stopped`)."""
        if self._producer is None:
            self._producer = make_producer(self._s.bootstrap)
            await start_client(self._producer)
        self._consumer.subscribe(list(self._decoders), listener=_Listener(self))
        await start_client(self._consumer)
        self._loop_task = asyncio.create_task(self._run(), name=f"consumer-{self._s.group_id}")
        self._loop_task.add_done_callback(self._loop_ended)

    def request_stop(self) -> None:
        self._stopping = True

    @property
    def ready(self) -> bool:
        task = self._loop_task
        return self._joined and not self._stopping and task is not None and not task.done()

    @property
    def failed(self) -> BaseException | None:
        task = self._loop_task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def wait_stopped(self, within_s: float | None = None) -> None:
        """Until the loop ended (after request_stop, or when it failed); cancelled after `within_s`."""
        task = self._loop_task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), within_s)
        except TimeoutError:
            task.cancel()
            await asyncio.wait({task})  # not `await task`: a cancellation of ours must not be swallowed
        except Exception:
            pass  # reported by _loop_ended

    async def stop(self) -> None:
        """Leave the group and close the clients (commit first with `commit()` if wanted)."""
        self.request_stop()
        if self._loop_task is not None and not self._loop_task.done():
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task})
        for timer in (*self._holds.values(), *self._retries):
            timer.cancel()
        self._holds.clear()
        self._retries.clear()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await stop_client(self._consumer)
        if self._own_producer and self._producer is not None:
            await stop_client(self._producer)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        log.error("consumer loop of %s died: %r", self._s.group_id, exc)
        if self._on_fatal is not None:
            self._on_fatal(exc)

    # --- the loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        committer = asyncio.create_task(self._commit_loop(), name="committer")
        try:
            while not self._stopping:
                if not await wait_event(self._capacity, 0.5):
                    continue
                batch = await self._consumer.getmany(timeout_ms=200, max_records=self._s.max_poll_records)
                for tp, recs in batch.items():
                    await self._take(tp, recs)
        finally:
            committer.cancel()
            await asyncio.wait({committer})

    async def _take(self, tp: TopicPartition, recs: list[Any]) -> None:
        decode = self._decoders[tp.topic]
        for rec in recs:
            while not self._capacity.is_set():
                if self._stopping:
                    return
                await wait_event(self._capacity, 0.5)
            tracker = self._trackers.get(tp)
            if tracker is None or tracker.revoked or self._stopping:
                return  # not ours any more, or stopping: the rest is read again by whoever owns it
            error: BaseException | None = None
            value: Any = None
            try:
                value = decode(rec.value)
            except Exception as exc:
                error = exc
            if error is None:
                now_ms = int(time.time() * 1000)
                wait_ms = self._handler.hold_ms(tp.topic, value, rec.timestamp, now_ms)
                if wait_ms > 0:
                    self._hold(tp, rec.offset, wait_ms)
                    return
            tracker.add(rec.offset)
            self._took()
            inbound: Inbound[M] = Inbound(
                self,
                tp,
                rec.offset,
                rec.key,
                rec.value,
                rec.timestamp,
                tracker,
                value,
                error,
            )
            if error is not None:
                inbound.fail(Undecodable(_describe(error)))
            else:
                await self._dispatch(inbound)

    async def _dispatch(self, rec: Inbound[M]) -> None:
        try:
            await self._handler.handle(rec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rec.fail(exc)

    def _hold(self, tp: TopicPartition, offset: int, wait_ms: int) -> None:
        """The head of this partition is not due: stop fetching it and come back when it is."""
        self._consumer.pause(tp)
        self._consumer.seek(tp, offset)
        old = self._holds.pop(tp, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._holds[tp] = loop.call_later(wait_ms / 1000, self._resume, tp)

    def _resume(self, tp: TopicPartition) -> None:
        self._holds.pop(tp, None)
        if tp in self._trackers:
            self._consumer.resume(tp)

    # --- finishing records --------------------------------------------------------------------------

    def _took(self) -> None:
        self.pending += 1
        if self.pending >= self._s.max_pending:
            self._capacity.clear()

    def _release(self, n: int = 1) -> None:
        self.pending -= n
        if self.pending < self._s.max_pending:
            self._capacity.set()

    def _finished(self, rec: Inbound[Any]) -> None:
        if rec.tracker.revoked:
            return  # already counted out when its partition was revoked
        rec.tracker.done(rec.offset)
        self._release()

    def _failed(self, rec: Inbound[Any], exc: BaseException) -> None:
        if rec.revoked:
            rec.done()
            return
        try:
            outcome = self._policy(exc)
        except Exception:
            log.exception("the error policy failed; setting the record aside")
            outcome = Outcome.DEAD_LETTER
        where = f"{rec.tp.topic}[{rec.tp.partition}]@{rec.offset}"
        if outcome is Outcome.COMMIT:
            log.info("record %s finished after %r", where, exc)
            rec.done()
        elif outcome is Outcome.RETRY:
            rec.tries += 1
            delay = min(self._s.retry_first_s * 2 ** (rec.tries - 1), self._s.retry_max_s)
            log.warning("record %s will be retried in %.1fs: %r", where, delay, exc)
            loop = asyncio.get_running_loop()
            timer: asyncio.TimerHandle | None = None

            def fire() -> None:
                if timer is not None:
                    self._retries.discard(timer)
                self._spawn(self._again(rec))

            timer = loop.call_later(delay, fire)
            self._retries.add(timer)
        else:
            log.warning("record %s set aside on %s: %r", where, self._s.invalid_topic, exc)
            self._spawn(self._set_aside(rec, exc))

    async def _again(self, rec: Inbound[M]) -> None:
        if rec.revoked or self._stopping:
            return  # left uncommitted: whoever owns the partition next reads it again
        if rec.error is not None:
            rec.fail(Undecodable(_describe(rec.error)))
        else:
            await self._dispatch(rec)

    async def _set_aside(self, rec: Inbound[Any], exc: BaseException) -> None:
        """Publish the record with the reason on the invalid topic; finished once Kafka has it."""
        msg = InvalidEvent(
            reason=reason_of(exc),
            detail=_describe(exc),
            source_topic=rec.tp.topic,
            partition=rec.tp.partition,
            offset=rec.offset,
            key_b64=None if rec.key is None else base64.b64encode(rec.key).decode(),
            value_b64=None if rec.raw is None else base64.b64encode(rec.raw).decode(),
            at_ms=int(time.time() * 1000),
        )
        assert self._producer is not None
        try:
            key = msg.key().encode()
            await (await self._producer.send(self._s.invalid_topic, value=msg.to_bytes(), key=key))
        except asyncio.CancelledError:
            raise
        except Exception as send_exc:
            rec.fail(send_exc)  # Kafka errors are retried: the record stays unfinished meanwhile
            return
        self.invalid += 1
        if self._on_set_aside is not None:
            self._on_set_aside(rec, exc)
        rec.done()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- rebalances ---------------------------------------------------------------------------------

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self._trackers[tp] = OffsetTracker()
            self._committed.pop(tp, None)
        self._joined = True
        log.info("%s: assigned %d partitions", self._s.group_id, len(assigned))

    async def _on_revoked(self, gone: set[TopicPartition]) -> None:
        for tp in gone:
            timer = self._holds.pop(tp, None)
            if timer is not None:
                timer.cancel()
        if not self._stopping:
            await self._handler.drain(self._s.revoke_wait_s)
        await self.commit(only=gone)
        for tp in gone:
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True
                self._release(len(tracker))
            self._committed.pop(tp, None)
        self._handler.forget_revoked()

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._trackers)

    # --- commits ------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._s.commit_interval_s)
            try:
                await self.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("commit failed; will retry")
            if self._on_tick is not None:
                self._on_tick()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every partition up to its lowest unfinished record (if that moved)."""
        async with self._commit_lock:
            offsets = {}
            for tp, tracker in self._trackers.items():
                if only is not None and tp not in only:
                    continue
                off = tracker.committable()
                if off is not None and off != self._committed.get(tp):
                    offsets[tp] = off
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("commit of %d partitions failed: %r", len(offsets), exc)
                return
            self._committed.update(offsets)

    async def end_offsets(self, topics: set[str]) -> int | None:
        """The sum of the end offsets of every partition of `topics` (not only ours), from the broker;
        None while their partitions are not known yet."""
        tps = [TopicPartition(t, p) for t in topics for p in self._consumer.partitions_for_topic(t) or ()]
        if not tps:
            return None
        ends = await self._consumer.end_offsets(tps)
        return sum(ends.values())

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics this consumer reads."""
        return tuple(self._decoders)

    def lag(self, topics: set[str]) -> int:
        """Records after our last commit on the assigned partitions of `topics` (0 where unknown)."""
        total = 0
        for tp in self._trackers:
            if tp.topic not in topics:
                continue
            high = self._consumer.highwater(tp)
            done = self._committed.get(tp)
            if high is not None and done is not None:
                total += max(0, high - done)
        return total


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:1000]


async def run_replacing(
    make: Callable[[], ConsumerRuntime[Any]], name: str, *, max_backoff_s: float = 10.0
) -> None:
    """Run consumers made by `make` until cancelled: one whose loop dies (or that cannot start) is
    replaced after a backoff (0.5 s, doubling to `max_backoff_s`), its offsets committed on the way out."""
    backoff = 0.5
    while True:
        runtime = make()
        try:
            await runtime.start()
            backoff = 0.5
            await runtime.wait_stopped()
            raise RuntimeError(f"{name} stopped: {runtime.failed!r}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed; replacing it", name, extra={"error": repr(exc)})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
        finally:
            # Bounded: stopping a consumer that was cancelled while joining its group can hang.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_commit_and_stop(runtime), 10)


async def _commit_and_stop(runtime: ConsumerRuntime[Any]) -> None:
    with contextlib.suppress(Exception):
        await runtime.commit()
    await runtime.stop()


def json_decoder(cls: type[M], what: str) -> Callable[[bytes | None], M]:
    """The edge decoder of a topic whose values are JSON `cls` structs (msgspec); a null value is
    undecodable (`what` names it in the reason), and msgspec's own errors say which field is wrong."""
    import msgspec

    decoder = msgspec.json.Decoder(cls)

    def decode(raw: bytes | None) -> M:
        if raw is None:
            raise Undecodable(f"empty {what}")
        return decoder.decode(raw)

    return decode
