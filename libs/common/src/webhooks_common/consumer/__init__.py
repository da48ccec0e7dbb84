"""The consumer runtime every Kafka consumer group of the platform runs on (see runtime.py)."""

from webhooks_common.consumer.health import add_health_routes, serve_app
from webhooks_common.consumer.offsets import OffsetTracker
from webhooks_common.consumer.outcomes import (
    ConsumerError,
    Outcome,
    Policy,
    Transient,
    Undecodable,
    Unusable,
    default_outcome,
)
from webhooks_common.consumer.runtime import (
    BaseHandler,
    ConsumerRuntime,
    Decoder,
    Handler,
    Inbound,
    RuntimeSettings,
    json_decoder,
    run_replacing,
)

__all__ = [
    "BaseHandler",
    "ConsumerError",
    "ConsumerRuntime",
    "Decoder",
    "Handler",
    "Inbound",
    "OffsetTracker",
    "Outcome",
    "Policy",
    "RuntimeSettings",
    "Transient",
    "Undecodable",
    "Unusable",
    "add_health_routes",
    "default_outcome",
    "json_decoder",
    "run_replacing",
    "serve_app",
]
