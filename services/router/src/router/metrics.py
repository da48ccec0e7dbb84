"""The router's Prometheus metrics (default registry, served on the worker's web port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
CONFIG_LAG = Gauge("router_config_lag_records", "Config records written but not yet applied by this worker.")
CONFIG_APPLY = Histogram(
    "router_config_apply_seconds",
    "From a config change (changed_at_ms, else the record timestamp) to this worker applying it.",
    buckets=LATENCY_BUCKETS,
)
CONFIG_READY = Gauge("router_config_ready", "1 once this worker has read the config topic up to its end.")
SEND_RETRIES = Counter("router_send_retries_total", "Batches whose tasks were re-sent after a Kafka error.")
BATCH_SIZE = Histogram(
    "router_batch_events", "Input events routed per batch.", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000)
)
