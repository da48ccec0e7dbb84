"""The router's Prometheus metrics (default registry, served on the worker's web port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from webhooks_common.config_view import ConfigViewMetrics
from webhooks_common.metrics import LATENCY_BUCKETS

EVENTS_IN = Counter("router_events_total", "Valid input events read, by source and type.", ["source", "type"])
TASKS_OUT = Counter(
    "router_tasks_total", "Delivery tasks written (acknowledged by Kafka), by source.", ["source"]
)
INVALID = Counter(
    "router_invalid_events_total", "Input records sent to the invalid topic, by reason.", ["reason"]
)
SUBSCRIPTIONS = Gauge("router_subscriptions", "Webhook configs held in memory, by state.", ["state"])
EVENT_TO_TASK = Histogram(
    "router_event_to_task_seconds",
    "From an input record's Kafka timestamp to its tasks being acknowledged by Kafka.",
    buckets=LATENCY_BUCKETS,
)
# router_config_ready, _lag_records, _apply_seconds, _skipped_records_total{reason}, _feed_failures_total:
# the config view's (webhooks_common.config_view)
CONFIG = ConfigViewMetrics("router")
SEND_RETRIES = Counter("router_send_retries_total", "Batches whose tasks were re-sent after a Kafka error.")
BATCH_SIZE = Histogram(
    "router_batch_events", "Input events routed per batch.", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000)
)
