"""In-memory stand-ins for the outbox store and the config sink: what the publisher's unit tests count
(reads, marks, sends). The real store and Kafka are in tests/integration/test_registry_outbox.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.support.factories import stored_webhook_doc


def doc(webhook_id: str, version: int, deleted: bool = False) -> dict[str, Any]:
    return stored_webhook_doc(_id=webhook_id, version=version, deleted=deleted)


class Outbox:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.reads = 0
        self.marks: list[list[tuple[str, int]]] = []
        self.removed: list[tuple[str, int]] = []

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        self.reads += 1
        return self.docs[:limit]

    async def mark_all_published(self, changes: Sequence[tuple[str, int]]) -> int:
        self.marks.append(list(changes))
        marked = {(d["_id"], d["version"]) for d in self.docs} & set(changes)
        self.docs = [d for d in self.docs if (d["_id"], d["version"]) not in marked]
        return len(marked)

    async def remove_deleted(self, webhook_id: str, version: int) -> bool:
        self.removed.append((webhook_id, version))
        self.docs = [d for d in self.docs if (d["_id"], d["version"]) != (webhook_id, version)]
        return True


class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, key: bytes, value: bytes | None) -> None:
        self.sent.append(key)
