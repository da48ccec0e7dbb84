"""The history's routes (added to the registry's route table, so /openapi.json documents them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.history.schemas import (
    Accepted,
    DeliveryDetail,
    DeliveryPage,
    JobBody,
    JobView,
    SampleEventBody,
    WebhookStats,
)
from webhooks_common import tokens

if TYPE_CHECKING:
    from registry.routes import Route

LIST_QUERY = (
    ("status", "succeeded | failed | pending | dead"),
    ("eventType", "Only deliveries of this event type"),
    ("since", "ISO 8601 date-time: deliveries created at or after it"),
    ("until", "ISO 8601 date-time: deliveries created before it"),
    ("cursor", "The `nextCursor` of the previous page"),
    ("limit", "Items per page, 1 to 100 (default 20)"),
)


def history_routes(route: type[Route], base: str) -> tuple[Route, ...]:
    """Built by registry/routes.py with its Route and base path (this module does not import it)."""
    one = f"{base}/{{id}}"
    return (
        route(
            "GET",
            f"{one}/delivery/list",
            "list_deliveries",
            "list-webhook-deliveries",
            "Deliveries, newest first",
            tokens.READ,
            None,
            DeliveryPage,
            query=LIST_QUERY,
        ),
        route(
            "GET",
            f"{one}/delivery/{{eventId}}",
            "delivery",
            "show-webhook-delivery",
            "One delivery: the payload sent and every attempt",
            tokens.READ,
            None,
            DeliveryDetail,
        ),
        route(
            "POST",
            f"{one}/delivery/{{eventId}}/resend",
            "resend",
            "resend-webhook-delivery",
            "Send this delivery again (a new attempt chain, the same webhook-id)",
            tokens.WRITE,
            None,
            Accepted,
            202,
        ),
        route(
            "POST",
            f"{one}/test",
            "send_test",
            "send-webhook-test-event",
            "Send a test event of a catalogue type",
            tokens.WRITE,
            SampleEventBody,
            Accepted,
            202,
            body_optional=True,
        ),
        route(
            "GET",
            f"{one}/stats",
            "stats",
            "show-webhook-stats",
            "Attempts, success rate and durations of the last hour and day",
            tokens.READ,
            None,
            WebhookStats,
        ),
        route(
            "POST",
            f"{one}/recover",
            "recover",
            "recover-webhook-deliveries",
            "Re-send, oldest first, every delivery of the window whose last attempt failed or died (a job)",
            tokens.WRITE,
            JobBody,
            JobView,
            202,
        ),
        route(
            "POST",
            f"{one}/replay",
            "replay",
            "replay-webhook-events",
            "Send every event of the window that matches the webhook now and it has not received (a job)",
            tokens.WRITE,
            JobBody,
            JobView,
            202,
        ),
        route(
            "GET",
            f"{one}/job/{{jobId}}",
            "job",
            "show-webhook-job",
            "State and counts of a recover or replay job",
            tokens.READ,
            None,
            JobView,
        ),
    )
