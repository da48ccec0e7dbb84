"""Pure checks of request bodies beyond their shape: URLs, event lists, the entity in the path."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from registry.problems import FieldError
from registry.schemas import MAX_URL
from webhooks_common.catalog import pattern_error


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    allow_private: bool = False


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def url_error(url: str, policy: UrlPolicy) -> str | None:
    """Why `url` cannot be a webhook target, or None when it can.

    Only literal addresses are checked here; the deliverer re-checks the resolved address at connect time.
    """
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "must be an absolute https URL"
    if scheme == "http" and not policy.allow_http:
        return "must use https (plain http is refused unless REGISTRY_ALLOW_HTTP is on)"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "must name a host"
    if port == 0:
        return "port 0 is not a valid target"
    if policy.allow_private:
        return None
    if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
        return "must not point at a loopback host"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None  # a DNS name: checked on its resolved address when delivering
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
    ):
        return "must not be a private, loopback or link-local address"
    return None


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
        why = url_error(url, policy)
        if why:
            errors.append(FieldError("eventUrl", why))
    events = fields.get("event_list")
    if events is not None:
        out["event_list"], event_errors = normalize_event_list(events)
        errors += event_errors
    return out, errors


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
    from registry.problems import validation_problem

    if not isinstance(data, dict):
        raise validation_problem([FieldError("(body)", "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(shape_errors(exc)) from None
