"""Create every Kafka topic the system uses, with its declared partitions and configs (idempotent).

The broker runs with `auto.create.topics.enable=false`, so this one-shot step (the compose `topics`
service, the Kubernetes `topics` Job) must finish before the services start. Topics that already exist
are left alone: Kafka can only grow a topic's partition count, and doing so silently would move keys
(URLs) between deliverers mid-stream, so that stays an operator's decision.

    python tools/create_topics.py      # settings from the environment: KAFKA_*, TOPICS_*
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from webhooks_common.kafka import ensure_topics
from webhooks_common.settings import TopicSizes, load_settings
from webhooks_common.topics import Topics, topic_specs


class TopicsSettings(TopicSizes):
    model_config = SettingsConfigDict(
        env_prefix="TOPICS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    timeout_s: float = Field(60.0, gt=0, description="How long to wait for the broker to create the topics.")


async def create(settings: TopicsSettings) -> list[str]:
    specs = topic_specs(
        Topics(settings.topic_prefix),
        input_partitions=settings.input_partitions,
        delivery_partitions=settings.delivery_partitions,
    )
    return await ensure_topics(settings.kafka_bootstrap_servers, specs, timeout=settings.timeout_s)


def main() -> int:
    settings = load_settings(TopicsSettings)
    created = asyncio.run(create(settings))
    print(
        f"topics: created {len(created)} ({', '.join(created) or 'none missing'}) "
        f"on {settings.kafka_bootstrap_servers}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
