"""Registry settings: the common ones plus `REGISTRY_*` and the unprefixed auth names of DESIGN.md."""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from registry.loop import EventLoopKind
from webhooks_common.settings import CommonSettings


class RegistrySettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="REGISTRY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = Field("0.0.0.0", description="Interface the HTTP API listens on.")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port of the API (0 picks a free one).")
    event_loop: EventLoopKind = Field(
        "uvloop",
        description="Event loop of the HTTP API: uvloop (measured: 2-7% less of the registry's CPU per "
        "request at 500 requests/s, bench/RESULTS.md) or Python's own asyncio loop.",
    )
    allow_http: bool = Field(
        False,
        validation_alias=AliasChoices("REGISTRY_ALLOW_HTTP", "allow_http"),
        description="Accept plain-http `eventUrl`s (local development only; https is required otherwise).",
    )
    max_webhooks_per_entity: int = Field(
        100, ge=1, description="How many webhooks one managing entity may have (409 beyond)."
    )
    recent_webhooks: int = Field(
        10_000,
        ge=0,
        description="Webhooks each registry process keeps for a short while after reading or writing them, "
        "as the base of their next change: a patch or a delete of one is then two store commands instead of "
        "three (a stale one loses its compare-and-set and is read again). Never used to answer a read; "
        "0 turns it off.",
    )
    recent_ttl_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="How long a kept webhook may serve as a base (`REGISTRY_RECENT_WEBHOOKS`). Longer saves "
        "more reads when one process serves a webhook's reads and writes; with several processes, other "
        "processes' changes make more bases stale, each costing one failed insert.",
    )
    secret_overlap_hours: float = Field(
        24, ge=0, description="How long a rotated-out signing secret keeps signing next to the new one."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body (413 above).")
    mongo_timeout_ms: int = Field(
        2000,
        ge=100,
        description="serverSelectionTimeoutMS/connect timeout: how long a request waits for MongoDB "
        "before answering 503.",
    )
    publish_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="Outbox poll period: how often unpublished changes are looked for besides the "
        "immediate wake-up on every change (recovery after a crash or a Kafka outage).",
    )
    publish_gather_ms: float = Field(
        20.0,
        ge=0,
        description="After a change wakes the outbox publisher, it waits this long for more before reading "
        "the pending changes: under load one read and one mark carry many changes instead of one or two "
        "(each read returns every pending change; FerretDB decodes each in full).",
    )
    publish_lease_s: float = Field(
        15.0,
        ge=4,
        description="The outbox lease: one registry process at a time publishes (so a webhook's revisions "
        "reach the config topic in version order) and renews its lease every fifth of this. A stopped "
        "registry hands it back at once; after a crash the others take over when it ends. Changes written "
        "through the other registries are published by the holder's next poll "
        "(REGISTRY_PUBLISH_POLL_SECONDS).",
    )
    publisher_enabled: bool = Field(
        True, description="Run the outbox publisher in this process (off only for tests and tools)."
    )
    commands_enabled: bool = Field(
        True, description="Consume the commands topic (disable requests from the deliverer)."
    )
    commands_group: str = Field(
        "registry-commands",
        description="Consumer group for the commands topic (KAFKA_TOPIC_PREFIX is prepended).",
    )
    history_group: str = Field(
        "registry-history",
        description="Consumer group of the history writer (KAFKA_TOPIC_PREFIX is prepended).",
    )
    history_batch_size: int = Field(500, ge=1, description="Records the history writer stores per batch.")
    history_flush_s: float = Field(
        0.2, gt=0, description="Longest a record waits in the history writer before its batch is stored."
    )
    history_retention_days: float = Field(
        30, gt=0, description="How long deliveries and attempts are kept in the history (whole hours go)."
    )
    history_prune_every_s: float = Field(300, gt=0, description="How often the history retention runs.")
    history_host: str = Field("0.0.0.0", description="Interface of the history writer's health/metrics.")
    history_port: int = Field(
        9102, ge=0, le=65535, description="Port of the history writer's /healthz /readyz /metrics (0: free)."
    )
    history_auto_disable_after_s: float = Field(
        5 * 86400,
        ge=0,
        description="Disable a webhook whose every attempt failed for this long (0: never).",
    )
    history_job_rate: float = Field(
        100, gt=0, description="Most delivery tasks per second a recover or replay job writes."
    )
    history_job_poll_s: float = Field(1.0, gt=0, description="How often the history process looks for jobs.")
    history_job_wait_s: float = Field(
        600,
        gt=0,
        description="Longest a recover or replay job waits, before it starts, for the history writer to have "
        "stored every attempt written before the job (it reads the history); then it fails with the reason.",
    )
    history_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness the history process gives itself at start (os.nice). On cores shared with the "
        "router and deliverer it then takes CPU only when delivery leaves some: it lags instead (its lag is "
        "the history_writer_lag_records metric) and catches up. 0: the same priority as delivery.",
    )
    history_yield_cpu: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Host CPU busy fraction (/proc/stat) from which the history writer holds its batches "
        "while deliveries are flowing: on shared cores the store's own CPU (FerretDB, PostgreSQL) cannot be "
        "niced, so the writer lags instead (history_writer_lag_records) and catches up when delivery leaves "
        "CPU over. 1: never hold.",
    )
    history_yield_rate: float = Field(
        50,
        ge=0,
        description="Attempt records per second (all of webhooks.attempts) from which deliveries count as "
        "flowing for REGISTRY_HISTORY_YIELD_CPU; below it the writer never holds (it is catching up).",
    )
    history_yield_max_s: float = Field(
        10,
        gt=0,
        description="Longest the history writer holds one batch for delivery: on a host that stays busy the "
        "history still advances by a batch at least this often.",
    )
    jwt_secret: str | None = Field(
        None,
        validation_alias=AliasChoices("AUTH_JWT_SECRET", "jwt_secret"),
        description="HS256 key of bearer tokens (one of AUTH_JWT_SECRET / AUTH_JWKS_URL is required).",
    )
    jwks_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AUTH_JWKS_URL", "jwks_url"),
        description="URL of a JWKS with the RS256 keys of bearer tokens (fetched asynchronously, cached).",
    )
    jwks_cache_seconds: float = Field(300, gt=0, description="How long a fetched JWKS is trusted.")
    jwt_audience: str | None = Field(None, description="Expected `aud` claim; not checked when unset.")
    dev_tokens: bool = Field(
        False,
        description="Development only (`make run` turns it on): serve POST /dev/token, which mints an "
        "HS256 token with every scope for any entity it is given, so the Webhooks page can sign in "
        "without an identity provider. Off, the endpoint does not exist (404).",
    )

    @model_validator(mode="after")
    def _require_keys(self) -> Self:
        # Fail at start-up, not on the first request: the registry cannot work without these.
        self.require_secrets_key()
        if not self.jwt_secret and not self.jwks_url:
            raise ValueError("set AUTH_JWT_SECRET (HS256) or AUTH_JWKS_URL (RS256) to verify bearer tokens")
        if self.dev_tokens and not self.jwt_secret:
            raise ValueError("REGISTRY_DEV_TOKENS needs AUTH_JWT_SECRET: development tokens are HS256")
        return self

    @property
    def database(self) -> str:
        """Database named by the path of MONGO_URL (`webhooks` when it has none)."""
        from pymongo.uri_parser import parse_uri

        return parse_uri(self.mongo_url).get("database") or "webhooks"
