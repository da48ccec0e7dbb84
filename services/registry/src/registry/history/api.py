"""HTTP handlers of the delivery history: list, detail, resend, test event, stats.

Same bearer auth (scopes per route), problem+json errors and entity scoping as the rest of the API: the
webhook is loaded from the registry's own store for the path's managing entity, so another entity's
webhook is a 404. Resend and test write an ordinary delivery task on `webhooks.deliveries` (the deliverer
sends it like any other: signed, retried, recorded), keyed by URL as the router does.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from registry.auth import Principal
from registry.errors import FieldError
from registry.handlers import guard, read_json
from registry.history import model
from registry.history.jobs import new_job
from registry.history.paging import WAVE_MAX, page_over_hours
from registry.history.schemas import (
    Accepted,
    AttemptView,
    DeliveryDetail,
    DeliveryItem,
    DeliveryPage,
    Failure,
    JobBody,
    JobCounts,
    JobView,
    SampleEventBody,
    WebhookStats,
    Window,
    WindowStats,
)
from registry.history.send import TaskSender, delivery_task
from registry.history.store import HistoryStore
from registry.problems import Problem, validation_problem
from registry.validation import parse_model
from webhooks_common.catalog import catalog, event_list_matches, is_known_type
from webhooks_common.wire import DeliveryTask

if TYPE_CHECKING:
    from registry.app import Runtime
    from registry.routes import Route

log = logging.getLogger(__name__)

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# A page stops after this many empty hours and hands back a cursor, so a sparse filter never turns one
# request into hundreds of queries.
MAX_HOURS_PER_PAGE = 48

Doc = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def query_problem(name: str, reason: str) -> Problem:
    return Problem(400, f"the query parameter `{name}` is invalid", [FieldError(name, reason)])


def _ms(value: str, name: str) -> int:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise query_problem(name, "must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _response(model_obj: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(model_obj.model_dump(mode="json", by_alias=True))
    return web.Response(status=status, body=body, content_type="application/json")


def item_of(doc: Doc) -> DeliveryItem:
    last = doc.get("last") or {}
    return DeliveryItem(
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        status=doc.get("status", model.PENDING),
        attempts=int(doc.get("attempts", 0)),
        last_status_code=last.get("status"),
        last_error=last.get("error"),
        last_attempt_at=_dt(last.get("at_ms")),
        created_at=_dt(doc["created_ms"]) or datetime.now(UTC),
    )


def attempt_of(doc: Doc) -> AttemptView:
    return AttemptView(
        attempt=doc["attempt"],
        at=_dt(doc["at_ms"]) or datetime.now(UTC),
        outcome=doc["outcome"],
        status_code=doc.get("status"),
        error=doc.get("error"),
        duration_ms=float(doc.get("duration_ms", 0.0)),
        response_body=doc.get("response_snippet"),
        next_attempt_at=_dt(doc.get("next_attempt_at_ms")),
        url=doc.get("url", ""),
    )


def window_of(attempts: list[Doc], since_ms: int) -> WindowStats:
    s = model.window_stats(attempts, since_ms)
    last = s.pop("last_failure")
    failure = None
    if last is not None:
        failure = Failure(
            at=_dt(last["at_ms"]) or datetime.now(UTC),
            event_id=last.get("event_id"),
            status_code=last.get("status"),
            error=last.get("error"),
        )
    return WindowStats(**s, last_failure=failure)


def sample_body(event_id: str, event_type: str, entity_id: str, now: datetime) -> str:
    """A catalogue sample in the router's body shape, marked as a test at the top and in `data`."""
    return orjson.dumps(
        {
            "id": event_id,
            "type": event_type,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "entityId": entity_id,
            "data": {"test": True, "message": f"A test {event_type} event sent from the webhook's settings."},
            "test": True,
        }
    ).decode()


def sample_type(event_list: list[str], asked: str | None) -> str:
    if asked is not None:
        if not is_known_type(asked):
            raise validation_problem([FieldError("eventType", "not an event type of the catalogue")])
        return asked
    for entry in catalog():
        if event_list_matches(event_list, entry.key):
            return entry.key
    return catalog()[0].key


