"""What this process last saw of each webhook, kept briefly as the base of its next change.

A change is a compare-and-set on the revision `{webhook_id}:{version + 1}` (store.py): a base that is out of
date cannot win, because the revision of the version after it already exists. The insert fails and the
change is redone on a fresh read, as after any lost race. A base that is current spares the read before the
write, so a patch or a delete is two store commands instead of three.

Never used to answer a read: a GET and a list read the store, whatever is kept here. The age limit keeps a
base far younger than the store's revisions (kept for days), which the argument above relies on.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from registry.documents import Webhook


class RecentWebhooks:
    """At most `size` webhooks (the least recently seen go first), each usable for `ttl_s` seconds."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size, self._ttl_s, self._clock = size, ttl_s, clock
        self._seen: OrderedDict[str, tuple[Webhook, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, webhook: Webhook) -> None:
        if webhook.deleted:
            self.forget(webhook.id)
            return
        if self._size <= 0:
            return
        self._seen[webhook.id] = (webhook, self._clock())
        self._seen.move_to_end(webhook.id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def forget(self, webhook_id: str) -> None:
        self._seen.pop(webhook_id, None)

    def base(self, entity_id: str, webhook_id: str) -> Webhook | None:
        """The webhook as last seen here, if that was recent and it belongs to `entity_id`."""
        entry = self._seen.get(webhook_id)
        if entry is None:
            return None
        webhook, seen_at = entry
        if self._clock() - seen_at > self._ttl_s:
            del self._seen[webhook_id]
            return None
        return webhook if webhook.entity_id == entity_id else None
