"""Router settings: environment variables prefixed `ROUTER_` (plus the common ones, see webhooks_common)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from webhooks_common.settings import CommonSettings


class RouterSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROUTER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    app_id: str = Field(
        "webhooks-router",
        description="faust app id; the input topics' consumer group is KAFKA_TOPIC_PREFIX + this.",
    )
    web_port: int = Field(
        6066,
        ge=1,
        le=65535,
        description="Port of the worker's HTTP server (/metrics, /healthz, /readyz). Each worker on a host "
        "needs its own.",
    )
    web_bind: str = Field("0.0.0.0", description="Address the worker's HTTP server binds to.")
    input_partitions: int = Field(
        6, ge=1, description="Partition count of the input topics (as created by `make run` / deploy)."
    )
    batch_max: int = Field(
        500,
        ge=1,
        description="Most input events routed together (one wait for Kafka's acks per batch). Batches form "
        "by themselves: what arrived while the previous batch was written.",
    )
    batch_within_ms: int = Field(
        5,
        ge=0,
        description="Under load only (ROUTER_BATCH_BUSY_RATE): the longest wait (ms) for a batch to fill "
        "before routing it. 0: never wait.",
    )
    batch_busy_rate: float = Field(
        1500.0,
        ge=0,
        description="Input events per second (moving average) from which the router is busy and a batch "
        "waits up to ROUTER_BATCH_WITHIN_MS to fill (fewer, larger Kafka requests). Below it, what has "
        "arrived is routed at once: light traffic never waits. 0: always wait (a fixed window).",
    )
    batches_in_flight: int = Field(
        1,
        ge=1,
        description="Batches being written at once (acknowledged in order). 1: the next batch grows while "
        "one is written. 4 was measured worse: one-event batches, 3.6x the broker's CPU per delivery, 0.85x "
        "throughput, longer tails (bench/RESULTS.md, issue 16).",
    )
    tasks_linger_ms: int = Field(
        0,
        ge=0,
        description="linger.ms of the producer that writes delivery tasks. The router waits for each batch's "
        "acks anyway, so lingering only adds latency (0 instead of 2: p50 3-6 ms lower at 100-500 events/s).",
    )
    max_event_bytes: int = Field(
        512 * 1024,
        ge=1024,
        description="Input values larger than this go to the invalid topic (reason `too_large`): their tasks "
        "would not fit Kafka's default message size.",
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often the worker commits input offsets (faust broker_commit_interval)."
    )
    session_timeout_s: float = Field(
        10.0,
        ge=6.0,
        description="Kafka group session timeout: how long a dead worker keeps its partitions before the "
        "others take them over.",
    )
    datadir: Path | None = Field(
        None, description="faust's data directory; default: a folder per app id and web port in the temp dir."
    )

    def group_id(self) -> str:
        return self.consumer_group(self.app_id)

    def data_dir(self) -> Path:
        return self.datadir or Path(tempfile.gettempdir()) / f"{self.group_id()}-{self.web_port}"
