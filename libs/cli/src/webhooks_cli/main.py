"""`whctl`: tokens, sample events, webhooks, the delivery log, dead letters, topics and a sample receiver.

Every command takes the same settings as the services (KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX, ...)
and `--json` (before the command) for scripts: one JSON document, or one JSON object per line when following.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from webhooks_cli import devprofile
from webhooks_cli.settings import CliSettings
from webhooks_cli.tables import Col, fitted, footnote
from webhooks_common.models import DeadLetter
from webhooks_common.settings import load_settings
from webhooks_common.tokens import SCOPES, mint_token
from webhooks_common.topics import Topics

ALL_SCOPES = SCOPES
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Ctx:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._settings: CliSettings | None = None

    @property
    def settings(self) -> CliSettings:
        if self._settings is None:
            self._settings = load_settings(CliSettings)
        return self._settings

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    def out(self, data: Any, human: str | Table | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(data, default=str))
        elif human is not None:
            console.print(human)

    def table(self, data: Any, cols: list[Col], rows: list[list[str]], empty: str) -> None:
        """`data` as JSON, or a table that fits the terminal without cutting a value to copy."""
        if self.as_json:
            self.out(data)
            return
        if not rows:
            console.print(empty)
            return
        table, left_out = fitted(cols, rows, console.width)
        console.print(table)
        note = footnote(left_out)
        if note:
            err.print(note)

    def jwt_secret(self) -> str:
        secret = self.settings.jwt_secret or devprofile.read_dev_env(devprofile.dev_env_path()).get(
            "AUTH_JWT_SECRET"
        )
        if not secret:
            raise click.ClickException(
                "no token key: set AUTH_JWT_SECRET, or run `make run` once (it keeps one in .infra/dev.env)"
            )
        return secret

    def token(self, entities: list[str], sub: str = "whctl", scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        return mint_token(self.jwt_secret(), sub, entities, scopes, 3600)


pass_ctx = click.make_pass_decorator(Ctx)


def _fail_on_kafka(exc: Exception) -> click.ClickException:
    return click.ClickException(f"{exc} (is Kafka up? `make infra-up`)")


@click.group(help=__doc__)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cli(ctx: click.Context, as_json: bool) -> None:
    ctx.obj = Ctx(as_json)


# --- token ------------------------------------------------------------------------------------------


@cli.command()
@click.option("--entity", "entities", multiple=True, required=True, help="Managing entity id (repeatable).")
@click.option("--sub", default="dev-user", show_default=True, help="User id (becomes userIdentifier).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(ALL_SCOPES),
    help="Scope (repeatable); default all three.",
)
@click.option("--ttl", default=3600 * 12, show_default=True, help="Lifetime in seconds.")
@pass_ctx
def token(c: Ctx, entities: tuple[str, ...], sub: str, scopes: tuple[str, ...], ttl: int) -> None:
    """Mint a development token (HS256 with AUTH_JWT_SECRET) for managing entities."""
    tok = mint_token(c.jwt_secret(), sub, list(entities), scopes or ALL_SCOPES, ttl)
    if c.as_json:
        c.out({"token": tok, "sub": sub, "entities": list(entities), "scope": " ".join(scopes or ALL_SCOPES)})
    else:
        click.echo(tok)


# --- send -------------------------------------------------------------------------------------------


@cli.command()
@click.argument("event_type")
@click.option("--entity", required=True, help="Managing entity id the event belongs to (the Kafka key).")
@click.option("--data", "data_json", help="JSON object for `data` (default: a sample payload).")
@click.option("--id", "event_id", help="Event id (default: a fresh one).")
@click.option("--count", default=1, show_default=True, help="How many events (fresh ids).")
@pass_ctx
def send(
    c: Ctx, event_type: str, entity: str, data_json: str | None, event_id: str | None, count: int
) -> None:
    """Send a sample EVENT_TYPE event (any catalogue type) to wink.events or trippay.events."""
    from webhooks_cli.events import sample_event, topic_for
    from webhooks_cli.kafka_io import produce

    try:
        topic = topic_for(c.topics, event_type)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT_TYPE") from None
    data = None
    if data_json is not None:
        data = json.loads(data_json)
        if not isinstance(data, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--data")
    events = [
        sample_event(event_type, entity, data=data, event_id=event_id if count == 1 else None)
        for _ in range(count)
    ]
    try:
        where = asyncio.run(
            produce(
                c.settings.kafka_bootstrap_servers, topic, [(entity.encode(), e.to_bytes()) for e in events]
            )
        )
    except Exception as exc:
        raise _fail_on_kafka(exc) from None
    for ev, (partition, offset) in zip(events, where, strict=True):
        c.out(
            {
                "id": ev.id,
                "type": ev.type,
                "entityId": entity,
                "topic": topic,
                "partition": partition,
                "offset": offset,
            },
            f"sent [bold]{ev.type}[/] id={ev.id} entity={entity} to {topic} "
            f"(partition {partition}, offset {offset})",
        )


@cli.command()
@click.option("--source", type=click.Choice(["wink", "trippay"]), help="Only this product's events.")
@pass_ctx
def events(c: Ctx, source: str | None) -> None:
    """List the event catalogue (what `send` and `eventList` accept)."""
    from webhooks_common.catalog import catalog

    rows = [e for e in catalog() if source is None or e.source == source]
    cols = [Col("type", copy=True), Col("source", drop=3), Col("category", drop=2), Col("label", drop=1)]
    c.table(
        [e.__dict__ for e in rows],
        cols,
        [[e.key, e.source, e.category, e.label] for e in rows],
        "no events",
    )


# --- webhooks (registry API) ------------------------------------------------------------------------


@cli.group()
def webhooks() -> None:
    """Webhooks of a managing entity, through the registry API (WHCTL_API_URL or REGISTRY_PORT)."""


def _client(c: Ctx, entity: str, api: str | None, tok: str | None) -> Any:
    from webhooks_cli.api import RegistryClient

    return RegistryClient(api or c.settings.api, tok or c.token([entity]))


def _api_call(fn: Any, *args: Any) -> Any:
    from webhooks_cli.api import ApiError

    try:
        return fn(*args)
    except ApiError as exc:
        raise click.ClickException(f"{exc}\n{json.dumps(exc.body, indent=2)}") from None
    except OSError as exc:
        raise click.ClickException(f"registry not reachable: {exc} (is `make run` running?)") from None


api_opt = click.option(
    "--api", help="Registry base URL (default: WHCTL_API_URL or http://127.0.0.1:$REGISTRY_PORT)."
)
token_opt = click.option(
    "--token", "tok", envvar="WHCTL_TOKEN", help="Bearer token (default: a minted dev token)."
)


def entity_opts(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--entity` (required), `--api`, `--token` and the context: what every call about one entity takes."""
    return click.option("--entity", required=True)(api_opt(token_opt(pass_ctx(f))))


