"""Reading a service's Prometheus page (/metrics), for tools, tests and benchmarks alike."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(metrics_text: str, name: str) -> float | None:
    """The value of the first sample called `name` on a Prometheus text page (None: not on the page)."""
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name:
                return float(s.value)
    return None


def by_label(metrics_text: str, name: str, label: str) -> dict[str, float]:
    """The samples called `name` on a Prometheus text page, summed by the value of one label."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and label in s.labels:
                out[s.labels[label]] = out.get(s.labels[label], 0.0) + float(s.value)
    return out
