"""The sample receiver: prints every webhook it gets and verifies its Standard Webhooks signature.

It is also the reference for integrators: `verify` below is all a receiver needs (the `standardwebhooks`
package checks the HMAC of "{webhook-id}.{webhook-timestamp}.{body}" and the timestamp's freshness).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: no secret given, not checked
    error: str | None

    @property
    def payload(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        payload = self.payload
        return {
            "path": self.path,
            "webhook_id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "verified": self.verified,
            "error": self.error,
            "payload": payload if payload is not None else self.body.decode(errors="replace"),
        }


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> tuple[bool | None, str | None]:
    """(True, None) when one of `secrets` signed it; (False, why) when none did; (None, None) unchecked."""
    if not secrets:
        return None, None
    missing = [h for h in SIGNATURE_HEADERS if h not in headers]
    if missing:
        return False, f"missing headers: {', '.join(missing)}"
    error = "no secret matches"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            return True, None
        except WebhookVerificationError as exc:
            error = str(exc)
    return False, error


def build_app(
    secrets: list[str], on_delivery: Callable[[Delivery], None], *, status: int = 204
) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        ok, error = verify(secrets, body, headers)
        on_delivery(Delivery(request.path, headers, body, ok, error))
        if ok is False:
            # A real receiver must refuse what it cannot authenticate.
            return web.json_response({"error": error}, status=401)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    return app