# The columns of `webhooks list`: ids, URLs and event types are copied whole; the others drop first.
WEBHOOK_COLS = [
    Col("id", copy=True),
    Col("name", drop=1),
    Col("enabled", drop=2),
    Col("eventUrl", copy=True),
    Col("eventList", copy=True),
    Col("version", drop=3),
]


@webhooks.command("list")
@entity_opts
def webhooks_list(c: Ctx, entity: str, api: str | None, tok: str | None) -> None:
    """List the webhooks of --entity."""
    hooks = _api_call(_client(c, entity, api, tok).list, entity)
    rows = [
        [
            h["id"],
            h["name"],
            str(h["enabled"]),
            h["eventUrl"],
            "\n".join(h["eventList"]) or "(all)",
            str(h["version"]),
        ]
        for h in hooks
    ]
    c.table(hooks, WEBHOOK_COLS, rows, f"no webhooks for entity {entity}")


@webhooks.command("create")
@click.option("--entity", required=True, help="Managing entity id.")
@click.option("--entity-name", default=None, help="Display name of the entity (default: the id).")
@click.option("--name", required=True)
@click.option("--url", required=True, help="eventUrl")
@click.option(
    "--event", "event_list", multiple=True, help="Event type or `prefix.*` (repeatable; none: all)."
)
@click.option("--disabled", is_flag=True)
@api_opt
@token_opt
@pass_ctx
def webhooks_create(
    c: Ctx,
    entity: str,
    entity_name: str | None,
    name: str,
    url: str,
    event_list: tuple[str, ...],
    disabled: bool,
    api: str | None,
    tok: str | None,
) -> None:
    """Create a webhook; prints it with its signing secret."""
    client = _client(c, entity, api, tok)
    body = {
        "name": name,
        "entity": {"identifier": entity, "name": entity_name or entity},
        "enabled": not disabled,
        "eventList": list(event_list),
        "eventUrl": url,
    }
    hook = _api_call(client.create, entity, body)
    hook["secret"] = _api_call(client.secret, entity, hook["id"])
    c.out(
        hook,
        f"created webhook [bold]{hook['id']}[/] (version {hook['version']})\n"
        f"signing secret: {hook['secret']}",
    )


