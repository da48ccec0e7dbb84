"""Settings shared by every service, read from the environment (and `.env` when present).

Names follow ../shared/DESIGN.md. A variable already set in the environment wins over `.env`.
Each service subclasses `CommonSettings` with its own prefix for the rest.
"""

from __future__ import annotations

import sys
from typing import Any, Self, TypeVar

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27017/webhooks",
        validation_alias=AliasChoices("MONGO_URL", "mongo_url"),
        description="MongoDB connection string; the path names the database.",
    )
    topic_prefix: str = Field(
        "",
        validation_alias=AliasChoices("KAFKA_TOPIC_PREFIX", "topic_prefix"),
        description="Prefix added to every topic name (isolates test runs and environments).",
    )
    secrets_key: str | None = Field(
        None,
        validation_alias=AliasChoices("WEBHOOK_SECRETS_KEY", "secrets_key"),
        description="Fernet key (urlsafe base64 of 32 bytes) that encrypts signing secrets at rest and on "
        "the config topic. Required by the registry and the deliverer.",
    )
    allow_private_targets: bool = Field(
        False,
        validation_alias=AliasChoices("DELIVERY_ALLOW_PRIVATE_TARGETS", "allow_private_targets"),
        description="Allow webhook URLs resolving to private, loopback or link-local addresses "
        "(local development and tests only).",
    )
    log_level: str = Field(
        "INFO",
        validation_alias=AliasChoices("LOG_LEVEL", "log_level"),
        description="Python logging level name.",
    )
    log_format: str = Field(
        "json",
        validation_alias=AliasChoices("LOG_FORMAT", "log_format"),
        description="`json` (one object per line) or `text`.",
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
