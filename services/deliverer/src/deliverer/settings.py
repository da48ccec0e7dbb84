"""Deliverer settings: environment variables prefixed `DELIVERER_` (plus the shared ones)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from webhooks_common.settings import CommonSettings

# DESIGN: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts).
DEFAULT_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"


def parse_schedule(raw: str) -> tuple[float, ...]:
    """`"0,5,300"` -> (0.0, 5.0, 300.0): the delay before attempt 1, 2, 3... (len = max attempts)."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("retry schedule needs at least one entry (the first attempt)")
    delays = tuple(float(p) for p in parts)
    if any(d < 0 for d in delays):
        raise ValueError("retry schedule delays must be >= 0 seconds")
    return delays


class DelivererSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVERER_", env_file=".env", extra="ignore")

    group_id: str = Field(
        "webhooks-deliverer",
        description="Kafka consumer group shared by all deliverers (KAFKA_TOPIC_PREFIX is prepended).",
    )
    timeout_s: float = Field(15.0, gt=0, description="Per-attempt HTTP timeout in seconds.")
    retry_schedule: str = Field(
        DEFAULT_SCHEDULE,
        description="Comma-separated delays in seconds before attempt 1, 2, ...; its length is the number "
        "of attempts before the dead-letter topic.",
    )
    jitter: float = Field(0.1, ge=0, lt=1, description="Retry delays are scaled by 1 +/- this at random.")
    per_url_concurrency: int = Field(8, ge=1, description="Attempts in flight at once to one target URL.")
    max_in_flight: int = Field(256, ge=1, description="Attempts in flight at once in this process.")
    max_pending: int = Field(
        5000, ge=1, description="Tasks read but not finished in this process; fetching waits above it."
    )
    per_url_queue_limit: int = Field(
        500,
        ge=1,
        description="Tasks queued for one URL; beyond it new tasks for that URL are parked on a retry "
        "topic (no attempt used) so a slow URL cannot take all the memory or stall its partitions.",
    )
    degraded_queue_limit: int = Field(
        20,
        ge=1,
        description="Tasks queued for a URL whose last attempt got no response (timeout, connection error); "
        "such a URL also gets one attempt in flight, so dead URLs cannot starve the others.",
    )
    silent_after_s: float = Field(
        2.0,
        gt=0,
        description="A URL whose attempts in flight have all gone this long without an answer gets the "
        "degraded queue limit before any of them times out, so a URL that has just gone dead cannot fill "
        "the pending cap in the meantime.",
    )
    overflow_delay_s: float = Field(5.0, ge=0, description="How long a task parked by queue overflow waits.")
    unanswered_overflow_delay_s: float = Field(
        30.0,
        ge=0,
        description="How long a task parked by queue overflow waits when its URL is degraded or silent: it "
        "will not be heard from sooner, and every re-park is Kafka traffic (30 s is one hop on the 30s "
        "retry tier).",
    )
    unknown_webhook_grace_s: float = Field(
        120.0,
        ge=0,
        description="A task for a webhook not (yet) in our config view is re-checked until it is this old, "
        "then dropped (covers a config change still on its way to us).",
    )
    response_snippet_bytes: int = Field(4096, ge=0, description="Response body bytes kept per attempt.")
    attempt_body_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="The payload is copied into the first attempt record of a chain (for the delivery "
        "history and its resend) when it is at most this long; 0 never copies it.",
    )
    user_agent: str = Field("Wink-Webhooks/1.0", description="User-Agent header of every delivery.")
    metrics_host: str = Field("0.0.0.0", description="Interface of the Prometheus /metrics server.")
    metrics_port: int = Field(9100, ge=0, description="Port of /metrics; 0 picks a free port.")
    commit_interval_s: float = Field(0.2, gt=0, description="How often finished offsets are committed.")
    shutdown_grace_s: float = Field(10.0, ge=0, description="On SIGTERM, wait this long for attempts.")
    session_timeout_ms: int = Field(
        10_000,
        ge=6_000,
        description="Kafka group session timeout: how soon a dead deliverer's partitions move.",
    )
    max_poll_records: int = Field(500, ge=1, description="Records fetched per poll.")
    separate_retry_consumer: bool = Field(
        True,
        description="Read the retry topics with a consumer of their own (same group) instead of the one "
        "that reads fresh deliveries. Every fetch names each partition it reads, so one consumer for all "
        "put the five retry topics' partitions into every fetch of a fresh delivery; split, fresh "
        "deliveries are fetched with the deliveries topic's partitions only.",
    )
    records_linger_ms: int = Field(
        50,
        ge=0,
        description="linger.ms of the producer that writes attempt records, retries and dead letters. None "
        "of them is on a delivery's way (the POST is done), so batching them costs no latency; it saves "
        "Kafka requests (CPU of the broker and of this process) at low and medium rates.",
    )

    @field_validator("retry_schedule")
    @classmethod
    def _valid_schedule(cls, v: str) -> str:
        parse_schedule(v)
        return v

    @property
    def schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.retry_schedule)
