"""The Grafana dashboard only queries metrics the services really export (names drift otherwise, and a
panel over a renamed metric shows "No data" rather than an error)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "webhooks-dashboard.json"

# Series Prometheus makes itself, not the services.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "le",
}  # fmt: skip


def _sample_names(registry: CollectorRegistry) -> set[str]:
    """The series names a registry exposes, whether or not a labelled child exists yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created", ""),
        "gauge": ("",),
        "info": ("_info",),
    }
    names = set()
    for family in registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def exported_by_service() -> dict[str, set[str]]:
    import router.metrics  # noqa: F401  (registers the router's metrics on the default registry)
    from deliverer.metrics import DelivererMetrics
    from registry.app import Metrics as RegistryMetrics

    return {
        # The router serves the default registry (its own metrics plus process_* and python_*).
        "router": _sample_names(REGISTRY),
        "deliverer": _sample_names(DelivererMetrics().registry),
        "registry": _sample_names(RegistryMetrics().registry),
    }


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, labels,
    label values, durations or numbers."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors, [$__rate_interval]
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        if not m.group(2) and m.group(1) not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from _panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(registry_http_request_seconds_bucket{job="x",'
        'route=~"a|b"}[$__rate_interval]))) / on(instance) group_left(pod) max(router_config_ready) > bool 0'
    )
    assert metric_names(expr) == {"registry_http_request_seconds_bucket", "router_config_ready"}
    assert metric_names('sum(rate(deliverer_attempts_total{outcome="success"}[5m])) or vector(0)') == {
        "deliverer_attempts_total"
    }


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    panels = list(_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["type"] == "prometheus"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used = {m for e in exprs(dashboard) for m in re.findall(r"\$\{?(\w+)", e)} - {"__rate_interval"}
    used |= {
        m
        for p in panels
        for m in re.findall(r"\$\{?(\w+)", json.dumps(p.get("datasource", {})))
        if not m.startswith("__")
    }
    assert used <= variables, f"undefined dashboard variables: {used - variables}"


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    exported = exported_by_service()
    known = set().union(*exported.values()) | PROMETHEUS_SERIES
    queried = {name for e in exprs(dashboard) for name in metric_names(e)}
    unknown = queried - known
    assert not unknown, f"dashboard queries metrics no service exports: {sorted(unknown)}"
    for service, names in exported.items():
        assert queried & {n for n in names if n.startswith(f"{service}_")}, f"no panel for the {service}"
