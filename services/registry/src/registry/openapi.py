"""OpenAPI 3.1 document generated from the route table and the same pydantic models the handlers use."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter

from registry.routes import ROUTES, Route
from registry.schemas import ProblemDetail

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    400: "Bad Request: malformed JSON or an invalid field (see `errors`)",
    401: "Unauthorized: no or bad bearer token",
    403: "Forbidden: missing scope or managing entity not granted by the token",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict: stale If-Match version, or the per-entity webhook cap is reached",
    413: "Content Too Large: body over the limit",
    415: "Unsupported Media Type: use application/json",
    500: "Internal Server Error",
    503: "Service Unavailable: MongoDB unreachable",
}
_PARAM = re.compile(r"{(\w+)}")
_PARAM_DOCS = {
    "managingEntityIdentifier": "Identifier of the managing entity that owns the webhook",
    "id": "Unique webhook identifier",
}


def _schema(tp: Any, components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = TypeAdapter(tp).json_schema(ref_template=REF, by_alias=True, mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    if "title" in schema and schema.get("type") == "object" and hasattr(tp, "__name__"):
        components[tp.__name__] = schema
        return {"$ref": REF.format(model=tp.__name__)}
    return schema


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="ProblemDetail")}}},
    }


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": ["Webhook"]}
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PARAM_DOCS.get(name, name),
            "schema": {"type": "string", "minLength": 1},
        }
        for name in _PARAM.findall(route.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in route.query
    ]
    if route.method in ("PATCH", "DELETE"):
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "The version (or ETag) last read; 409 when the webhook changed since.",
                "schema": {"type": "string"},
            }
        )
    if params:
        op["parameters"] = params
    if route.request is not None:
        op["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": _schema(route.request, components, "validation")}},
        }
    ok: dict[str, Any] = {"description": {200: "OK", 201: "Created", 202: "Accepted"}[route.status]}
    if route.response is not None:
        ok["content"] = {route.media_type: {"schema": _schema(route.response, components, "serialization")}}
    elif route.media_type == "text/plain":
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(route.status): ok}
    if route.scope is not None:
        op["security"] = [{"bearer": [route.scope]}]
        responses.update({str(code): _problem(text) for code, text in ERROR_STATUSES.items()})
    else:
        op["security"] = []
        responses["405"] = _problem(ERROR_STATUSES[405])
        if route.handler == "readyz":
            responses["503"] = {
                "description": "Not ready",
                "content": {
                    "application/json": {"schema": _schema(ok_schema_type(), components, "serialization")}
                },
            }
    op["responses"] = responses
    return op


def ok_schema_type() -> Any:
    from registry.schemas import Health

    return Health


def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(ProblemDetail, components, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Webhook registry",
            "version": "1.0.0",
            "description": "Wink-compatible webhook management API, plus signing secrets and their rotation.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "JWT with `sub`, `scope` (account.read / account.write / account.remove) "
                    "and `entities` (managing-entity ids the caller may act for).",
                }
            },
        },
    }
