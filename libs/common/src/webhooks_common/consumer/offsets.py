"""Per-partition offset tracking: commit only up to the last contiguous finished record."""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    """Offsets of one partition in the order read; `done()` may come in any order.

    `committable()` is the offset to commit (next to read): one past the longest finished prefix. A task
    that is still in flight (or whose outputs are not yet acked by Kafka) holds the commit back, so a
    crash re-delivers it and everything after it (at-least-once).
    """

    __slots__ = ("_done", "_pending", "_position", "revoked")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._position: int | None = None  # next offset to commit; None until something finished
        self.revoked = False

    def add(self, offset: int) -> None:
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} read after {self._pending[-1]}")
        self._pending.append(offset)

    def done(self, offset: int) -> None:
        self._done.add(offset)
        pending, finished = self._pending, self._done
        while pending and pending[0] in finished:
            off = pending.popleft()
            finished.discard(off)
            self._position = off + 1

    def committable(self) -> int | None:
        return self._position

    def __len__(self) -> int:
        """Tasks read and not finished yet."""
        return len(self._pending)
