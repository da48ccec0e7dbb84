"""Python's cyclic garbage collector, set for services that allocate many short-lived objects
(PYTHON_GC_THRESHOLD).

Nearly everything a service allocates per record or request is freed by reference counting; the cyclic
collector only finds cycles. By default it runs every 700 net container allocations, so under load it
walks young objects about to be freed anyway, thousands of times a second. Every 10,000 allocations it
measured 16-24% less deliverer CPU per delivery and 12-22% more deliveries/s saturated (bench/RESULTS.md).
What exists once the service has started (modules, app objects, caches) is moved out of the collector's
view (`gc.freeze`), so the rarer full collections do not walk it again and again."""

from __future__ import annotations

import gc

OLDER_GENERATIONS = (20, 20)  # collections of the younger generation between two of the next one


def tune_gc(young_threshold: int) -> None:
    """Apply PYTHON_GC_THRESHOLD, then freeze what the start-up allocated. 0 leaves Python's own settings."""
    if young_threshold <= 0:
        return
    gc.set_threshold(young_threshold, *OLDER_GENERATIONS)
    gc.collect()
    gc.freeze()
