"""Pure logic of libs/common: catalogue patterns, messages, secrets, settings, topic specs."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

from tests.support.factories import delivery_task
from webhooks_common import catalog
from webhooks_common.models import DeliveryTask, InputEvent, WebhookConfig
from webhooks_common.secrets import SecretBox, generate_secret, secret_bytes
from webhooks_common.settings import CommonSettings, load_settings
from webhooks_common.topics import CONFIG, Topics, topic_specs


def test_catalogue_has_wink_and_trippay_events() -> None:
    sources = {e.source for e in catalog.catalog()}
    assert sources == {"wink", "trippay"}
    assert len(catalog.catalog()) == 105
    assert catalog.is_known_type("booking.create")
    assert catalog.is_known_type("booking.created")  # the seed's alias
    assert not catalog.is_known_type("booking.exploded")


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        ([], "booking.create", True),  # empty means all
        (["booking.create"], "booking.create", True),
        (["booking.created"], "booking.create", True),
        (["booking.create"], "booking.created", True),
        (["booking.*"], "booking.refund.full", True),
        (["booking.*"], "payee.create", False),
        (["booking.refund.*"], "booking.cancelled", False),
        (["payee.create"], "payee.create.failure", False),
        (["payee.update", "payee.create"], "payee.create", True),
    ],
)
def test_event_list_matching(patterns: list[str], event_type: str, expected: bool) -> None:
    assert catalog.event_list_matches(patterns, event_type) is expected


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("booking.create", None),
        ("booking.created", None),
        ("booking.*", None),
        ("nosuch.*", "no catalogue event starts with `nosuch.`"),
        ("*", "`*` is only allowed as a trailing `.*`"),
        ("booking.*.full", "`*` is only allowed as a trailing `.*`"),
        ("booking.exploded", "not an event type of the catalogue"),
    ],
)
def test_pattern_errors_name_the_reason(pattern: str, error: str | None) -> None:
    assert catalog.pattern_error(pattern) == error


def test_input_event_uses_design_field_names() -> None:
    raw = (
        b'{"id":"e1","type":"booking.create","occurredAt":"2026-11-27T10:00:00Z",'
        b'"entityId":"d5b8","data":{"a":1}}'
    )
    ev = InputEvent.from_bytes(raw)
    assert (ev.id, ev.type, ev.entity_id, ev.data) == ("e1", "booking.create", "d5b8", {"a": 1})
    assert b'"entityId":"d5b8"' in ev.to_bytes()


def test_messages_round_trip_with_schema_version() -> None:
    task = delivery_task("e1", "w1")
    again = DeliveryTask.from_bytes(task.to_bytes())
    assert again == task
    assert again.v == 1 and again.key() == "e1:w1"


def test_generated_secret_signs_like_standard_webhooks() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret_bytes(secret)) == 32
    body, msg_id, ts = b'{"id":"e1"}', "e1:w1", 1_700_000_000
    sig = base64.b64encode(
        hmac.new(secret_bytes(secret), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    )
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1," + sig.decode()}
    # The reference library agrees with the key derivation every service uses.
    wh = Webhook(secret)
    with pytest.raises(Exception, match="timestamp"):
        wh.verify(body, headers)  # too old: proves it got past the format checks to the timestamp
    assert wh.sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode()) == "v1," + sig.decode()


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    token = box.encrypt("whsec_abc")
    assert "whsec_abc" not in token and box.decrypt(token) == "whsec_abc"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(Fernet.generate_key().decode()).decrypt(token)


def test_settings_fail_fast_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRETS_KEY", "not-a-key")
    with pytest.raises(SystemExit):
        load_settings(CommonSettings)
    assert "WEBHOOK_SECRETS_KEY must be a Fernet key" in capsys.readouterr().err


def test_settings_read_design_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("DELIVERY_ALLOW_PRIVATE_TARGETS", "true")
    s = load_settings(CommonSettings)
    assert s.kafka_bootstrap_servers == "k:1" and s.allow_private_targets is True
    with pytest.raises(ValueError, match="WEBHOOK_SECRETS_KEY is not set"):
        s.require_secrets_key()


def test_topic_specs_prefix_every_name_and_compact_config() -> None:
    t = Topics(prefix="t1.")
    specs = topic_specs(t)
    assert all(s.name.startswith("t1.") for s in specs)
    assert len({s.name for s in specs}) == len(specs)
    (config,) = [s for s in specs if s.name == "t1." + CONFIG]
    assert config.config["cleanup.policy"] == "compact"
    assert t.source_of(t.trippay_events) == "trippay"


def test_webhook_config_key_is_idempotent_per_version() -> None:
    cfg = WebhookConfig(
        id="w1",
        entity_id="e",
        entity_name="E",
        name="n",
        enabled=True,
        event_url="https://x",
        version=3,
        updated_at=datetime.now(UTC),
    )
    assert cfg.key() == "w1:3"
