"""Topic names and their declared shapes. Services take names from here, never as literals."""

from __future__ import annotations

from dataclasses import dataclass, field

WINK_EVENTS = "wink.events"
TRIPPAY_EVENTS = "trippay.events"
CONFIG = "webhooks.config"
DELIVERIES = "webhooks.deliveries"
ATTEMPTS = "webhooks.attempts"
DLQ = "webhooks.dlq"
INVALID = "webhooks.invalid"
# Requests to change a webhook made by other services (e.g. the deliverer asks to disable one after a 410);
# the registry applies them like API changes, so they are stored and published like any other.
COMMANDS = "webhooks.commands"
# Delay topics for retries; the deliverer maps each retry delay to the smallest tier that covers it.
RETRY_PREFIX = "webhooks.retry."

INPUT_TOPICS = (WINK_EVENTS, TRIPPAY_EVENTS)
SOURCE_BY_TOPIC = {WINK_EVENTS: "wink", TRIPPAY_EVENTS: "trippay"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class _Topic:
    """One topic of `Topics`: its base name with the instance's prefix."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __get__(self, topics: Topics, owner: type[Topics] | None = None) -> str:
        return topics.name(self.base)


@dataclass(frozen=True)
class Topics:
    """Every topic name the system uses, with an optional prefix (tests and environments)."""

    prefix: str = ""

    wink_events = _Topic(WINK_EVENTS)
    trippay_events = _Topic(TRIPPAY_EVENTS)
    config = _Topic(CONFIG)
    deliveries = _Topic(DELIVERIES)
    attempts = _Topic(ATTEMPTS)
    dlq = _Topic(DLQ)
    invalid = _Topic(INVALID)
    commands = _Topic(COMMANDS)

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.wink_events, self.trippay_events)

    def retry(self, tier: str) -> str:
        return self.name(RETRY_PREFIX + tier)

    def source_of(self, topic: str) -> str:
        """`wink` or `trippay` for an input topic name (with prefix)."""
        return SOURCE_BY_TOPIC[topic.removeprefix(self.prefix)]


# Retry tiers: a task waiting `d` seconds goes to the smallest tier >= d and is re-checked there.
RETRY_TIERS: tuple[tuple[str, float], ...] = (
    ("1s", 1.0),
    ("5s", 5.0),
    ("30s", 30.0),
    ("5m", 300.0),
    ("30m", 1800.0),
    ("2h", 7200.0),
)

COMPACT = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000"}
WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}


def topic_specs(
    topics: Topics, *, input_partitions: int = 6, delivery_partitions: int = 12
) -> list[TopicSpec]:
    """All topics with their partition counts and configs (used by `make run`, tests, deploy)."""
    specs = [
        TopicSpec(topics.wink_events, input_partitions, WEEK),
        TopicSpec(topics.trippay_events, input_partitions, WEEK),
        TopicSpec(topics.config, 1, COMPACT),
        TopicSpec(topics.deliveries, delivery_partitions, WEEK),
        TopicSpec(topics.attempts, 3, WEEK),
        TopicSpec(topics.dlq, 3, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(topics.invalid, 3, WEEK),
        TopicSpec(topics.commands, 1, WEEK),
    ]
    specs += [TopicSpec(topics.retry(tier), delivery_partitions, WEEK) for tier, _ in RETRY_TIERS]
    return specs
