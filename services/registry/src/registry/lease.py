"""One outbox publisher at a time across registry processes: a lease kept in the store.

Two publishers that read overlapping pending sets can each send a revision of one webhook, and the later
send can carry the older revision. The compacted config topic then keeps a stale config (or a config after
its tombstone) for every reader that starts from it. So only the holder of this lease publishes.

The lease is a sequence of documents `{_id: epoch, owner, until}`: taking or renewing it inserts the next
epoch, and an insert under a unique `_id` is atomic on every backend (FerretDB's conditional updates are
not). The newest epoch says who holds it and until when. The holder renews long before `until` and starts
a batch only while its lease outlives the batch's sends (the sink's bounded delivery time), so a holder
that stalls cannot land a send after another process took over. A process that stops hands the lease back
(an epoch that has already ended); after a crash the others wait until its `until` has passed.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

# Clocks of two registry hosts may disagree by this much: a holder gives its lease up this early, and the
# others take it over this late.
SKEW_S = 0.5
KEEP_EPOCHS = 20  # older epoch documents are removed (only the newest decides)


class Lease(Protocol):
    """The publisher's port: `acquire` says whether this process may send a batch now (taking or renewing the
    lease when due); `release` hands it back."""

    async def acquire(self) -> bool: ...
    async def release(self) -> None: ...


class SoleLease:
    """Always held: for a publisher that is alone by construction (unit tests, tools)."""

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


@dataclass(frozen=True)
class Epoch:
    number: int
    owner: str
    until: float  # wall-clock seconds


def claim(newest: Epoch | None, me: str, now: float, renew_within: float) -> int | None:
    """The epoch this process should insert now to take or keep the lease, or None to leave it be.

    Nobody held it yet: the first. This process holds it: the next, once fewer than `renew_within` seconds
    are left (or it has ended). Another process holds it: the next, once its end plus the clock skew has
    passed (a crashed holder, or one that handed it back)."""
    if newest is None:
        return 1
    if newest.owner == me:
        return newest.number + 1 if newest.until - now < renew_within else None
    return newest.number + 1 if now > newest.until + SKEW_S else None


def send_budget_s(lease_s: float) -> tuple[float, float]:
    """(sink timeout, least lease left to start a batch): a batch's records are acknowledged or given up
    within three sink timeouts (a metadata wait, the request, one retry), so a batch starts only with that
    much left."""
    timeout = lease_s / 5
    return timeout, 3 * timeout + SKEW_S


class StoreLease:
    """The lease on a store collection; `acquire` is called before every drain and costs a query only
    when the lease is due for renewal (holder) or may be free (others, at most once per `look_every_s`)."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        lease_s: float,
        look_every_s: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._col, self._lease_s, self._look_every = collection, lease_s, look_every_s
        self.owner = owner or uuid.uuid4().hex
        self._clock, self._mono = clock, monotonic
        self._renew_within = lease_s * 0.8  # renew after a fifth of it has passed
        self._least_to_send = send_budget_s(lease_s)[1]
        self._epoch = 0  # the epoch this process holds, while it does
        self._held_until = 0.0  # monotonic; ends SKEW_S before the others may take it
        self._next_look = 0.0

    @property
    def held(self) -> bool:
        return self._mono() < self._held_until

    def _may_send(self) -> bool:
        return self._held_until - self._mono() >= self._least_to_send

    async def acquire(self) -> bool:
        mono = self._mono()
        if self._held_until - mono > self._renew_within - SKEW_S:  # (held_until is SKEW_S short)
            return True
        if not self.held and mono < self._next_look:
            return False
        self._next_look = mono + self._look_every
        newest = await self._newest()
        if newest is not None and newest.owner != self.owner and self.held:
            # Another process took it while this one thought it held it: clocks disagree beyond SKEW_S.
            log.error("outbox lease taken over early; check the clocks", extra={"holder": newest.owner})
            self._held_until = 0.0
            return False
        wall = self._clock()
        number = claim(newest, self.owner, wall, self._renew_within)
        if number is None:
            return self._may_send()  # ours and not due, or another's and not ended
        try:
            await self._col.insert_one({"_id": number, "owner": self.owner, "until": wall + self._lease_s})
        except DuplicateKeyError:
            self._held_until = 0.0  # another process took this epoch first
            return False
        if not self.held:
            log.info("outbox lease taken: this registry publishes", extra={"epoch": number})
        self._epoch, self._held_until = number, mono + self._lease_s - SKEW_S
        if number % KEEP_EPOCHS == 0:
            await self._col.delete_many({"_id": {"$lt": number - KEEP_EPOCHS}})
        return self._may_send()

    async def release(self) -> None:
        """Hand the lease back on a clean stop, so another registry publishes at its next look."""
        if not self.held:
            return
        self._held_until = 0.0
        with contextlib.suppress(DuplicateKeyError):  # already someone else's
            await self._col.insert_one({"_id": self._epoch + 1, "owner": self.owner, "until": 0.0})

    async def _newest(self) -> Epoch | None:
        doc = await self._col.find_one({}, sort=[("_id", DESCENDING)])
        if doc is None:
            return None
        return Epoch(int(doc["_id"]), str(doc.get("owner", "")), float(doc.get("until", 0.0)))
