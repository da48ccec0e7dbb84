"""Our signatures verify with the `standardwebhooks` reference library (not with our own code)."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliverer.signing import headers
from webhooks_common.secrets import generate_secret, secret_bytes

BODY = '{"id":"ev1","type":"booking.create","data":{"name":"Zoë"}}'.encode()


def test_single_secret_verifies() -> None:
    secret = generate_secret()
    h = headers([secret_bytes(secret)], "ev1:w1", int(time.time()), BODY, "test")
    assert h["content-type"] == "application/json" and h["webhook-id"] == "ev1:w1"
    assert Webhook(secret).verify(BODY, h)["data"]["name"] == "Zoë"


def test_rotation_both_secrets_verify_and_a_stranger_does_not() -> None:
    old, new = generate_secret(), generate_secret(64)
    h = headers([secret_bytes(old), secret_bytes(new)], "ev1:w1", int(time.time()), BODY, "test")
    assert len(h["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, h)
    Webhook(new).verify(BODY, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, h)


def test_tampered_body_fails() -> None:
    secret = generate_secret()
    h = headers([secret_bytes(secret)], "ev1:w1", int(time.time()), BODY, "test")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"ev1", b"ev2"), h)