def update_patch(
    name: str | None,
    url: str | None,
    event_list: tuple[str, ...],
    all_events: bool,
    enabled: bool | None,
    entity: str,
    entity_name: str | None,
) -> dict[str, Any]:
    """The PATCH body of `webhooks update` (pure): only what was asked to change."""
    if all_events and event_list:
        raise click.UsageError("--event and --all-events contradict each other")
    patch: dict[str, Any] = {}
    if name is not None:
        patch["name"] = name
    if url is not None:
        patch["eventUrl"] = url
    if event_list:
        patch["eventList"] = list(event_list)
    if all_events:
        patch["eventList"] = []
    if enabled is not None:
        patch["enabled"] = enabled
    if entity_name is not None:
        patch["entity"] = {"identifier": entity, "name": entity_name}
    if not patch:
        raise click.UsageError(
            "say what to change: --name, --url, --event/--all-events, --enable/--disable, --entity-name"
        )
    return patch


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--entity", required=True, help="Managing entity id.")
@click.option("--name", default=None, help="New name.")
@click.option("--url", default=None, help="New eventUrl.")
@click.option(
    "--event", "event_list", multiple=True, help="The new event list (repeatable; replaces the old one)."
)
@click.option("--all-events", is_flag=True, help="Subscribe to every event (an empty event list).")
@click.option("--enable/--disable", "enabled", default=None, help="Switch the webhook on or off.")
@click.option("--entity-name", default=None, help="New display name of the entity.")
@click.option("--if-match", type=int, default=None, help="Only if the webhook is still at this version.")
@api_opt
@token_opt
@pass_ctx
def webhooks_update(
    c: Ctx,
    webhook_id: str,
    entity: str,
    name: str | None,
    url: str | None,
    event_list: tuple[str, ...],
    all_events: bool,
    enabled: bool | None,
    entity_name: str | None,
    if_match: int | None,
    api: str | None,
    tok: str | None,
) -> None:
    """Change WEBHOOK_ID: only the fields given change (Studio's Actions > Update)."""
    patch = update_patch(name, url, event_list, all_events, enabled, entity, entity_name)
    client = _client(c, entity, api, tok)
    hook = _api_call(client.update, entity, webhook_id, patch, if_match)
    c.out(
        hook,
        f"updated webhook [bold]{hook['id']}[/] (version {hook['version']}): "
        f"{'enabled' if hook['enabled'] else 'disabled'}, {hook['eventUrl']}, "
        f"events: {', '.join(hook['eventList']) or '(all)'}",
    )


@dataclass
class Target:
    """WEBHOOK_ID of --entity, as a command names it, and how to reach the registry (--api, --token)."""

    c: Ctx
    entity: str
    webhook_id: str
    api: str | None
    tok: str | None

    def call(self, method: str) -> Any:
        """The registry client's `method` on this webhook (`secret`, `delete`)."""
        return _api_call(
            getattr(_client(self.c, self.entity, self.api, self.tok), method), self.entity, self.webhook_id
        )

    def history(self, method: str, suffix: str, body: Any = None) -> Any:
        """`method` on one of this webhook's history paths (`suffix` after the webhook's URL)."""
        path = _hook_path(self.entity, self.webhook_id, suffix)
        return _api_call(_client(self.c, self.entity, self.api, self.tok).call, method, path, body)


