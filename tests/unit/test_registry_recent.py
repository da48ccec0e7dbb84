"""The registry's recent webhooks: a base for the next change, only while young and of the same entity."""

from __future__ import annotations

from datetime import UTC, datetime

from registry.documents import NewWebhook, Webhook, new_webhook
from registry.recent import RecentWebhooks

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def hook(webhook_id: str, entity_id: str = "e1", **over: object) -> Webhook:
    made = new_webhook(webhook_id, entity_id, NewWebhook("E", "n", "https://a.example/h"), "u", "x", NOW)
    return made.model_copy(update=over)


def test_a_webhook_seen_moments_ago_is_the_base_of_its_next_change() -> None:
    recent = RecentWebhooks(10, 5.0, Clock())
    recent.remember(hook("w1"))
    base = recent.base("e1", "w1")
    assert base is not None and base.id == "w1" and base.version == 1


def test_a_newer_sight_replaces_the_older() -> None:
    recent = RecentWebhooks(10, 5.0, Clock())
    recent.remember(hook("w1"))
    recent.remember(hook("w1", version=4))
    base = recent.base("e1", "w1")
    assert base is not None and base.version == 4


def test_past_its_age_a_webhook_is_read_again() -> None:
    clock = Clock()
    recent = RecentWebhooks(10, 5.0, clock)
    recent.remember(hook("w1"))
    clock.t += 5.0
    assert recent.base("e1", "w1") is not None
    clock.t += 0.001
    assert recent.base("e1", "w1") is None
    assert len(recent) == 0  # dropped, not kept to be skipped again


def test_another_entity_never_gets_the_base() -> None:
    recent = RecentWebhooks(10, 5.0, Clock())
    recent.remember(hook("w1", entity_id="e1"))
    assert recent.base("e2", "w1") is None
    assert recent.base("e1", "w1") is not None


def test_a_deleted_webhook_is_forgotten() -> None:
    recent = RecentWebhooks(10, 5.0, Clock())
    recent.remember(hook("w1"))
    recent.remember(hook("w1", version=2, deleted=True))
    assert recent.base("e1", "w1") is None
    recent.remember(hook("w2"))
    recent.forget("w2")
    assert recent.base("e1", "w2") is None


def test_the_least_recently_seen_go_first_beyond_the_size() -> None:
    recent = RecentWebhooks(2, 5.0, Clock())
    recent.remember(hook("w1"))
    recent.remember(hook("w2"))
    recent.remember(hook("w1", version=2))  # seen again: now the most recent
    recent.remember(hook("w3"))
    assert [w for w in ("w1", "w2", "w3") if recent.base("e1", w) is not None] == ["w1", "w3"]


def test_size_zero_keeps_nothing() -> None:
    recent = RecentWebhooks(0, 5.0, Clock())
    recent.remember(hook("w1"))
    assert recent.base("e1", "w1") is None and len(recent) == 0
