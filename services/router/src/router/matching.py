"""Which subscriptions an event goes to (pure).

`Subscription` is a WebhookConfig compiled for the hot path: its eventList is turned once into a set of
catalogue keys and a tuple of wildcard prefixes, with the same meaning as
`webhooks_common.catalog.event_list_matches` (unit tests check the two agree on the whole catalogue).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from webhooks_common.catalog import canonical_type, is_wildcard
from webhooks_common.models import WebhookConfig


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    entity_id: str
    enabled: bool
    url: str
    version: int
    event_list: tuple[str, ...]
    all_events: bool  # empty eventList
    exact: frozenset[str]  # canonical catalogue keys named in eventList
    prefixes: tuple[str, ...]  # `booking.` for `booking.*`
    # JSON fragments of the DeliveryTask value, encoded once per config rather than once per task.
    id_json: bytes = field(repr=False, compare=False)
    url_json: bytes = field(repr=False, compare=False)
    url_key: bytes = field(repr=False, compare=False)  # Kafka key of its tasks: the URL, UTF-8
    # `<escaped id>"`: closes the task id string `"<event id>:<webhook id>"` (JSON escaping is per character)
    task_id_tail: bytes = field(repr=False, compare=False)
    # `,"webhook_version":<n>,"url":"<url>"`
    version_url_json: bytes = field(repr=False, compare=False)

    def covers(self, event_type: str) -> bool:
        """Does the eventList cover `event_type`? (aliases match both ways, as in the catalogue module)."""
        if self.all_events:
            return True
        canonical = canonical_type(event_type)
        if canonical in self.exact:
            return True
        return any(canonical.startswith(p) or event_type.startswith(p) for p in self.prefixes)


def compile_subscription(cfg: WebhookConfig) -> Subscription:
    patterns = tuple(cfg.event_list)
    return Subscription(
        id=cfg.id,
        entity_id=cfg.entity_id,
        enabled=cfg.enabled,
        url=cfg.event_url,
        version=cfg.version,
        event_list=patterns,
        all_events=not patterns,
        exact=frozenset(canonical_type(p) for p in patterns if not is_wildcard(p)),
        prefixes=tuple(p[:-1] for p in patterns if is_wildcard(p)),
        id_json=orjson.dumps(cfg.id),
        url_json=orjson.dumps(cfg.event_url),
        url_key=cfg.event_url.encode(),
        task_id_tail=orjson.dumps(cfg.id)[1:],
        version_url_json=b',"webhook_version":%d,"url":%s' % (cfg.version, orjson.dumps(cfg.event_url)),
    )


def match(entity_id: str, event_type: str, subscriptions: Iterable[Subscription]) -> list[Subscription]:
    """The subscriptions an event of `event_type` for `entity_id` is delivered to.

    A webhook matches when it belongs to the event's entity, is enabled and its eventList covers the type.
    """
    return [s for s in subscriptions if s.enabled and s.entity_id == entity_id and s.covers(event_type)]
