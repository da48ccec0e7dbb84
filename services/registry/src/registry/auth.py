"""Bearer-token authentication (HS256 shared secret or RS256 from a JWKS) and scope/entity checks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import jwt

from registry.problems import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who calls: the token's `sub`, its scopes and the managing entities it may act for."""

    subject: str
    scopes: frozenset[str]
    entities: frozenset[str]


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Validate the claim shapes we rely on; a token without them is a bad token (401)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Problem(401, "the token has no `sub` claim")
    scope = claims.get("scope", "")
    if isinstance(scope, list):  # some issuers send `scope` as an array; accept both shapes
        scope = " ".join(str(s) for s in scope)
    if not isinstance(scope, str):
        raise Problem(401, "the token's `scope` claim is not a space-separated string")
    entities = claims.get("entities", [])
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise Problem(401, "the token's `entities` claim is not a list of identifiers")
    return Principal(sub, frozenset(scope.split()), frozenset(entities))


def authorize(principal: Principal, scope: str, entity_id: str) -> None:
    """403 unless the caller holds `scope` and may act for `entity_id`."""
    if scope not in principal.scopes:
        raise Problem(403, f"this operation needs the `{scope}` scope")
    if entity_id not in principal.entities:
        raise Problem(403, "the token does not grant access to this managing entity")


def bearer_token(header: str | None) -> str:
    if not header:
        raise Problem(401, "missing Authorization header", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "the Authorization header must be `Bearer <token>`", headers={"WWW-Authenticate": "Bearer"}
        )
    return token.strip()


class KeySource(Protocol):
    async def key_for(self, token: str) -> tuple[Any, str]:
        """The verification key and algorithm for this token."""
        ...


class SharedSecret:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def key_for(self, token: str) -> tuple[Any, str]:
        return self._secret, "HS256"


class JwksKeys:
    """RS256 keys from a JWKS URL, fetched asynchronously and cached.

    Refetched (rate-limited) when a token names an unknown kid.
    """

    def __init__(self, url: str, ttl: float = 300, min_refetch: float = 10) -> None:
        self._url, self._ttl, self._min_refetch = url, ttl, min_refetch
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if (not force and age < self._ttl) or (force and age < self._min_refetch):
                return
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self._url) as resp:
                    resp.raise_for_status()
                    doc = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("JWKS fetch failed", extra={"url": self._url, "error": str(exc)})
                if not self._keys:
                    raise Problem(503, "the token keys (JWKS) cannot be fetched; retry shortly") from exc
                return  # keep serving with the keys we have
            keys: dict[str, Any] = {}
            for jwk in doc.get("keys", []):
                if jwk.get("kty") == "RSA":
                    keys[jwk.get("kid", "")] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
            self._keys, self._fetched_at = keys, time.monotonic()

    async def key_for(self, token: str) -> tuple[Any, str]:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.PyJWTError as exc:
            raise Problem(401, "the bearer token is malformed") from exc
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        if kid not in self._keys:
            if kid == "" and len(self._keys) == 1:
                return next(iter(self._keys.values())), "RS256"
            raise Problem(401, "the token is signed with an unknown key")
        return self._keys[kid], "RS256"


class VerifiedTokens:
    """Tokens already verified, with their principal, until their `exp` (at most `ttl_s`), newest `size` kept.

    A client sends the same token on every request for its lifetime; verifying its signature each time was
    ~12% of the registry's CPU per request (py-spy, Studio mix). Only a token that passed every check is kept,
    and only for a bounded time, so a key withdrawn from the JWKS stops being honoured within `ttl_s`.
    """

    def __init__(
        self, size: int = 10_000, ttl_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._size, self._ttl, self._clock = size, ttl_s, clock
        self._entries: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, not_before, until = entry
        now = self._clock()
        if now >= until or now < not_before:
            # expired (a 401 from the full check, with its reason) or not yet valid
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal, claims: dict[str, Any]) -> None:
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
            return
        until = min(float(exp), self._clock() + self._ttl)
        self._entries[token] = (principal, float(nbf), until)
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class Authenticator:
    """Turns an Authorization header into a Principal, or a 401 problem."""

    def __init__(
        self, sources: list[KeySource], audience: str | None = None, verified: VerifiedTokens | None = None
    ) -> None:
        self._sources, self._audience = sources, audience
        self._verified = verified if verified is not None else VerifiedTokens()

    async def principal(self, header: str | None) -> Principal:
        token = bearer_token(header)
        known = self._verified.get(token)
        if known is not None:
            return known
        principal, claims = await self._verify(token)
        self._verified.put(token, principal, claims)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, dict[str, Any]]:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise Problem(401, "the bearer token is malformed") from exc
        for source in self._sources:
            # Pick the source by the token's algorithm so an RS256 public key is never used as an HMAC secret.
            if (alg == "HS256") != isinstance(source, SharedSecret):
                continue
            key, algorithm = await source.key_for(token)
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    options={"verify_aud": self._audience is not None, "require": ["exp", "sub"]},
                )
            except jwt.ExpiredSignatureError as exc:
                raise Problem(401, "the bearer token has expired") from exc
            except jwt.PyJWTError as exc:
                raise Problem(401, f"the bearer token is not valid: {exc}") from exc
            return principal_from_claims(claims), claims
        raise Problem(401, f"tokens signed with {alg!r} are not accepted")
