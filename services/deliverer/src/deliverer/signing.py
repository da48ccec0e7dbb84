"""Standard Webhooks v1 signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`, one per secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: one `v1,` signature per key, space separated."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    sigs = []
    for key in keys:
        mac = hmac.new(key, prefix, hashlib.sha256)
        mac.update(body)
        sigs.append("v1," + base64.b64encode(mac.digest()).decode())
    return " ".join(sigs)


def headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes, user_agent: str
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, msg_id, timestamp, body),
    }
