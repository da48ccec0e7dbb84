"""docker-compose.yml against the Compose specification schema (vendored by check-jsonschema from
compose-spec/compose-spec, Apache-2.0), plus what the schema cannot know: dependencies that can be
met, replicas that can scale, and a Prometheus config that scrapes the ports the services listen on."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
APP_IMAGE = "wink-webhooks:dev"

Obj = dict[str, Any]


def compose_schema() -> Obj:
    # Read the file without importing check_jsonschema: its CLI needs a newer click than faust allows.
    dist = metadata.distribution("check-jsonschema")
    path = Path(str(dist.locate_file("check_jsonschema/builtin_schemas/vendor/compose-spec.json")))
    schema: Obj = json.loads(path.read_text())
    return schema


def interpolate(value: Any, env: dict[str, str] | None = None) -> str:
    """Compose's `${NAME:-default}` / `${NAME}` interpolation, with the given (else empty) environment."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", sub, str(value))


def service_env(service: Obj) -> dict[str, str]:
    """A service's environment as the container sees it with no variables set on the host."""
    return {k: interpolate(v) for k, v in (service.get("environment") or {}).items()}


@pytest.fixture(scope="module")
def compose() -> Obj:
    loaded: Obj = yaml.safe_load(COMPOSE.read_text())
    return loaded


def app_services(compose: Obj) -> dict[str, Obj]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == APP_IMAGE}


def test_matches_the_compose_specification(compose: Obj) -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_catches_a_misspelt_key(compose: Obj) -> None:
    """The schema is strict enough to matter (additionalProperties on services)."""
    schema = compose_schema()
    broken = json.loads(json.dumps(compose))
    broken["services"]["deliverer"]["healthchek"] = broken["services"]["deliverer"].pop("healthcheck")
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_services_and_their_commands(compose: Obj) -> None:
    apps = app_services(compose)
    commands = {name: s["command"] for name, s in apps.items()}
    assert commands == {
        "topics": ["python", "tools/create_topics.py"],
        "registry": ["python", "-m", "registry"],
        "history": ["python", "-m", "registry", "history"],
        "router": ["python", "-m", "router"],
        "deliverer": ["python", "-m", "deliverer"],
    }
    for service in apps.values():
        assert service["build"]["dockerfile"] == "Dockerfile"
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert compose["services"]["mongo"]["image"] == "mongo:7"
    assert compose["services"]["prometheus"]["image"].startswith("prom/prometheus:")


def test_dependencies_can_be_met(compose: Obj) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}, which has no healthcheck"
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{dep} must run once"
    for name in ("registry", "history", "router", "deliverer"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["registry"]["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_kafka_does_not_auto_create_topics(compose: Obj) -> None:
    env = service_env(compose["services"]["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    for name, service in app_services(compose).items():
        assert service_env(service)["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name


def test_deliverer_can_scale(compose: Obj) -> None:
    """`docker compose up --scale deliverer=3` fails on a fixed host port or container name."""
    deliverer = compose["services"]["deliverer"]
    assert "container_name" not in deliverer
    assert "ports" not in deliverer
    assert "router" in compose["services"] and "ports" not in compose["services"]["router"]


def _port_of(service: Obj, env_name: str) -> int:
    return int(service_env(service)[env_name])


def test_prometheus_scrapes_every_service_where_it_listens(compose: Obj) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = compose["services"]
    expected = {
        "registry": _port_of(services["registry"], "REGISTRY_PORT"),
        "router": _port_of(services["router"], "ROUTER_WEB_PORT"),
        "deliverer": _port_of(services["deliverer"], "DELIVERER_METRICS_PORT"),
        "history": _port_of(services["history"], "REGISTRY_HISTORY_PORT"),
    }
    for name, port in expected.items():
        (sd,) = jobs[name]["dns_sd_configs"]
        # DNS discovery of the compose service name finds every replica of a scaled service.
        assert sd["names"] == [name] and sd["type"] == "A" and sd["port"] == port, name
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f":{port}/" in health, f"{name} healthcheck probes another port than {port}"
    mount = f"./{PROMETHEUS.relative_to(ROOT)}:/etc/prometheus/prometheus.yml:ro"
    assert mount in services["prometheus"]["volumes"]


def test_files_compose_mounts_exist(compose: Obj) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_dockerfile_runs_as_non_root_from_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f in ("${PYTHON_IMAGE}",) for f in froms)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"uv sync --frozen --no-dev --all-packages", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # Everything the image copies is in the build context (.dockerignore must not exclude it).
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
            assert path.split("/")[0] not in ignored, f".dockerignore excludes {path}"


def test_dockerfile_copies_every_workspace_member_manifest() -> None:
    """The dependency layer is built from the manifests alone; uv fails on a missing member."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    copied = re.findall(r"^COPY\s+(\S+)/pyproject\.toml\s", (ROOT / "Dockerfile").read_text(), re.M)
    assert sorted(copied) == sorted(members)
