"""The registry keeps tokens it verified, until their expiry: what it must still refuse, and its bounds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from registry.auth import Authenticator, Principal, SharedSecret, VerifiedTokens
from registry.problems import Problem

SECRET = "s" * 32


class CountingSecret(SharedSecret):
    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.calls = 0

    async def key_for(self, token: str) -> tuple[Any, str]:
        self.calls += 1
        return await super().key_for(token)


def token(exp_in: float, secret: str = SECRET, **claims: Any) -> str:
    body = {
        "sub": "u1",
        "scope": "account.read",
        "entities": ["e1"],
        "exp": int(time.time() + exp_in),
        **claims,
    }
    return jwt.encode(body, secret, algorithm="HS256")


async def test_a_token_is_verified_once_and_then_served_from_the_cache() -> None:
    source = CountingSecret(SECRET)
    auth = Authenticator([source])
    header = f"Bearer {token(600)}"
    first = await auth.principal(header)
    second = await auth.principal(header)
    assert first == second == Principal("u1", frozenset({"account.read"}), frozenset({"e1"}))
    assert source.calls == 1


async def test_bad_tokens_are_never_cached_and_keep_failing() -> None:
    source = CountingSecret(SECRET)
    auth = Authenticator([source])
    forged = f"Bearer {token(600, secret='x' * 32)}"
    for _ in range(2):
        with pytest.raises(Problem) as err:
            await auth.principal(forged)
        assert err.value.status == 401
    assert source.calls == 2


def test_an_entry_ends_at_the_tokens_expiry_or_the_ttl_whichever_is_first() -> None:
    now = [1000.0]
    cache = VerifiedTokens(ttl_s=60, clock=lambda: now[0])
    p = Principal("u1", frozenset(), frozenset())
    cache.put("short", p, {"exp": 1010})
    cache.put("long", p, {"exp": 5000})
    now[0] = 1009.9
    assert cache.get("short") == p
    now[0] = 1010.0
    assert cache.get("short") is None  # expired: the full check answers (401 "has expired")
    now[0] = 1059.9
    assert cache.get("long") == p
    now[0] = 1060.0
    assert cache.get("long") is None  # re-verified at least every ttl (a withdrawn JWKS key stops working)


async def test_an_expired_cached_token_is_refused_as_expired() -> None:
    auth = Authenticator([SharedSecret(SECRET)])
    header = f"Bearer {token(1)}"
    await auth.principal(header)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            await auth.principal(header)
        except Problem as exc:
            assert exc.status == 401 and "expired" in exc.detail
            return
        await asyncio.sleep(0.05)
    pytest.fail("an expired token was still accepted")


def test_the_cache_keeps_the_most_recently_used_tokens_only() -> None:
    cache = VerifiedTokens(size=2, clock=lambda: 0.0)
    p = Principal("u1", frozenset(), frozenset())
    for name in ("a", "b"):
        cache.put(name, p, {"exp": 100})
    assert cache.get("a") == p  # a is now the most recent
    cache.put("c", p, {"exp": 100})
    assert cache.get("b") is None
    assert cache.get("a") == p and cache.get("c") == p


def test_a_token_without_a_numeric_exp_is_not_cached() -> None:
    cache = VerifiedTokens(clock=lambda: 0.0)
    cache.put("t", Principal("u1", frozenset(), frozenset()), {"exp": "soon"})
    assert cache.get("t") is None