def webhook_command(name: str, *args: str, **kw: Any) -> Callable[[Callable[..., None]], click.Command]:
    """`whctl webhooks NAME WEBHOOK_ID [ARGS] --entity E [--api A] [--token T]`: the function gets the
    Target first, then `args` and the options declared below this decorator."""

    def wrap(f: Callable[..., None]) -> click.Command:
        @functools.wraps(f)
        def command(
            c: Ctx, webhook_id: str, entity: str, api: str | None, tok: str | None, **params: Any
        ) -> None:
            f(Target(c, entity, webhook_id, api, tok), **params)

        decorated = entity_opts(command)
        for arg in reversed(("webhook_id", *args)):
            decorated = click.argument(arg)(decorated)
        return webhooks.command(name, **kw)(decorated)

    return wrap


@webhook_command("secret")
def webhooks_secret(t: Target) -> None:
    """Print the signing secret of WEBHOOK_ID."""
    secret = t.call("secret")
    if t.c.as_json:
        t.c.out({"id": t.webhook_id, "secret": secret})
    else:
        click.echo(secret)


@webhook_command("delete")
def webhooks_delete(t: Target) -> None:
    """Remove WEBHOOK_ID."""
    res = t.call("delete")
    t.c.out(res, f"{res.get('message', res)}")


# --- delivery history (registry API) ---------------------------------------------------------------


def _hook_path(entity: str, webhook_id: str, suffix: str) -> str:
    from urllib.parse import quote

    from webhooks_cli.api import RegistryClient

    return f"{RegistryClient.base(entity)}/{quote(webhook_id, safe='')}{suffix}"


@webhook_command("deliveries")
@click.option("--status", type=click.Choice(["succeeded", "failed", "pending", "dead"]))
@click.option("--event-type")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page.")
def webhooks_deliveries(
    t: Target, status: str | None, event_type: str | None, limit: int, cursor: str | None
) -> None:
    """The delivery history of WEBHOOK_ID, newest first."""
    from urllib.parse import urlencode

    params = {"limit": str(limit), "status": status, "eventType": event_type, "cursor": cursor}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    page = t.history("GET", f"/delivery/list?{query}")
    cols = [
        Col("created", drop=2),
        Col("event", copy=True),
        Col("type", copy=True),
        Col("status"),
        Col("attempts", drop=3),
        Col("last", drop=1),
        Col("last attempt", drop=4),
    ]
    rows = [
        [
            i["createdAt"], i["eventId"], i["eventType"], i["status"], str(i["attempts"]),
            str(i["lastStatusCode"] or i["lastError"] or "-"), i["lastAttemptAt"] or "-",
        ]
        for i in page["items"]
    ]  # fmt: skip
    more = f"next page: --cursor {page['nextCursor']}" if page["nextCursor"] else ""
    t.c.table(page, cols, rows, f"no deliveries {more}".strip())
    if page["items"] and more and not t.c.as_json:
        click.echo(more)


@webhook_command("delivery", "event_id")
def webhooks_delivery(t: Target, event_id: str) -> None:
    """One delivery: the payload sent and every attempt."""
    d = t.history("GET", f"/delivery/{event_id}")
    cols = [
        Col("#"),
        Col("at", drop=2),
        Col("outcome"),
        Col("status"),
        Col("ms", drop=3),
        Col("response", drop=1),
    ]
    rows = [
        [
            str(a["attempt"]),
            a["at"],
            a["outcome"],
            str(a["statusCode"] or a["error"] or "-"),
            f"{a['durationMs']:.0f}",
            (a["responseBody"] or "")[:60],
        ]
        for a in d["attempts"]
    ]
    t.c.table(d, cols, rows, "no attempts")
    if not t.c.as_json:
        click.echo(json.dumps(d["payload"], indent=2))


