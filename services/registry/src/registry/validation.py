"""Pure checks of request bodies beyond their shape: URLs (by the shared rule in webhooks_common.urls),
event lists, the entity in the path."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from registry.documents import NewWebhook, WebhookChanges
from registry.errors import FieldError, InvalidFields
from webhooks_common.catalog import pattern_error
from webhooks_common.urls import UrlPolicy, check_url


def normalize_event_list(items: list[str]) -> tuple[list[str], list[FieldError]]:
    """Drop duplicates (first one wins, order kept) and name every item that is not a valid pattern."""
    seen: set[str] = set()
    out: list[str] = []
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        why = pattern_error(item)
        if why:
            errors.append(FieldError(f"eventList[{i}]", f"`{item}`: {why}"))
        elif item not in seen:
            seen.add(item)
            out.append(item)
    return out, errors


def check_fields(
    fields: dict[str, Any], path_entity: str, policy: UrlPolicy
) -> tuple[dict[str, Any], list[FieldError]]:
    """Check the present fields of a (full or partial) body; returns them normalized, plus the errors."""
    errors: list[FieldError] = []
    out = dict(fields)
    entity = fields.get("entity")
    if entity is not None and entity["identifier"] != path_entity:
        errors.append(FieldError("entity.identifier", "must equal the managing entity of the path"))
    url = fields.get("event_url")
    if url is not None:
        verdict = check_url(url, policy)
        if verdict.error:
            errors.append(FieldError("eventUrl", verdict.error))
        out["event_url"] = verdict.url
    events = fields.get("event_list")
    if events is not None:
        out["event_list"], event_errors = normalize_event_list(events)
        errors += event_errors
    return out, errors


def new_webhook_from(fields: dict[str, Any]) -> NewWebhook:
    """The create request from the checked fields of a full body."""
    return NewWebhook(
        entity_name=fields["entity"]["name"],
        name=fields["name"],
        event_url=fields["event_url"],
        enabled=fields["enabled"],
        event_list=fields["event_list"],
    )


def changes_from(fields: dict[str, Any]) -> WebhookChanges:
    """The update from the checked fields present in a (full or partial) body."""
    entity = fields.get("entity")
    return WebhookChanges(
        entity_name=entity["name"] if entity is not None else None,
        name=fields.get("name"),
        event_url=fields.get("event_url"),
        enabled=fields.get("enabled"),
        event_list=fields.get("event_list"),
    )


def shape_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors in the body's own field names (aliases) and plain words."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        parts: list[str] = []
        for p in loc:
            if isinstance(p, int):
                parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
            else:
                parts.append(str(p))
        errors.append(FieldError(".".join(parts) or "(body)", err["msg"]))
    return errors


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidFields([FieldError("(body)", "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidFields(shape_errors(exc)) from None
