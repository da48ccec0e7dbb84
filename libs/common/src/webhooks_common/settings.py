"""Settings shared by every service, read from the environment (and `.env` when present).

Names follow ../shared/DESIGN.md. A variable already set in the environment wins over `.env`.
Each service subclasses `CommonSettings` with its own prefix for the rest.
"""

from __future__ import annotations

import sys
from typing import Any, Self, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def env_field(var: str, default: Any, description: str, **constraints: Any) -> Any:
    """A setting read from the environment variable `var` (whatever the class's `env_prefix`); code and
    tests may still pass it by field name (`populate_by_name`). `constraints`: Field's ge, gt, ..."""
    return Field(default, validation_alias=var, description=description, **constraints)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Comma-separated host:port list of Kafka brokers."
    )
    mongo_url: str = env_field(
        "MONGO_URL",
        "mongodb://127.0.0.1:27017/webhooks",
        "MongoDB connection string; the path names the database.",
    )
    topic_prefix: str = env_field(
        "KAFKA_TOPIC_PREFIX", "", "Prefix added to every topic name (isolates test runs and environments)."
    )
    secrets_key: str | None = env_field(
        "WEBHOOK_SECRETS_KEY",
        None,
        "Fernet key (urlsafe base64 of 32 bytes) that encrypts signing secrets at rest and on "
        "the config topic. Required by the registry and the deliverer.",
    )
    allow_private_targets: bool = env_field(
        "DELIVERY_ALLOW_PRIVATE_TARGETS",
        False,
        "Allow webhook URLs resolving to private, loopback or link-local addresses "
        "(local development and tests only).",
    )
    log_level: str = env_field("LOG_LEVEL", "INFO", "Python logging level name.")
    log_format: str = env_field("LOG_FORMAT", "json", "`json` (one object per line) or `text`.")
    gc_threshold: int = env_field(
        "PYTHON_GC_THRESHOLD",
        10_000,
        "Container allocations between two runs of Python's cyclic garbage collector (Python's default is "
        "700), and what exists after start-up is frozen out of its view. 10,000 measured 16-24% less "
        "deliverer CPU per delivery (bench/RESULTS.md). 0: Python's own settings.",
        ge=0,
    )

    @model_validator(mode="after")
    def _check_key(self) -> Self:
        if self.secrets_key is not None:
            from webhooks_common.secrets import validate_key

            validate_key(self.secrets_key)
        return self

    def consumer_group(self, name: str) -> str:
        """A consumer group name carrying the topic prefix, so environments sharing a Kafka stay apart."""
        return f"{self.topic_prefix}{name}"

    def require_secrets_key(self) -> str:
        if not self.secrets_key:
            raise ValueError(
                "WEBHOOK_SECRETS_KEY is not set: generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            )
        return self.secrets_key


class TopicSizes(CommonSettings):
    """The common settings and the partition counts of the topics, for what creates them (`whctl topics
    create`, tools/create_topics.py: one pair of variables for both)."""

    input_partitions: int = env_field(
        "TOPICS_INPUT_PARTITIONS",
        6,
        "Partitions of wink.events and trippay.events when they are created (the router's "
        "ROUTER_INPUT_PARTITIONS must say the same).",
        ge=1,
    )
    delivery_partitions: int = env_field(
        "TOPICS_DELIVERY_PARTITIONS",
        12,
        "Partitions of webhooks.deliveries and the retry topics when they are created: the most "
        "deliverers that can work at once (one consumer group).",
        ge=1,
    )


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or exit with a message a person understands (fail fast at start-up)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(settings)"
            lines.append(f"  {loc}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
