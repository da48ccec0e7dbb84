"""The HTTP side: one pooled aiohttp session, one POST per attempt, no redirects, a capped snippet."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from deliverer.classify import TargetRefused
from deliverer.ssrf import GuardedConnector
from webhooks_common.urls import SEND_POLICY, check_url


@dataclass(slots=True)
class HttpResult:
    status: int | None
    error: BaseException | None
    retry_after: str | None
    snippet: str | None
    duration_s: float


def make_session(
    *, timeout_s: float, max_connections: int, allow_private: bool, user_agent: str
) -> aiohttp.ClientSession:
    # keep-alive pool sized to our in-flight cap; the SSRF guard lives in the connector (connect time).
    connector_cls = aiohttp.TCPConnector if allow_private else GuardedConnector
    connector = connector_cls(limit=max_connections, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers={"user-agent": user_agent},
        skip_auto_headers=("content-type",),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # integrators' cookies must not leak between webhooks
    )


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], snippet_cap: int
) -> HttpResult:
    t0 = time.perf_counter()
    # The registry's URL rule, so that what it accepted is sent; the addresses are checked at connect time.
    target = check_url(url, SEND_POLICY)
    if target.error:
        return HttpResult(None, TargetRefused(f"{target.error}: {url[:100]}"), None, None, 0.0)
    try:
        async with session.post(target.url, data=body, headers=headers, allow_redirects=False) as resp:
            raw = await resp.content.read(snippet_cap) if snippet_cap else b""
            snippet = raw.decode("utf-8", "replace") if raw else None
            return HttpResult(
                resp.status, None, resp.headers.get("retry-after"), snippet, time.perf_counter() - t0
            )
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return HttpResult(None, exc, None, None, time.perf_counter() - t0)