class HistoryApi:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        self.store = HistoryStore(s.mongo_url, s.database, s.mongo_timeout_ms)
        self.sender = TaskSender(s.kafka_bootstrap_servers, rt.topics.deliveries)

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        yield
        await self.sender.close()
        await self.store.close()

    def guarded(self, route: Route) -> Handler:
        assert route.scope is not None, "every history route needs a scope"
        return guard(getattr(self, route.handler), route.scope, self.rt.authenticator)

    async def _webhook(self, entity: str, request: web.Request) -> Doc:
        doc = await self.rt.store.get(entity, request.match_info["id"])
        if doc is None:
            raise Problem(404, f"no webhook {request.match_info['id']} for this managing entity")
        return doc

    async def _send(self, task: DeliveryTask) -> None:
        try:
            await self.sender.send(task)
        except Exception:
            log.exception("could not write a delivery task")
            raise Problem(503, "Kafka did not accept the delivery: try again shortly") from None

    # --- handlers -----------------------------------------------------------------------------------

    async def list_deliveries(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        q = request.query
        status = q.get("status")
        if status is not None and status not in model.STATUSES:
            raise query_problem("status", f"one of {', '.join(model.STATUSES)}")
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise query_problem("limit", f"an integer from 1 to {MAX_LIMIT}")
        since = _ms(q["since"], "since") if "since" in q else None
        until = _ms(q["until"], "until") if "until" in q else None
        cursor = None
        if "cursor" in q:
            try:
                cursor = model.Cursor.decode(q["cursor"])
            except ValueError:
                raise query_problem("cursor", "not a cursor of this list") from None
        webhook = await self._webhook(entity, request)
        stored = await self.store.webhook_hours(webhook["_id"])
        hours = model.hours_to_scan(stored, since, until, cursor)

        async def hour_items(batch: list[str], n: int) -> list[Doc]:
            return await self.store.deliveries_in_hours(
                webhook["_id"],
                batch,
                status=status,
                event_type=q.get("eventType"),
                cursor=cursor,
                since_ms=since,
                until_ms=until,
                limit=n,
                layouts=stored,
            )

        # a status page reads only its status's deliveries (`status_bucket`), so a wave may span the page
        wave_max = MAX_HOURS_PER_PAGE if status is not None else WAVE_MAX
        items, next_cursor = await page_over_hours(hours, hour_items, limit, MAX_HOURS_PER_PAGE, wave_max)
        page = DeliveryPage(
            items=[item_of(d) for d in items], next_cursor=next_cursor.encode() if next_cursor else None
        )
        return _response(page)

    async def _delivery(self, entity: str, request: web.Request) -> tuple[Doc, Doc]:
        """The path's webhook and its delivery of the path's event (404 if either is unknown)."""
        webhook = await self._webhook(entity, request)
        doc = await self.store.delivery(webhook["_id"], request.match_info["eventId"])
        if doc is None:
            raise Problem(404, "no delivery of this event to this webhook in the history")
        return webhook, doc

    async def delivery(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        _, doc = await self._delivery(entity, request)
        attempts = await self.store.attempts_of(doc["_id"])
        payload: Any = doc.get("payload")
        if isinstance(payload, str):
            with contextlib.suppress(orjson.JSONDecodeError):  # else shown as the text that was sent
                payload = orjson.loads(payload)
        detail = DeliveryDetail(
            event_id=doc["event_id"],
            event_type=doc["event_type"],
            status=doc.get("status", model.PENDING),
            created_at=_dt(doc["created_ms"]) or datetime.now(UTC),
            payload=payload,
            dead_reason=doc.get("dead_reason"),
            attempts=[attempt_of(a) for a in attempts],
        )
        return _response(detail)

    async def resend(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        webhook, doc = await self._delivery(entity, request)
        if not doc.get("payload"):
            raise Problem(409, "the payload of this delivery was not kept, so it cannot be sent again")
        if not webhook["enabled"]:
            raise Problem(409, "the webhook is disabled: enable it before sending to it")
        now = int(time.time() * 1000)
        await self.store.mark_requested(doc["_id"], doc.get("bucket"), now)
        await self._send(delivery_task(webhook, doc["event_id"], doc["event_type"], doc["payload"], now))
        return _response(Accepted(event_id=doc["event_id"]), 202)

    async def send_test(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        webhook = await self._webhook(entity, request)
        asked: str | None = None
        if request.can_read_body:
            raw = await read_json(request, self.rt.settings.max_body_bytes)
            asked = parse_model(SampleEventBody, raw).event_type
        event_type = sample_type(list(webhook.get("event_list") or []), asked)
        if not webhook["enabled"]:
            raise Problem(409, "the webhook is disabled: enable it before sending to it")
        now = datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        event_id = f"test_{uuid.uuid4().hex}"
        body = sample_body(event_id, event_type, entity, now)
        doc = model.requested_delivery(webhook["_id"], entity, event_id, event_type, body, now_ms)
        await self.store.insert_requested({**doc, "test": True})
        await self._send(delivery_task(webhook, event_id, event_type, body, now_ms))
        return _response(Accepted(event_id=event_id), 202)

    async def stats(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        webhook = await self._webhook(entity, request)
        now = int(time.time() * 1000)
        hours = sorted({model.hour_of(now - h * 3_600_000) for h in range(25)})
        attempts = await self.store.attempts_in_hours(webhook["_id"], hours)
        stats = WebhookStats(
            last_hour=window_of(attempts, now - 3_600_000), last_day=window_of(attempts, now - 86_400_000)
        )
        return _response(stats)

    # --- jobs ---------------------------------------------------------------------------------------

    async def recover(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        return await self._start_job(request, entity, "recover")

    async def replay(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        return await self._start_job(request, entity, "replay")

    async def _start_job(self, request: web.Request, entity: str, kind: str) -> web.Response:
        webhook = await self._webhook(entity, request)
        body = parse_model(JobBody, await read_json(request, self.rt.settings.max_body_bytes))
        now = int(time.time() * 1000)
        since = _aware_ms(body.since)
        until = min(now, _aware_ms(body.until)) if body.until is not None else now
        if since >= until:
            raise validation_problem([FieldError("since", "must be before `until` (and before now)")])
        if not webhook["enabled"]:
            raise Problem(409, "the webhook is disabled: enable it before sending to it")
        job = new_job(uuid.uuid4().hex, kind, webhook, since, until, now)
        holder = await self.store.create_job(job)
        if holder is not None:
            raise Problem(
                409, f"job {holder['_id']} of this webhook is still {holder['state']}: one at a time"
            )
        return _response(job_view(job), 202)

    async def job(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        webhook = await self._webhook(entity, request)
        job = await self.store.job(webhook["_id"], request.match_info["jobId"])
        if job is None:
            raise Problem(404, "no such job for this webhook")
        return _response(job_view(job))


def _aware_ms(value: datetime) -> int:
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)


def job_view(job: Doc) -> JobView:
    missing = job.get("missing")
    return JobView(
        job_id=job["_id"],
        kind=job["kind"],
        state=job["state"],
        since=_dt(job["since_ms"]) or datetime.now(UTC),
        until=_dt(job["until_ms"]) or datetime.now(UTC),
        counts=JobCounts(**job["counts"]),
        missing=_window(missing),
        error=job.get("error"),
        created_at=_dt(job["created_ms"]) or datetime.now(UTC),
        finished_at=_dt(job.get("finished_ms")),
    )


def _window(missing: Doc | None) -> Window | None:
    if not missing:
        return None
    return Window(
        since=datetime.fromtimestamp(missing["since_ms"] / 1000, UTC),
        until=datetime.fromtimestamp(missing["until_ms"] / 1000, UTC),
    )
