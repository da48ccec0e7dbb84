"""Delivery history: the writer that stores `webhooks.attempts` and `webhooks.dlq`, the queries behind the
history API, resend and test events, stats and auto-disable (see the registry README)."""
