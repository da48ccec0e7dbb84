"""Every route the registry serves, as data: app.py registers handlers from it and openapi.py documents it,
so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from registry.history.routes import history_routes
from registry.schemas import (
    Health,
    KeyValuePair,
    RemoveEntryResponse,
    RotatedSecretResponse,
    SecretResponse,
    WebhookBody,
    WebhookPatch,
    WebhookRecord,
)
from webhooks_common import tokens

BASE = "/api/managing-entity/{managingEntityIdentifier}/webhook"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str  # attribute of handlers.Handlers
    operation_id: str
    summary: str
    scope: str | None = None  # None: public (health, metrics, the schema itself)
    request: type[BaseModel] | None = None
    response: Any = None  # a model or list[model]; None for non-JSON bodies
    status: int = 200
    media_type: str = "application/json"
    query: tuple[tuple[str, str], ...] = ()  # (name, description) of optional query parameters
    body_optional: bool = False


ROUTES: tuple[Route, ...] = (
    Route("POST", BASE, "create", "create-webhook", "Create", tokens.WRITE, WebhookBody, WebhookRecord, 201),
    Route(
        "GET",
        f"{BASE}/list",
        "list_webhooks",
        "show-webhooks",
        "List",
        tokens.READ,
        None,
        list[WebhookRecord],
    ),
    Route(
        "GET",
        f"{BASE}/event/list",
        "events",
        "show-webhook-events",
        "Subscribable events",
        tokens.READ,
        None,
        list[KeyValuePair],
    ),
    Route("GET", f"{BASE}/{{id}}", "read", "load-webhook", "Show", tokens.READ, None, WebhookRecord),
    Route(
        "PATCH",
        f"{BASE}/{{id}}",
        "update",
        "update-webhook",
        "Update",
        tokens.WRITE,
        WebhookPatch,
        WebhookRecord,
    ),
    Route(
        "DELETE",
        f"{BASE}/{{id}}",
        "delete",
        "delete-webhook",
        "Delete",
        tokens.REMOVE,
        None,
        RemoveEntryResponse,
    ),
    Route(
        "GET",
        f"{BASE}/{{id}}/secret",
        "secret",
        "show-webhook-secret",
        "Signing secret",
        tokens.READ,
        None,
        SecretResponse,
    ),
    Route(
        "POST",
        f"{BASE}/{{id}}/secret/rotate",
        "rotate",
        "rotate-webhook-secret",
        "Rotate the signing secret",
        tokens.WRITE,
        None,
        RotatedSecretResponse,
    ),
    Route("GET", "/healthz", "healthz", "healthz", "Liveness", None, None, Health),
    Route(
        "GET", "/readyz", "readyz", "readyz", "Readiness (MongoDB and Kafka reachable)", None, None, Health
    ),
    Route(
        "GET",
        "/metrics",
        "metrics",
        "metrics",
        "Prometheus metrics",
        None,
        None,
        None,
        media_type="text/plain",
    ),
    Route("GET", "/openapi.json", "openapi", "openapi", "This OpenAPI document", None, None, None),
)

HISTORY_ROUTES = history_routes(Route, BASE)  # the delivery history's (registry/history/routes.py)
ROUTES = ROUTES + HISTORY_ROUTES
