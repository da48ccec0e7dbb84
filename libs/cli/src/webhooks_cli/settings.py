"""whctl's settings: where the registry is, the token key, topic partition counts."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from webhooks_common.settings import CommonSettings


class CliSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="WHCTL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    api_url: str | None = Field(
        None,
        validation_alias=AliasChoices("WHCTL_API_URL", "api_url"),
        description="Base URL of the registry API for whctl; default http://127.0.0.1:$REGISTRY_PORT.",
    )
    registry_port: int = Field(
        8080,
        validation_alias=AliasChoices("REGISTRY_PORT", "registry_port"),
        description="Registry port (whctl's default API URL uses it).",
    )
    jwt_secret: str | None = Field(
        None,
        validation_alias=AliasChoices("AUTH_JWT_SECRET", "jwt_secret"),
        description="HS256 key whctl signs development tokens with (default: the one in .infra/dev.env).",
    )
    input_partitions: int = Field(
        6,
        ge=1,
        validation_alias=AliasChoices("TOPICS_INPUT_PARTITIONS", "input_partitions"),
        description="Partitions of wink.events and trippay.events when `whctl topics create` makes them.",
    )
    delivery_partitions: int = Field(
        12,
        ge=1,
        validation_alias=AliasChoices("TOPICS_DELIVERY_PARTITIONS", "delivery_partitions"),
        description="Partitions of webhooks.deliveries and the retry topics when `whctl topics create` "
        "makes them (the most deliverers that can share the work).",
    )

    @property
    def api(self) -> str:
        return (self.api_url or f"http://127.0.0.1:{self.registry_port}").rstrip("/")
