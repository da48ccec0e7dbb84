"""whctl's settings: where the registry is, the token key, topic partition counts."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from webhooks_common.settings import TopicSizes, env_field


class CliSettings(TopicSizes):
    model_config = SettingsConfigDict(
        env_prefix="WHCTL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    api_url: str | None = env_field(
        "WHCTL_API_URL",
        None,
        "Base URL of the registry API for whctl; default http://127.0.0.1:$REGISTRY_PORT.",
    )
    registry_port: int = env_field("REGISTRY_PORT", 8080, "Registry port (whctl's default API URL uses it).")
    jwt_secret: str | None = env_field(
        "AUTH_JWT_SECRET",
        None,
        "HS256 key whctl signs development tokens with (default: the one in .infra/dev.env).",
    )

    @property
    def api(self) -> str:
        return (self.api_url or f"http://127.0.0.1:{self.registry_port}").rstrip("/")
