"""Wink's event catalogue (spec/event-catalog.tsv) and the subscription patterns built on it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

# The seed data and Wink's UI docs say `booking.created` where the catalogue says `booking.create`.
ALIASES: dict[str, str] = {"booking.created": "booking.create"}
REVERSE_ALIASES: dict[str, str] = {v: k for k, v in ALIASES.items()}


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    source: str
    category: str
    group: str
    label: str


@cache
def catalog() -> tuple[CatalogEntry, ...]:
    text = resources.files("webhooks_common").joinpath("data/event-catalog.tsv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return tuple(CatalogEntry(r["key"], r["source"], r["category"], r["group"], r["label"]) for r in rows)


@cache
def catalog_keys() -> frozenset[str]:
    return frozenset(e.key for e in catalog())


def canonical_type(event_type: str) -> str:
    """The catalogue key for an event type, resolving aliases (`booking.created` -> `booking.create`)."""
    return ALIASES.get(event_type, event_type)


def is_known_type(event_type: str) -> bool:
    return canonical_type(event_type) in catalog_keys()


def is_wildcard(pattern: str) -> bool:
    return pattern.endswith(".*")


def pattern_error(pattern: str) -> str | None:
    """Why `pattern` is not a valid `eventList` item, or None when it is."""
    if is_wildcard(pattern):
        prefix = pattern[:-1]  # keeps the trailing dot
        if len(prefix) < 2 or "*" in prefix:
            return "a wildcard is a prefix followed by `.*`, e.g. `booking.*`"
        if not any(k.startswith(prefix) for k in catalog_keys()):
            return f"no catalogue event starts with `{prefix}`"
        return None
    if "*" in pattern:
        return "`*` is only allowed as a trailing `.*`"
    if not is_known_type(pattern):
        return "not an event type of the catalogue"
    return None


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Does one `eventList` item cover `event_type`? Aliases match both ways."""
    canonical = canonical_type(event_type)
    if is_wildcard(pattern):
        prefix = pattern[:-1]
        return canonical.startswith(prefix) or event_type.startswith(prefix)
    return canonical_type(pattern) == canonical


def event_list_matches(event_list: list[str] | tuple[str, ...], event_type: str) -> bool:
    """Empty means all events."""
    return not event_list or any(pattern_matches(p, event_type) for p in event_list)
