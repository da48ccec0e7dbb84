"""Environment names in docker-compose.yml and the Kubernetes manifests exist in the settings classes of
the process that reads them, and the values given there pass those classes' validation. A renamed
setting, a typo, or an invalid dev key fails here instead of being silently ignored at run time
(the settings classes ignore unknown variables)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from deliverer.settings import DelivererSettings
from registry.settings import RegistrySettings
from router.settings import RouterSettings
from tests.unit.test_deploy_compose import COMPOSE, app_services, service_env
from tests.unit.test_deploy_k8s import BASE, DEV, container_env, containers, render
from tools.create_topics import TopicsSettings

# What each container command runs, and the settings class that process loads.
SETTINGS_BY_COMMAND: dict[tuple[str, ...], type[BaseSettings]] = {
    ("python", "-m", "registry"): RegistrySettings,
    ("python", "-m", "registry", "history"): RegistrySettings,
    ("python", "-m", "router"): RouterSettings,
    ("python", "-m", "deliverer"): DelivererSettings,
    ("python", "tools/create_topics.py"): TopicsSettings,
}


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable (upper case) -> field name, as pydantic-settings resolves them: a
    validation alias replaces the prefixed name."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper(): field_name for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names[alias.upper()] = field_name
        else:
            names[prefix + field_name.upper()] = field_name
    return names


def load_with(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build settings from exactly `env`: the machine's own variables and `.env` are kept out."""
    for name in env_names(cls):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls(_env_file=None)


def test_env_names_follow_pydantic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    names = env_names(RegistrySettings)
    assert names["REGISTRY_PORT"] == "port"
    assert names["AUTH_JWT_SECRET"] == "jwt_secret"  # alias, no prefix
    assert names["KAFKA_BOOTSTRAP_SERVERS"] == "kafka_bootstrap_servers"
    assert "REGISTRY_JWT_SECRET" not in names
    settings = load_with(
        DelivererSettings, {"DELIVERER_METRICS_PORT": "9123", "LOG_LEVEL": "DEBUG"}, monkeypatch
    )
    assert (settings.metrics_port, settings.log_level) == (9123, "DEBUG")


# ---------------------------------------------------------------- docker-compose.yml


def compose_apps() -> list[tuple[str, type[BaseSettings], dict[str, str]]]:
    import yaml

    compose = yaml.safe_load(COMPOSE.read_text())
    return [
        (name, SETTINGS_BY_COMMAND[tuple(s["command"])], service_env(s))
        for name, s in sorted(app_services(compose).items())
    ]


@pytest.mark.parametrize(("service", "cls", "env"), compose_apps(), ids=[a[0] for a in compose_apps()])
def test_compose_env_names_exist_and_values_load(
    service: str, cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = set(env) - set(env_names(cls))
    assert not unknown, f"{service}: {cls.__name__} has no setting for {sorted(unknown)}"
    settings = load_with(cls, env, monkeypatch)  # raises on an invalid value (e.g. a bad Fernet key)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    if service in ("registry", "deliverer"):
        # Both need the same key: the registry encrypts signing secrets, the deliverer decrypts them.
        assert settings.secrets_key == dict(compose_apps_by_name())["registry"]["WEBHOOK_SECRETS_KEY"]
        assert settings.allow_private_targets is True  # the dev profile


def compose_apps_by_name() -> dict[str, dict[str, str]]:
    return {name: env for name, _cls, env in compose_apps()}


def test_compose_partitions_agree() -> None:
    env = compose_apps_by_name()
    assert env["router"]["ROUTER_INPUT_PARTITIONS"] == env["topics"]["TOPICS_INPUT_PARTITIONS"]


def test_compose_dev_profile_is_overridable_from_the_host() -> None:
    """Every secret in the compose file is a `${NAME:-dev default}`: the operator's value wins."""
    import yaml

    raw = yaml.safe_load(COMPOSE.read_text())
    for name in ("registry", "deliverer"):
        environment = raw["services"][name]["environment"]
        for var in ("WEBHOOK_SECRETS_KEY", "AUTH_JWT_SECRET", "DELIVERY_ALLOW_PRIVATE_TARGETS"):
            if var in environment:
                assert str(environment[var]).startswith("${" + var + ":-"), f"{name}.{var}"


# ---------------------------------------------------------------- Kubernetes


def k8s_containers() -> list[tuple[str, str, type[BaseSettings], dict[str, str | None]]]:
    cases = []
    for directory in (BASE, DEV):
        objs = render(directory)
        for obj in objs:
            for c in containers(obj):
                cls = SETTINGS_BY_COMMAND[tuple(c["command"])]
                cases.append((directory.name, c["name"], cls, container_env(objs, c)))
    return cases


@pytest.mark.parametrize(
    ("kustomization", "container", "cls", "env"),
    k8s_containers(),
    ids=[f"{k}/{c}" for k, c, _cls, _env in k8s_containers()],
)
def test_k8s_env_names_exist_and_values_load(
    kustomization: str,
    container: str,
    cls: type[BaseSettings],
    env: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unknown = set(env) - set(env_names(cls))
    assert not unknown, f"{kustomization}/{container}: {cls.__name__} has no setting for {sorted(unknown)}"
    if None in env.values():
        # The base leaves the Secret to the operator; the dev overlay ships one, so it is loaded there.
        assert kustomization == "base"
        return
    settings = load_with(cls, {k: v for k, v in env.items() if v is not None}, monkeypatch)
    assert settings.kafka_bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    if kustomization == "dev" and container == "registry":  # the API (the history writer takes no URLs)
        assert settings.allow_http is True and settings.allow_private_targets is True


def test_every_k8s_container_is_checked() -> None:
    checked = {(k, c) for k, c, _cls, _env in k8s_containers()}
    assert {"registry", "router", "deliverer", "history", "topics"} <= {c for k, c in checked if k == "dev"}
