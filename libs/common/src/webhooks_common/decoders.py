"""The edge decoder of each internal message (webhooks_common.wire): what a consumer hands the runtime for
its topics. A record that does not decode (null, not JSON, a field missing or of the wrong type) raises,
and the runtime sets it aside on `webhooks.invalid` with the reason."""

from __future__ import annotations

from webhooks_common.consumer import json_decoder
from webhooks_common.wire import AttemptRecord, DeadLetter, DeliveryTask, WebhookCommand

decode_task = json_decoder(DeliveryTask, "delivery task")  # webhooks.deliveries and the retry tiers
decode_dead = json_decoder(DeadLetter, "dead letter")  # webhooks.dlq
decode_attempt = json_decoder(AttemptRecord, "attempt record")  # webhooks.attempts
decode_command = json_decoder(WebhookCommand, "command")  # webhooks.commands
