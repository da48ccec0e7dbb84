"""The matching rules: entity, enabled, eventList (empty, exact, `prefix.*`, booking.created alias)."""

from __future__ import annotations

import pytest

from router.index import SubscriptionIndex
from router.matching import compile_subscription, match
from webhooks_common.catalog import catalog_keys, event_list_matches
from webhooks_common.models import WebhookConfig, utcnow


def cfg(
    wid: str = "w1",
    entity: str = "e1",
    events: list[str] | None = None,
    *,
    enabled: bool = True,
    version: int = 1,
    url: str = "https://example.com/hook",
) -> WebhookConfig:
    return WebhookConfig(
        id=wid,
        entity_id=entity,
        entity_name="Entity",
        name="hook",
        enabled=enabled,
        event_url=url,
        event_list=events or [],
        version=version,
        updated_at=utcnow(),
    )


def ids(entity: str, event_type: str, *configs: WebhookConfig) -> list[str]:
    return [s.id for s in match(entity, event_type, [compile_subscription(c) for c in configs])]


def test_empty_event_list_means_every_event() -> None:
    assert ids("e1", "booking.create", cfg()) == ["w1"]
    assert ids("e1", "payee.create", cfg()) == ["w1"]


def test_exact_type() -> None:
    c = cfg(events=["booking.create"])
    assert ids("e1", "booking.create", c) == ["w1"]
    assert ids("e1", "booking.cancelled", c) == []


def test_wildcard_prefix() -> None:
    c = cfg(events=["booking.*"])
    assert ids("e1", "booking.create", c) == ["w1"]
    assert ids("e1", "booking.cancelled", c) == ["w1"]
    assert ids("e1", "property.created", c) == []


@pytest.mark.parametrize(
    ("pattern", "event_type"),
    [("booking.created", "booking.create"), ("booking.create", "booking.created")],
)
def test_booking_created_alias_both_ways(pattern: str, event_type: str) -> None:
    assert ids("e1", event_type, cfg(events=[pattern])) == ["w1"]


def test_other_entity_does_not_match() -> None:
    assert ids("e2", "booking.create", cfg(entity="e1")) == []


def test_disabled_matches_nothing() -> None:
    assert ids("e1", "booking.create", cfg(enabled=False)) == []
    assert ids("e1", "booking.create", cfg(events=["booking.create"], enabled=False)) == []


def test_several_webhooks_each_judged_alone() -> None:
    configs = [
        cfg("a", events=["booking.*"]),
        cfg("b", events=["payee.*"]),
        cfg("c"),
        cfg("d", enabled=False),
        cfg("e", entity="e2"),
    ]
    assert ids("e1", "booking.create", *configs) == ["a", "c"]


PATTERNS = [
    [],
    ["booking.create"],
    ["booking.created"],
    ["booking.*"],
    ["payee.*", "booking.cancelled"],
    ["property.*", "booking.created"],
    ["b.*"],
]


@pytest.mark.parametrize("patterns", PATTERNS)
def test_compiled_event_list_agrees_with_catalogue_rules(patterns: list[str]) -> None:
    sub = compile_subscription(cfg(events=patterns))
    for event_type in sorted(catalog_keys() | {"booking.created"}):
        assert sub.covers(event_type) == event_list_matches(patterns, event_type), (patterns, event_type)


def test_index_lookup_follows_changes() -> None:
    index = SubscriptionIndex()
    index.put(cfg(events=["booking.create"]))
    assert [s.id for s in index.lookup("e1", "booking.create")] == ["w1"]
    # change of eventList (the memoised answer must not survive it)
    index.put(cfg(events=["payee.*"], version=2))
    assert index.lookup("e1", "booking.create") == ()
    assert [s.id for s in index.lookup("e1", "payee.create")] == ["w1"]
    # disable, enable
    index.put(cfg(events=["payee.*"], version=3, enabled=False))
    assert index.lookup("e1", "payee.create") == ()
    assert index.enabled_count() == 0
    index.put(cfg(events=["payee.*"], version=4))
    assert index.enabled_count() == 1
    # delete
    index.remove("w1")
    assert index.lookup("e1", "payee.create") == ()
    assert len(index) == 0


def test_index_move_to_another_entity_stops_matching_the_old_one() -> None:
    index = SubscriptionIndex()
    index.put(cfg(entity="e1"))
    assert [s.id for s in index.lookup("e1", "booking.create")] == ["w1"]
    index.put(cfg(entity="e2", version=2))
    assert index.lookup("e1", "booking.create") == ()
    assert [s.id for s in index.lookup("e2", "booking.create")] == ["w1"]


def test_index_keeps_what_it_is_given_the_version_rule_is_the_config_views() -> None:
    # the index is a sink: the config view (webhooks_common.config_view, tests/unit/test_config_view.py)
    # decides which record is newer
    index = SubscriptionIndex()
    index.put(cfg(version=5, url="https://new.example.com"))
    index.put(cfg(version=4, url="https://given.example.com"))
    held = index.get("w1")
    assert held is not None and held.url == "https://given.example.com"


def test_index_remove_of_unknown_webhook_is_a_no_op() -> None:
    index = SubscriptionIndex()
    index.remove("nope")
    assert len(index) == 0
