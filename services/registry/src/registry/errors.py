"""What can go wrong in the registry's use cases, in its own words: the service raises these, `problems.py`
maps them to HTTP once, and the commands consumer maps them to commit or retry."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One invalid field: `field` is a dotted path in the request body's own names (e.g. `entity.name`)."""

    field: str
    reason: str


class DomainError(Exception):
    """A use case refused or could not be completed; never a dependency failure (those stay as they are)."""

    def __str__(self) -> str:
        return repr(self)  # dataclass fields, not the empty `args` of Exception


@dataclass
class NotFound(DomainError):
    webhook_id: str


@dataclass
class StaleVersion(DomainError):
    """The caller's If-Match names another version than the stored one."""

    current: int
    expected: int


@dataclass
class ConcurrentChange(DomainError):
    """Another writer changed the webhook while this change was applied; retrying on a fresh read can work."""

    given_up: bool = False  # True: retried already without If-Match, still losing the race


@dataclass
class CapReached(DomainError):
    limit: int


@dataclass
class InvalidFields(DomainError):
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class UnreadableDocument(DomainError):
    """A stored document that does not have the shape of a webhook (hand edit, older or newer writer)."""

    webhook_id: str
    reason: str