@webhook_command("resend", "event_id")
def webhooks_resend(t: Target, event_id: str) -> None:
    """Send one delivery again (same webhook-id)."""
    res = t.history("POST", f"/delivery/{event_id}/resend")
    t.c.out(res, f"resend of {res['eventId']} accepted")


@webhook_command("test")
@click.option("--type", "event_type", help="A catalogue event type (default: one the webhook subscribes to).")
def webhooks_test(t: Target, event_type: str | None) -> None:
    """Send a test event to WEBHOOK_ID."""
    body = {"eventType": event_type} if event_type else {}
    res = t.history("POST", "/test", body)
    t.c.out(res, f"test event {res['eventId']} accepted")


@webhook_command("stats")
def webhooks_stats(t: Target) -> None:
    """Attempts, success rate and durations of the last hour and day."""
    res = t.history("GET", "/stats")
    cols = [
        Col("window"),
        Col("attempts"),
        Col("ok", drop=2),
        Col("failed"),
        Col("rate"),
        Col("p50 ms", drop=3),
        Col("p99 ms", drop=4),
        Col("last failure", drop=1),
    ]
    rows = []
    for name, key in (("hour", "lastHour"), ("day", "lastDay")):
        w = res[key]
        rate = "-" if w["successRate"] is None else f"{w['successRate']:.1%}"
        last = w["lastFailure"]
        failure = "-" if last is None else f"{last['at']} {last['statusCode'] or last['error']}"
        p50 = "-" if w["p50Ms"] is None else f"{w['p50Ms']:.0f}"
        p99 = "-" if w["p99Ms"] is None else f"{w['p99Ms']:.0f}"
        rows.append(
            [name, str(w["attempts"]), str(w["successes"]), str(w["failures"]), rate, p50, p99, failure]
        )
    t.c.table(res, cols, rows, "no attempts")


def _job_command(kind: str, doc: str) -> None:
    """`whctl webhooks recover|replay WEBHOOK_ID --entity E --since T [--until T]`: one job each."""

    @webhook_command(kind, help=doc)
    @click.option("--since", required=True, help="ISO 8601 start of the window.")
    @click.option("--until", help="ISO 8601 end of the window (default: now).")
    def command(t: Target, since: str, until: str | None) -> None:
        body = {"since": since, **({"until": until} if until else {})}
        res = t.history("POST", f"/{kind}", body)
        see = f"whctl webhooks job {t.webhook_id} {res['jobId']}"
        t.c.out(res, f"{kind} job {res['jobId']} {res['state']} (see: {see})")


_job_command("recover", "Re-send every failed or dead delivery of the window (a job).")
_job_command("replay", "Send every event of the window the webhook matches and has not received (a job).")


@webhook_command("job", "job_id")
def webhooks_job(t: Target, job_id: str) -> None:
    """State and counts of a recover or replay job."""
    res = t.history("GET", f"/job/{job_id}")
    counts = res["counts"]
    missing = (
        f"; Kafka no longer holds {res['missing']['since']} .. {res['missing']['until']}"
        if res["missing"]
        else ""
    )
    error = f"; {res['error']}" if res["error"] else ""
    t.c.out(
        res,
        f"{res['kind']} {res['state']}: {counts['sent']} sent, {counts['skipped']} skipped of "
        f"{counts['considered']}{missing}{error}",
    )


# --- tail (delivery log) ----------------------------------------------------------------------------


def _ms(ms: int | None) -> str:
    return "-" if not ms else datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


COLOURS = {"success": "green", "retry": "yellow", "dead": "red", "disabled": "red", "refused": "red"}


