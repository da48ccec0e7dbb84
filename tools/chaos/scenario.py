"""The chaos run: the real stack under steady load while processes, the broker, the database and some
integrators fail in turn; then the count: expected, delivered, lost, duplicates, recovery per fault.

Used by `make chaos` (tools/chaos, full size) and tests/integration/test_chaos.py (reduced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.chaos.stack import PrivateInfra, Service, Stack, start_with_webhooks
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
from webhooks_cli.kafka_io import read_to_end
from webhooks_common.kafka import ensure_topics
from webhooks_common.topics import Topics, topic_specs

log = logging.getLogger("chaos")

FULL_PLAN = (
    "deliverer",
    "router",
    "deliverer",
    "kafka",
    "deliverer",
    "ferretdb",
    "registry",
    "router",
    "receivers",
)
REDUCED_PLAN = ("deliverer", "router", "kafka", "ferretdb", "registry", "receivers")
PROBLEM_JSON = "application/problem+json"


@dataclass
class ChaosConfig:
    events: int = 20_000
    rate: float = 60.0  # events per second, steady
    webhooks: int = 200
    plan: tuple[str, ...] = FULL_PLAN
    registries: int = 2
    lease_s: float = 15.0  # REGISTRY_PUBLISH_LEASE_S: how long a killed publisher holds up the others
    routers: int = 2
    deliverers: int = 2
    input_partitions: int = 6
    delivery_partitions: int = 12
    ferretdb_down_s: float = 30.0
    kafka_down_s: float = 0.0  # how long the broker stays dead before it is started again
    receivers_fail_s: float = 30.0
    receivers_fail_fraction: float = 0.10
    receiver_delay_ms: tuple[int, int] = (5, 150)  # each answer takes this long (uniform)
    baseline_s: float = 10.0
    gap_s: float = 5.0  # quiet time between the recovery from one fault and the next fault
    lag_ok_s: float = 3.0  # "recovered": no event older than this is still undelivered
    recover_within_s: float = 150.0
    drain_within_s: float = 240.0
    # A short retry schedule, so that attempts refused during the integrator outage are retried within the
    # run (the default waits 5 min before the third attempt). 8 attempts over ~3 min: nothing dead-letters.
    retry_schedule: str = "0,2,5,10,20,30,60,60"
    session_timeout_s: float = 10.0
    workdir: Path | None = None
    keep_infra: bool = False
    progress: Callable[[str], None] = field(default=lambda _m: None, repr=False)


@dataclass
class FaultResult:
    name: str
    started_at: float
    healed_at: float
    recovered_at: float | None
    recovery_s: float | None  # from the fault until delivery is back to normal
    after_heal_s: float | None  # from the heal (process restarted, server back, integrators answer again)
    outage_s: float  # from the fault to the heal
    max_lag_s: float
    delivered_during: int
    unplanned_exits: list[str]
    detail: dict[str, Any] = field(default_factory=dict)
    under_load: bool = True

    @property
    def needed_a_hand(self) -> bool:
        return bool(self.unplanned_exits) or self.recovered_at is None


async def _sample_lag(
    lag: Lag, rx: Receivers, until: Callable[[], bool], out: dict[str, float], period: float = 0.25
) -> None:
    """Track the largest lag and deliveries while `until()` is false."""
    start = sum(rx.delivered.values())
    while not until():
        out["max_lag"] = max(out.get("max_lag", 0.0), lag.seconds())
        out["delivered"] = sum(rx.delivered.values()) - start
        await asyncio.sleep(period)


class ChaosRun:
    def __init__(self, cfg: ChaosConfig) -> None:
        self.cfg = cfg
        self.say = cfg.progress
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
        self.prefix = f"chaos{new_id()[:8]}."
        self.topics = Topics(self.prefix)
        self.jwt_secret = secrets.token_urlsafe(32)
        self.entities = [f"chaos-entity-{i:04d}" for i in range(cfg.webhooks)]
        # Webhooks created mid-run (while the broker is down, after the database is back): each gets one
        # event, which is delivered only if the registry's outbox published the webhook by itself.
        self.extra_entities = [
            "chaos-entity-during-broker-outage",
            "chaos-entity-after-db-outage",
            "chaos-entity-after-lease-holder-kill",
        ]
        self.extra: list[Hook] = []
        self.infra: PrivateInfra | None = None
        self.stack: Stack | None = None
        self.rx = Receivers(4, cfg.receiver_delay_ms)
        self.producer: Producer | None = None
        self.hooks: list[Hook] = []
        self.faults: list[FaultResult] = []
        self.load_done = asyncio.Event()
        self.checks: dict[str, Any] = {}
        self.timeline: list[tuple[float, str]] = []
        self._load_task: asyncio.Task[None] | None = None

    def note(self, msg: str) -> None:
        self.timeline.append((time.time(), msg))
        self.say(msg)

    # --- set-up -------------------------------------------------------------------------------------

    async def setup(self) -> None:
        cfg = self.cfg
        t0 = time.monotonic()
        self.infra = await PrivateInfra.start(self.workdir / "infra")
        self.note(f"private Kafka {self.infra.bootstrap}, FerretDB {self.infra.mongo_url}")
        specs = topic_specs(
            self.topics, input_partitions=cfg.input_partitions, delivery_partitions=cfg.delivery_partitions
        )
        await ensure_topics(self.infra.bootstrap, specs)
        await self.rx.start()
        env = {
            "DELIVERER_RETRY_SCHEDULE": cfg.retry_schedule,
            "DELIVERER_SESSION_TIMEOUT_MS": str(int(cfg.session_timeout_s * 1000)),
            "ROUTER_SESSION_TIMEOUT_S": str(cfg.session_timeout_s),
            "REGISTRY_PUBLISH_LEASE_S": str(cfg.lease_s),
        }
        stack, self.hooks, self.producer = await start_with_webhooks(
            self.infra.bootstrap,
            self.infra.mongo_url,
            self.prefix,
            self.workdir,
            cfg,
            jwt_secret=self.jwt_secret,
            entities=self.entities,
            rx=self.rx,
            extra_env=env,
        )
        self.stack = stack
        self.note(f"stack ready: {[s.name for s in stack.services]}, {len(self.hooks)} webhooks created")
        self.checks["setup_s"] = round(time.monotonic() - t0, 1)

    def _api(self) -> RegistryClient:
        assert self.stack is not None
        return RegistryClient(self.stack.api, self.jwt_secret, [*self.entities, *self.extra_entities])

    async def _create_extra(self, api: RegistryClient, entity: str) -> tuple[int, str, Hook | None]:
        n = len(self.hooks) + len(self.extra)  # its receiver path
        status, ctype, body = await api.create(entity, self.rx.url(n))
        if status != 201:
            return status, ctype, None
        hook = Hook(n, entity, body["id"], self.rx.url(n))
        self.extra.append(hook)
        return status, ctype, hook

    async def _one_event_to(self, hook: Hook) -> str:
        """Once every router holds the webhook, send it one event (counted with the others)."""
        assert self.producer is not None and self.stack is not None
        await self.stack.wait_routers_hold(len(self.hooks) + len(self.extra))
        eid = new_id()
        rec = Sent(eid, f"{eid}:{hook.id}", time.time())
        self.producer.sent.append(rec)
        self.producer.send(
            self.topics.wink_events, hook.entity.encode(), event_value(eid, hook.entity, -1), rec
        )
        return rec.task_id

    # --- load ---------------------------------------------------------------------------------------
    def _emit(self, i: int) -> None:
        assert self.producer is not None
        hook = self.hooks[i % len(self.hooks)]
        eid = new_id()
        rec = Sent(eid, f"{eid}:{hook.id}", time.time())
        self.producer.sent.append(rec)
        self.producer.send(
            self.topics.wink_events, hook.entity.encode(), event_value(eid, hook.entity, i), rec
        )

    async def _load(self) -> None:
        await steady(self.cfg.events, self.cfg.rate, self._emit)
        self.load_done.set()
        self.note(f"load finished: {self.cfg.events} events scheduled")

    # --- faults -------------------------------------------------------------------------------------

    async def _fault(self, name: str, inject: Callable[[], Awaitable[dict[str, Any]]]) -> FaultResult:
        """Inject (returns once healed), then wait until delivery is back within `lag_ok_s` and every
        service is ready again."""
        assert self.stack is not None and self.producer is not None
        lag = Lag(self.producer.sent, self.rx)
        before = {s.name: len(s.unplanned) for s in self.stack.services}
        under_load = not self.load_done.is_set()
        stats: dict[str, float] = {}
        finished = False
        sampler = asyncio.create_task(_sample_lag(lag, self.rx, lambda: finished, stats))
        started = time.time()
        self.note(f"fault: {name}")
        detail = await inject()
        # A fault may heal before its injector returns (checks made after the database is back).
        healed = float(detail.pop("healed_at", time.time()))
        recovered: float | None = None
        deadline = time.monotonic() + self.cfg.recover_within_s
        while time.monotonic() < deadline:
            if lag.seconds() <= self.cfg.lag_ok_s and await self.stack.all_ready():
                recovered = time.time()
                break
            await asyncio.sleep(0.25)
        finished = True
        await sampler
        unplanned = [
            f"{s.name} exited by itself with code {e.code} (restarted by the supervisor)"
            for s in self.stack.services
            for e in s.unplanned[before[s.name] :]
        ]
        if recovered is None:
            not_ready = [s.name for s in self.stack.services if not await s.is_ready()]
            detail["not_recovered"] = {"lag_s": round(lag.seconds(), 1), "not_ready": not_ready}
        res = FaultResult(
            name=name,
            started_at=started,
            healed_at=healed,
            recovered_at=recovered,
            recovery_s=None if recovered is None else round(recovered - started, 2),
            after_heal_s=None if recovered is None else round(recovered - healed, 2),
            outage_s=round(healed - started, 2),
            max_lag_s=round(stats.get("max_lag", 0.0), 2),
            delivered_during=int(stats.get("delivered", 0)),
            unplanned_exits=unplanned,
            detail=detail,
            under_load=under_load,
        )
        self.note(
            f"  recovered {res.recovery_s}s after the fault, {res.after_heal_s}s after the heal "
            f"(outage {res.outage_s}s, max lag {res.max_lag_s}s)"
            if recovered
            else f"  NOT recovered within {self.cfg.recover_within_s}s: {detail.get('not_recovered')}"
        )
        return res

    async def _kill_service(self, svc: Service) -> dict[str, Any]:
        assert self.stack is not None
        starts = svc.starts
        svc.kill()
        t0 = time.monotonic()
        while True:  # the supervisor restarts it (after 1 s)
            if svc.starts > starts:
                break
            await asyncio.sleep(0.05)
        ok = await svc.wait_ready(60)
        return {"process": svc.name, "restart_ready_s": round(time.monotonic() - t0, 2), "ready": ok}

    async def _restart_kafka(self) -> dict[str, Any]:
        assert self.infra is not None
        t0 = time.monotonic()
        await self.infra.kill("kafka")
        async with self._api() as api:
            # MongoDB is up: the API accepts the change and its outbox must publish it once Kafka is back.
            status, _, hook = await self._create_extra(api, self.extra_entities[0])
        await asyncio.sleep(max(0.0, self.cfg.kafka_down_s - (time.monotonic() - t0)))
        back = await self.infra.up()
        detail: dict[str, Any] = {
            "signal": "SIGKILL",
            "broker_down_s": round(time.monotonic() - t0, 2),
            "restart_s": round(back, 2),
            "create_during_broker_outage": status,
            "healed_at": time.time(),
        }
        if hook is not None:
            await self._one_event_to(hook)
        return detail

    async def _stop_ferretdb(self) -> dict[str, Any]:
        assert self.infra is not None and self.stack is not None and self.producer is not None
        cfg = self.cfg
        t0 = time.monotonic()
        await self.infra.kill("ferretdb", sig=15)
        delivered0 = sum(self.rx.delivered.values())
        detail: dict[str, Any] = {}
        async with self._api() as api:
            await asyncio.sleep(min(3.0, cfg.ferretdb_down_s / 3))
            entity = self.hooks[0].entity
            status, ctype, _ = await api.call("GET", f"/api/managing-entity/{entity}/webhook/list")
            detail["list_during_outage"] = {"status": status, "content_type": ctype}
            status, ctype, _ = await self._create_extra(api, self.extra_entities[1])
            detail["create_during_outage"] = {"status": status, "content_type": ctype}
            status, ctype, _ = await api.call("GET", "/readyz")
            detail["readyz_during_outage"] = status
            remaining = cfg.ferretdb_down_s - (time.monotonic() - t0)
            if remaining > 0:
                await asyncio.sleep(remaining)
            detail["delivered_during_outage"] = sum(self.rx.delivered.values()) - delivered0
            detail["down_s"] = round(time.monotonic() - t0, 2)
            await self.infra.up()
            detail["healed_at"] = time.time()
            t1 = time.monotonic()
            ok = all(await asyncio.gather(*(r.wait_ready(60) for r in self.stack.registries)))
            detail["registry_ready_after_s"] = round(time.monotonic() - t1, 2) if ok else None
            # The outbox path after the outage: a webhook created now must get its events.
            status, _, hook = await self._create_extra(api, self.extra_entities[1])
            detail["create_after_outage"] = status
            if hook is not None:
                await self._one_event_to(hook)
        return detail

    async def _kill_lease_holder(self) -> dict[str, Any]:
        """SIGKILL the registry that publishes (holds the outbox lease), then change a webhook through
        another: the change must reach the routers once the lease has ended, without a hand."""
        assert self.stack is not None
        # One holder, however the faults before left it (a database outage lets the lease lapse).
        for _ in range(int(self.cfg.lease_s + 5) * 2):
            holders = await self.stack.lease_holders()
            if len(holders) == 1:
                break
            await asyncio.sleep(0.5)
        else:
            return {"lease_holders_before": [r.name for r in holders]}  # the verdict fails on it
        victim = holders[0]
        others = [r for r in self.stack.registries if r is not victim]
        detail: dict[str, Any] = {"killed": victim.name}
        starts = victim.starts
        victim.kill()
        t0 = time.monotonic()
        # With one registry the change waits for its restart; with more, another one takes it.
        via = others[0] if others else victim
        if via is victim:
            await victim.restarted(starts, 60)
        api = RegistryClient(self.stack.api_of(via), self.jwt_secret, self.extra_entities)
        async with api:
            status, _, hook = await self._create_extra(api, self.extra_entities[2])
        detail["create_via"] = via.name
        detail["create_status"] = status
        if hook is not None:
            try:
                await self._one_event_to(hook)  # waits until every router holds it (published)
                detail["published_after_s"] = round(time.monotonic() - t0, 2)
            except AssertionError as e:  # never published: a verdict, not the end of the run
                detail["not_published"] = str(e)
        detail["restarted_ready"] = await victim.restarted(starts, 60)
        detail["lease_holders_after"] = [r.name for r in await self.stack.lease_holders()]
        return detail

    async def _sabotage(self) -> dict[str, Any]:
        """Self-test of the harness, never in a real plan: really lose tasks (SIGKILL every deliverer, then
        delete what waits on the deliveries topic) and check that the count says so."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import RecordsToDelete

        from webhooks_common.kafka import admin_client, started

        assert self.stack is not None and self.infra is not None
        for svc in self.stack.deliverers:
            svc.kill()
        await asyncio.sleep(3)
        consumer = AIOKafkaConsumer(
            self.topics.deliveries, bootstrap_servers=self.infra.bootstrap, group_id=None
        )
        async with started(consumer):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
            ends = await consumer.end_offsets(list(consumer.assignment()))
        async with admin_client(self.infra.bootstrap) as admin:
            await admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items()})
        await self.stack.wait_ready(60, self.stack.deliverers)
        return {"deleted_up_to": sum(ends.values())}

    async def _fail_receivers(self, kill: Service | None = None) -> dict[str, Any]:
        """Some integrators answer 500 for a while; with `kill`, that process is SIGKILLed half-way (while
        refused tasks wait on the retry topics)."""
        n = max(1, round(len(self.hooks) * self.cfg.receivers_fail_fraction))
        paths = {f"/h/{h.n}" for h in self.hooks[:: max(1, len(self.hooks) // n)][:n]}
        refused0 = self.rx.refused
        self.rx.failing = paths
        detail: dict[str, Any] = {"failing_receivers": len(paths)}
        if kill is not None:
            await asyncio.sleep(self.cfg.receivers_fail_s / 2)
            kill.kill()
            detail["killed"] = kill.name
            await asyncio.sleep(self.cfg.receivers_fail_s / 2)
        else:
            await asyncio.sleep(self.cfg.receivers_fail_s)
        self.rx.failing = set()
        detail["answered_500"] = self.rx.refused - refused0
        return detail

    async def _faults(self) -> None:
        assert self.stack is not None
        await asyncio.sleep(self.cfg.baseline_s)
        kills = {"deliverer": 0, "router": 0}
        for name in self.cfg.plan:
            inject: Callable[[], Awaitable[dict[str, Any]]]
            if name in kills:
                pool = self.stack.deliverers if name == "deliverer" else self.stack.routers
                svc = pool[kills[name] % len(pool)]
                kills[name] += 1
                label = f"SIGKILL {svc.name} (#{kills[name]})"
                inject = lambda svc=svc: self._kill_service(svc)  # type: ignore[misc]  # noqa: E731
            elif name == "kafka":
                label = "Kafka broker SIGKILL + restart"
                if self.cfg.kafka_down_s:
                    label += f" after {self.cfg.kafka_down_s:.0f}s"
                inject = self._restart_kafka
            elif name == "registry":
                label, inject = "SIGKILL the registry that publishes (lease holder)", self._kill_lease_holder
            elif name == "ferretdb":
                label, inject = f"FerretDB stopped {self.cfg.ferretdb_down_s:.0f}s", self._stop_ferretdb
            elif name == "receivers":
                pct = round(self.cfg.receivers_fail_fraction * 100)
                label = f"{pct}% of receivers answer 500 for {self.cfg.receivers_fail_s:.0f}s"
                inject = self._fail_receivers
            elif name == "sabotage":
                label, inject = "SELF-TEST: delivery tasks deleted from Kafka", self._sabotage
            elif name == "receivers+deliverer":
                svc = self.stack.deliverers[kills["deliverer"] % len(self.stack.deliverers)]
                kills["deliverer"] += 1
                secs = f"{self.cfg.receivers_fail_s:.0f}s"
                label = f"receivers answer 500 for {secs}, {svc.name} SIGKILLed half-way"
                inject = lambda svc=svc: self._fail_receivers(svc)  # type: ignore[misc]  # noqa: E731
            else:
                raise ValueError(f"unknown fault {name!r}")
            self.faults.append(await self._fault(label, inject))
            await asyncio.sleep(self.cfg.gap_s)

    # --- the whole run ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        t0 = time.time()
        try:
            await self.setup()
            self._load_task = asyncio.create_task(self._load())
            await self._faults()
            await self._load_task
            assert self.producer is not None
            await self.producer.flush()
            self.note("draining: waiting for every accepted event to be delivered")
            lag = Lag(self.producer.sent, self.rx)
            deadline = time.monotonic() + self.cfg.drain_within_s
            while time.monotonic() < deadline:
                if lag.oldest_pending() is None:
                    break
                await asyncio.sleep(0.5)
            return await self.report(t0)
        finally:
            await self.teardown()

    async def report(self, t0: float) -> dict[str, Any]:
        assert self.stack is not None and self.producer is not None and self.infra is not None
        sent = self.producer.sent
        accepted = [s for s in sent if s.acked is not None]
        delivered = [s for s in accepted if s.task_id in self.rx.delivered]
        lost = [s for s in accepted if s.task_id not in self.rx.delivered]
        dlq = await asyncio.wait_for(read_to_end(self.infra.bootstrap, self.topics.dlq), 60)
        invalid = await asyncio.wait_for(read_to_end(self.infra.bootstrap, self.topics.invalid), 60)
        where = await self._locate(lost[:50]) if lost else {}
        latencies = sorted(self.rx.first_at[s.task_id] - s.due for s in delivered)
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "duration_s": round(time.time() - t0, 1),
            "config": _config_dict(self.cfg),
            "webhooks": len(self.hooks),
            "webhooks_created_mid_run": len(self.extra),
            "events_scheduled": len(sent),
            "events_expected": len(accepted),
            "delivered_at_least_once": len(delivered),
            "lost": len(lost),
            "lost_sample": [
                {"task_id": s.task_id, "meta": s.meta, **where.get(s.task_id, {})} for s in lost[:20]
            ],
            "duplicates": self.rx.duplicates,
            "deliveries_total": sum(self.rx.delivered.values()),
            "answered_500": self.rx.refused,
            "dead_letters": len(dlq),
            "invalid": len(invalid),
            "producer_resends": self.producer.resends,
            "producer_errors": dict(self.producer.errors),
            "latency_s": _percentiles(latencies),
            "faults": [_fault_dict(f) for f in self.faults],
            "restarts": {s.name: s.starts - 1 for s in self.stack.services},
            "unplanned_exits": {
                name: [{"code": e.code, "at": e.at} for e in exits]
                for name, exits in self.stack.unplanned_exits().items()
            },
            "checks": self.checks,
            "timeline": [(round(t - t0, 1), m) for t, m in self.timeline],
        }

    async def _locate(self, lost: list[Sent]) -> dict[str, dict[str, Any]]:
        """For lost events: did the router write a task for them, did a deliverer attempt it?"""
        assert self.infra is not None
        wanted = {s.task_id for s in lost}
        found: dict[str, dict[str, Any]] = {t: {"task_written": False, "attempts": []} for t in wanted}
        for topic in (self.topics.deliveries, self.topics.attempts):
            for r in await asyncio.wait_for(read_to_end(self.infra.bootstrap, topic), 120):
                if r.value is None:
                    continue
                for tid in wanted:
                    if tid.encode() in r.value:
                        if topic == self.topics.deliveries:
                            found[tid]["task_written"] = True
                        else:
                            found[tid]["attempts"].append(r.value[:300].decode(errors="replace"))
        return found

    async def teardown(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
        with contextlib.suppress(Exception):
            if self.producer is not None:
                await asyncio.wait_for(self.producer.stop(), 30)
        if self.stack is not None:
            await self.stack.stop()
        await self.rx.stop()
        if self.infra is not None and not self.cfg.keep_infra:
            await self.infra.down()


def _config_dict(cfg: ChaosConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items() if k != "progress"}


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 3)  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(values[-1], 3)}


def _fault_dict(f: FaultResult) -> dict[str, Any]:
    d = asdict(f)
    d["needed_a_hand"] = f.needed_a_hand
    return d


async def run_chaos(cfg: ChaosConfig) -> dict[str, Any]:
    return await ChaosRun(cfg).run()
