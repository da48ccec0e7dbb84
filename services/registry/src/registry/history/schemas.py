"""API models of the delivery history (rendered by api.py; documented in /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Status = Literal["succeeded", "failed", "pending", "dead"]


class _Api(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class DeliveryItem(_Api):
    """One event sent (or to be sent) to this webhook, with the outcome of its last attempt."""

    event_id: str = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    status: Status = Field(
        description="succeeded; failed (last attempt failed, a retry is scheduled); pending (asked for, not "
        "attempted yet); dead (no more attempts: dead-lettered, refused, 410 Gone, webhook disabled)."
    )
    attempts: int = Field(description="Attempts made so far (all chains, resends included).")
    last_status_code: int | None = Field(None, alias="lastStatusCode")
    last_error: str | None = Field(
        None, alias="lastError", description="When the last attempt got no answer."
    )
    last_attempt_at: datetime | None = Field(None, alias="lastAttemptAt")
    created_at: datetime = Field(
        alias="createdAt", description="When its first attempt (or request) was made."
    )


class DeliveryPage(_Api):
    items: list[DeliveryItem]
    next_cursor: str | None = Field(
        None, alias="nextCursor", description="Pass as `cursor` for the next (older) page; null at the end."
    )


class AttemptView(_Api):
    attempt: int = Field(description="Attempt number within its chain (a resend starts a new chain at 1).")
    at: datetime
    outcome: str = Field(description="success | retry | dead | disabled | dropped | refused")
    status_code: int | None = Field(None, alias="statusCode")
    error: str | None = None
    duration_ms: float = Field(alias="durationMs")
    response_body: str | None = Field(
        None, alias="responseBody", description="The start of the response body."
    )
    next_attempt_at: datetime | None = Field(None, alias="nextAttemptAt")
    url: str


class DeliveryDetail(_Api):
    event_id: str = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    status: Status
    created_at: datetime = Field(alias="createdAt")
    payload: Any = Field(None, description="The JSON body that was sent (null when it was not kept).")
    dead_reason: str | None = Field(None, alias="deadReason")
    attempts: list[AttemptView]


class Accepted(_Api):
    event_id: str = Field(alias="eventId")
    status: Literal["pending"] = "pending"


class SampleEventBody(_Api):
    event_type: StrictStr | None = Field(
        None, alias="eventType", min_length=1, max_length=200, description="A catalogue event type."
    )


class Failure(_Api):
    at: datetime
    event_id: str | None = Field(None, alias="eventId")
    status_code: int | None = Field(None, alias="statusCode")
    error: str | None = None


class WindowStats(_Api):
    attempts: int
    successes: int
    failures: int
    success_rate: float | None = Field(None, alias="successRate")
    p50_ms: float | None = Field(None, alias="p50Ms")
    p99_ms: float | None = Field(None, alias="p99Ms")
    last_failure: Failure | None = Field(None, alias="lastFailure")


class WebhookStats(_Api):
    last_hour: WindowStats = Field(alias="lastHour")
    last_day: WindowStats = Field(alias="lastDay")


class JobBody(_Api):
    since: datetime = Field(description="Start of the window (ISO 8601).")
    until: datetime | None = Field(None, description="End of the window, exclusive (default: now).")


class JobCounts(_Api):
    considered: int = Field(description="Deliveries (recover) or matching events (replay) looked at.")
    sent: int
    skipped: int = Field(
        description="Already delivered, in flight or asked for (replay); no payload (recover)."
    )


class Window(_Api):
    since: datetime
    until: datetime


class JobView(_Api):
    job_id: str = Field(alias="jobId")
    kind: Literal["recover", "replay"]
    state: Literal["queued", "running", "succeeded", "failed"]
    since: datetime
    until: datetime
    counts: JobCounts
    missing: Window | None = Field(
        None, description="The part of the window Kafka no longer holds (replay), when there is one."
    )
    error: str | None = None
    created_at: datetime = Field(alias="createdAt")
    finished_at: datetime | None = Field(None, alias="finishedAt")