@cli.command()
@click.option("--from-beginning", is_flag=True, help="Replay the whole log first.")
@click.option("--webhook", "webhook_id", help="Only this webhook's attempts.")
@click.option("--count", type=int, help="Stop after this many records.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@pass_ctx
def tail(
    c: Ctx, from_beginning: bool, webhook_id: str | None, count: int | None, timeout: float | None
) -> None:
    """Follow webhooks.attempts: one line per delivery attempt."""
    import msgspec

    from webhooks_cli.kafka_io import follow
    from webhooks_common.decoders import decode_attempt

    async def run() -> None:
        seen = 0
        async for record in follow(
            c.settings.kafka_bootstrap_servers,
            c.topics.attempts,
            from_beginning=from_beginning,
            timeout=timeout,
        ):
            try:
                a = decode_attempt(record.value)
            except ValueError:  # not an attempt record: skipped
                continue
            if webhook_id and a.webhook_id != webhook_id:
                continue
            colour = COLOURS.get(a.outcome, "white")
            status = a.status if a.status is not None else (a.error or "")
            c.out(
                msgspec.to_builtins(a),
                f"{_ms(a.at_ms)} [{colour}]{a.outcome:8}[/] {status!s:>4} #{a.attempt} "
                f"{a.event_type} -> {a.url} ({a.duration_ms:.0f} ms) "
                f"webhook={a.webhook_id} event={a.event_id}",
            )
            seen += 1
            if count is not None and seen >= count:
                return

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None


# --- dlq --------------------------------------------------------------------------------------------


@cli.group()
def dlq() -> None:
    """Dead letters (webhooks.dlq): list them, re-drive them onto webhooks.deliveries."""


def _dead_letters(c: Ctx) -> list[DeadLetter]:
    from webhooks_cli.dlq import latest_per_task
    from webhooks_cli.kafka_io import read_to_end

    try:
        records = asyncio.run(read_to_end(c.settings.kafka_bootstrap_servers, c.topics.dlq))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    dead = []
    for r in records:
        try:
            dead.append(DeadLetter.from_bytes(r.value or b""))
        except ValueError:
            err.print(f"[yellow]skipping an unreadable dead letter at {r.partition}:{r.offset}[/]")
    return latest_per_task(dead)


@dlq.command("list")
@click.option("--webhook", "webhook_id")
@click.option("--entity", "entity_id")
@pass_ctx
def dlq_list(c: Ctx, webhook_id: str | None, entity_id: str | None) -> None:
    """Every dead letter (latest per task)."""
    from webhooks_cli.dlq import Selection

    sel = Selection(everything=True, webhook_id=webhook_id, entity_id=entity_id)
    dead = [d for d in _dead_letters(c) if sel.matches(d)]
    cols = [
        Col("dead at", drop=2),
        Col("webhook", copy=True),
        Col("event", copy=True),
        Col("attempts", drop=3),
        Col("reason", drop=1),
        Col("task", copy=True),
    ]
    rows = [
        [
            _ms(d.dead_at_ms),
            d.task.webhook_id,
            d.task.event_type,
            str(d.task.attempt),
            d.reason,
            d.task.task_id,
        ]
        for d in dead
    ]
    c.table([d.model_dump(mode="json") for d in dead], cols, rows, "no dead letters")


@dlq.command("redrive")
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@click.option("--webhook", "webhook_id")
@click.option("--entity", "entity_id")
@click.option("--task", "task_id")
@click.option("--since-ms", type=int, help="Only those dead at or after this time (ms since epoch).")
@click.option("--dry-run", is_flag=True)
@pass_ctx
def dlq_redrive(
    c: Ctx,
    everything: bool,
    webhook_id: str | None,
    entity_id: str | None,
    task_id: str | None,
    since_ms: int | None,
    dry_run: bool,
) -> None:
    """Put dead letters back on webhooks.deliveries with a fresh retry budget (same webhook-id)."""
    from webhooks_cli.dlq import Selection, redrive_task
    from webhooks_cli.kafka_io import produce

    sel = Selection(everything, webhook_id, entity_id, task_id, since_ms)
    if sel.empty:
        raise click.UsageError("say which: --all, --webhook, --entity, --task or --since-ms")
    chosen = [d for d in _dead_letters(c) if sel.matches(d)]
    now = int(time.time() * 1000)
    tasks = [redrive_task(d, now) for d in chosen]
    if tasks and not dry_run:
        asyncio.run(
            produce(
                c.settings.kafka_bootstrap_servers,
                c.topics.deliveries,
                [(t.url.encode(), t.to_bytes()) for t in tasks],
            )
        )
    verb = "would re-drive" if dry_run else "re-drove"
    c.out(
        {
            "redriven": 0 if dry_run else len(tasks),
            "selected": len(tasks),
            "tasks": [t.task_id for t in tasks],
        },
        f"{verb} {len(tasks)} dead letter(s) onto {c.topics.deliveries}",
    )


# --- topics -----------------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """Kafka topics of the system."""


@topics.command("create")
@click.option("--input-partitions", type=int, help="Default TOPICS_INPUT_PARTITIONS (6).")
@click.option("--delivery-partitions", type=int, help="Default TOPICS_DELIVERY_PARTITIONS (12).")
@pass_ctx
def topics_create(c: Ctx, input_partitions: int | None, delivery_partitions: int | None) -> None:
    """Create every topic that does not exist yet (idempotent)."""
    from webhooks_common.kafka import ensure_topics
    from webhooks_common.topics import topic_specs

    specs = topic_specs(
        c.topics,
        input_partitions=input_partitions or c.settings.input_partitions,
        delivery_partitions=delivery_partitions or c.settings.delivery_partitions,
    )
    try:
        created = asyncio.run(ensure_topics(c.settings.kafka_bootstrap_servers, specs))
    except Exception as exc:
        raise _fail_on_kafka(exc) from None
    c.out(
        {"created": created, "existing": [s.name for s in specs if s.name not in created]},
        f"topics: {len(created)} created, {len(specs) - len(created)} already there "
        f"({c.settings.kafka_bootstrap_servers}, prefix {c.settings.topic_prefix!r})",
    )


# --- receiver ---------------------------------------------------------------------------------------


@cli.command()
@click.option("--port", default=9000, show_default=True, envvar="RECEIVER_PORT")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="RECEIVER_HOST")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    envvar="RECEIVER_SECRET",
    help="whsec_ signing secret (repeatable, e.g. during rotation); without one, signatures are not checked.",
)
@click.option(
    "--status", default=204, show_default=True, help="HTTP status to answer verified webhooks with."
)
@pass_ctx
def receiver(c: Ctx, port: int, host: str, secrets: tuple[str, ...], status: int) -> None:
    """A sample receiver: prints each webhook and verifies its signature (standardwebhooks)."""
    from aiohttp import web

    from webhooks_cli.receiver import Delivery, build_app

    def show(d: Delivery) -> None:
        if c.as_json:
            click.echo(json.dumps(d.as_dict()))
            return
        mark = {
            True: "[green]signature OK[/]",
            False: f"[red]signature FAILED: {d.error}[/]",
            None: "[yellow]not verified (no --secret)[/]",
        }[d.verified]
        payload = d.payload if isinstance(d.payload, dict) else {}
        console.print(
            f"[bold]{payload.get('type', '?')}[/] entity={payload.get('entityId', '?')} "
            f"webhook-id={d.headers.get('webhook-id')} path={d.path} {mark}"
        )
        console.print_json(d.body.decode(errors="replace")) if payload else console.print(d.body)

    if not c.as_json:
        err.print(
            f"receiver listening on http://{host}:{port}/ "
            + ("(verifying signatures)" if secrets else "(no --secret: signatures not checked)")
        )
    web.run_app(
        build_app(list(secrets), show, status=status), host=host, port=port, print=None, access_log=None
    )


# --- settings ---------------------------------------------------------------------------------------


@cli.command()
@click.option("--markdown", is_flag=True, help="A Markdown table (what docs use).")
@pass_ctx
def settings(c: Ctx, markdown: bool) -> None:
    """Every setting of every service, with its default and description."""
    from webhooks_cli.settings_doc import all_rows
    from webhooks_cli.settings_doc import markdown as to_markdown

    rows = all_rows()
    if markdown:
        sys.stdout.write(to_markdown(rows))
        return
    cols = [Col("variable", copy=True), Col("default", drop=1), Col("read by", drop=2), Col("description")]
    c.table(
        [r.__dict__ for r in rows],
        cols,
        [[r.variable, r.default, r.service, r.description] for r in rows],
        "no settings",
    )
