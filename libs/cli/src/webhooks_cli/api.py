"""A small synchronous client of the registry API (stdlib only: a CLI makes one call at a time)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


class RegistryClient:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ApiError(exc.code, parsed) from None
        return json.loads(raw) if raw else None

    @staticmethod
    def base(entity_id: str) -> str:
        return f"/api/managing-entity/{quote(entity_id, safe='')}/webhook"

    def list(self, entity_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"{self.base(entity_id)}/list"))

    def create(self, entity_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", self.base(entity_id), body))

    def update(
        self, entity_id: str, webhook_id: str, patch: dict[str, Any], if_match: int | None = None
    ) -> dict[str, Any]:
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        path = f"{self.base(entity_id)}/{quote(webhook_id, safe='')}"
        return dict(self.call("PATCH", path, patch, headers))

    def delete(self, entity_id: str, webhook_id: str) -> dict[str, Any]:
        return dict(self.call("DELETE", f"{self.base(entity_id)}/{quote(webhook_id, safe='')}"))

    def secret(self, entity_id: str, webhook_id: str) -> str:
        return str(self.call("GET", f"{self.base(entity_id)}/{quote(webhook_id, safe='')}/secret")["secret"])
