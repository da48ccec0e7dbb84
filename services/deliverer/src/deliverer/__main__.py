"""`python -m deliverer`: run one deliverer until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

from deliverer.app import Deliverer
from deliverer.settings import DelivererSettings
from webhooks_common.gc_tuning import tune_gc
from webhooks_common.logging import configure_logging
from webhooks_common.settings import load_settings


async def _run(settings: DelivererSettings) -> int:
    deliverer = Deliverer(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, deliverer.request_stop)
    async with deliverer:
        tune_gc(settings.gc_threshold)  # after start-up, so that what it allocated is frozen
        print(f"deliverer ready metrics_port={deliverer.metrics_port}", file=sys.stderr, flush=True)
        await deliverer.wait()
    return 1 if deliverer.failed else 0


def main() -> None:
    settings = load_settings(DelivererSettings)
    try:
        settings.require_secrets_key()
    except ValueError as exc:
        print(f"invalid configuration for DelivererSettings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging("deliverer", settings.log_level, settings.log_format)
    raise SystemExit(asyncio.run(_run(settings)))


if __name__ == "__main__":
    main()
