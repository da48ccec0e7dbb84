"""`python -m registry` serves the API; `python -m registry resync` republishes every config;
`python -m registry token --sub u --entity e` prints a development token (HS256, AUTH_JWT_SECRET);
`python -m registry history` runs the delivery-history writer (its own process and consumer group)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web

from registry.settings import RegistrySettings
from webhooks_common.gc_tuning import tune_gc
from webhooks_common.logging import configure_logging
from webhooks_common.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registry", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the HTTP API (default)")
    sub.add_parser("resync", help="republish every webhook config to the config topic, then exit")
    sub.add_parser("history", help="run the delivery-history writer (webhooks.attempts/dlq -> store)")
    tok = sub.add_parser("token", help="print a development bearer token signed with AUTH_JWT_SECRET")
    tok.add_argument("--sub", default="dev-user")
    tok.add_argument("--entity", action="append", default=[], help="managing entity id (repeatable)")
    tok.add_argument("--scope", default="account.read account.write account.remove")
    tok.add_argument("--ttl", type=float, default=3600)
    args = parser.parse_args(argv)

    settings = load_settings(RegistrySettings)
    configure_logging("registry", settings.log_level, settings.log_format)
    if args.command == "token":
        from webhooks_common.tokens import mint_token

        if not settings.jwt_secret:
            print("AUTH_JWT_SECRET is not set", file=sys.stderr)
            return 2
        print(mint_token(settings.jwt_secret, args.sub, args.entity, args.scope.split(), args.ttl))
        return 0
    if args.command == "history":
        from registry.history.writer import serve_forever

        tune_gc(settings.gc_threshold)
        asyncio.run(serve_forever(settings))
        return 0
    if args.command == "resync":
        from registry.resync import resync

        count = asyncio.run(resync(settings))
        print(f"republished {count} webhook configs")
        return 0

    from registry.app import build_app
    from registry.loop import new_event_loop

    # run_app turns SIGTERM/SIGINT into a graceful shutdown: in-flight requests finish, background
    # tasks are cancelled, the producer flushes and the clients close.
    app = build_app(settings)
    tune_gc(settings.gc_threshold)
    web.run_app(
        app,
        loop=new_event_loop(settings.event_loop),
        host=settings.host,
        port=settings.port,
        access_log=None,
        shutdown_timeout=10,
        print=lambda msg: print(msg, file=sys.stderr),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
