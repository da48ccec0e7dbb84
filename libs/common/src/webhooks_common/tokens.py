"""Development bearer tokens: the claims the registry reads, and HS256 minting for whctl, tests and bench.

The registry verifies these tokens (and RS256 ones from a JWKS); it never mints any. Minting lives here so
that tools need not import the registry service to make a token.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

READ, WRITE, REMOVE = "account.read", "account.write", "account.remove"
SCOPES = (READ, WRITE, REMOVE)


def mint_token(
    secret: str,
    sub: str,
    entities: Iterable[str],
    scopes: Iterable[str] = SCOPES,
    ttl: float = 3600,
    **extra: Any,
) -> str:
    """An HS256 token for `sub`, acting for `entities` with `scopes` (space-separated `scope` claim)."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "entities": list(entities),
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + int(ttl),
    }
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")
