"""RFC 9457 problem details: the one error shape of the API, and the one mapping of failures (domain errors
from the service, protocol errors from aiohttp, store outages) onto it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
import pymongo.errors
from aiohttp import web

from registry.errors import (
    CapReached,
    ConcurrentChange,
    DomainError,
    FieldError,
    InvalidFields,
    NotFound,
    StaleVersion,
    UnreadableDocument,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Problem(Exception):
    status: int
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"https://wink.travel/problems/{self.status}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            doc["errors"] = [{"field": e.field, "reason": e.reason} for e in self.errors]
        return doc


def validation_problem(errors: list[FieldError]) -> Problem:
    named = ", ".join(sorted({e.field for e in errors}))
    return Problem(400, f"the request body is invalid: {named}", errors)


def problem_for(exc: BaseException) -> Problem:
    """Map any failure a handler lets escape to the problem the client sees."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, DomainError):
        return domain_problem(exc)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return Problem(413, "the request body is larger than the limit")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return Problem(
            405, f"{exc.method} is not allowed here; allowed: {allowed}", headers={"Allow": allowed}
        )
    if isinstance(exc, web.HTTPNotFound):
        return Problem(404, "no such resource")
    if isinstance(exc, web.HTTPException) and exc.status_code >= 400:
        return Problem(exc.status_code, exc.reason or TITLES.get(exc.status_code, "Error"))
    if isinstance(exc, pymongo.errors.PyMongoError) and is_unavailable(exc):
        return Problem(
            503, "the webhook store (MongoDB) is unreachable; retry shortly", headers={"Retry-After": "2"}
        )
    return Problem(500, "unexpected error; it has been logged")


def domain_problem(exc: DomainError) -> Problem:
    """What each refusal of the service means to an HTTP client."""
    match exc:
        case InvalidFields(errors):
            return validation_problem(errors)
        case NotFound(webhook_id):
            return Problem(404, f"no webhook {webhook_id} for this managing entity")
        case StaleVersion(current, expected):
            return Problem(
                409,
                f"the webhook is at version {current}, not {expected}: re-read it and retry",
                headers={"ETag": f'"{current}"'},
            )
        case ConcurrentChange(given_up=True):
            return Problem(409, "the webhook is being changed concurrently; retry")
        case ConcurrentChange():
            return Problem(409, "the webhook changed while this update was applied: re-read it and retry")
        case CapReached(limit):
            return Problem(
                409,
                f"this managing entity already has the maximum of {limit} webhooks; "
                "remove one before creating another",
            )
        case UnreadableDocument(webhook_id, reason):
            log.error("stored webhook cannot be read", extra={"webhook_id": webhook_id, "error": reason})
            return Problem(500, f"webhook {webhook_id} is stored in a shape this registry cannot read")
    return Problem(500, "unexpected error; it has been logged")


def is_unavailable(exc: pymongo.errors.PyMongoError) -> bool:
    """Is this a connectivity failure (retry later) rather than a bug or a rejected write?"""
    return isinstance(
        exc,
        pymongo.errors.ConnectionFailure
        | pymongo.errors.ServerSelectionTimeoutError
        | pymongo.errors.AutoReconnect,
    ) or bool(getattr(exc, "timeout", False))


def problem_response(problem: Problem) -> web.Response:
    return web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body()),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )
