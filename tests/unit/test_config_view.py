"""The config view's pure parts: the version rule, decoding a record, applying records to a sink."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from deliverer.configs import ConfigView
from tests.support.factories import webhook_config
from webhooks_common.config_view import Applied, ConfigApplier, Held, Skip, decide, decode
from webhooks_common.models import WebhookConfig
from webhooks_common.secrets import SecretBox


@pytest.mark.parametrize(
    ("held", "version", "after"),
    [
        (None, 1, Held(1)),  # first record of a webhook
        (Held(5), 6, Held(6)),  # newer replaces
        (Held(5), 5, None),  # equal: the same change published again
        (Held(5), 4, None),  # older: a replay
        (Held(5), None, Held(5, deleted=True)),  # tombstone deletes, remembering the version
        (None, None, Held(0, deleted=True)),  # tombstone of a webhook never seen: remembered as deleted
        (Held(5, deleted=True), None, None),  # a second tombstone changes nothing
        (Held(5, deleted=True), 5, None),  # a stale record after the delete does not bring it back
        (Held(5, deleted=True), 6, Held(6)),  # a newer one does (the rule is one comparison)
    ],
)
def test_version_rule(held: Held | None, version: int | None, after: Held | None) -> None:
    assert decide(held, version) == after


def _cfg(wid: str = "w1", version: int = 1) -> WebhookConfig:
    return webhook_config(wid, "e1", version=version)


def test_decode() -> None:
    good = _cfg()
    assert decode(b"w1", good.to_bytes()) == ("w1", good)
    assert decode(b"w1", None) == ("w1", None)
    reasons = {
        "no_key": decode(None, good.to_bytes()),
        "bad_key": decode(b"\xff\xfe", good.to_bytes()),
        "undecodable": decode(b"w1", b"{not json"),
        "key_mismatch": decode(b"w2", good.to_bytes()),
    }
    for reason, got in reasons.items():
        assert isinstance(got, Skip) and got.reason == reason, got
    schema = decode(b"w1", b'{"v": 2, "id": "w1"}')
    assert isinstance(schema, Skip) and schema.reason == "undecodable"


class RecordingSink:
    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.refuse = refuse

    def put(self, config: WebhookConfig) -> None:
        if config.id == self.refuse:
            raise ValueError("cannot take this one")
        self.calls.append(("put", config.id, config.version))

    def remove(self, webhook_id: str) -> None:
        self.calls.append(("remove", webhook_id, 0))


def test_applier_feeds_the_sink_only_newer_records_and_skips_unusable_ones() -> None:
    sink = RecordingSink(refuse="bad")
    applier = ConfigApplier(sink)
    results = [
        applier.apply(b"w1", _cfg(version=2).to_bytes()),
        applier.apply(b"w1", _cfg(version=1).to_bytes()),  # replay: ignored
        applier.apply(b"w1", b"garbage"),
        applier.apply(b"bad", _cfg("bad").to_bytes()),  # the sink raises: skipped, nothing held
        applier.apply(b"w2", _cfg("w2").to_bytes()),
        applier.apply(b"w1", None),
        applier.apply(b"w1", _cfg(version=2).to_bytes()),  # stale after the delete
    ]
    assert sink.calls == [("put", "w1", 2), ("put", "w2", 1), ("remove", "w1", 0)]
    assert [type(r).__name__ for r in results] == [
        "Applied",
        "NoneType",
        "Skip",
        "Skip",
        "Applied",
        "Applied",
        "NoneType",
    ]
    assert isinstance(results[3], Skip) and results[3].reason == "refused"
    assert applier.held("bad") is None
    assert applier.held("w1") == Held(2, deleted=True)
    # a refused config does not block a later good version of the same webhook
    sink.refuse = None
    again = _cfg("bad", version=2)
    assert applier.apply(b"bad", again.to_bytes()) == Applied("bad", again)


def test_deliverer_local_disable_lasts_until_a_newer_version() -> None:
    view = ConfigView(SecretBox(Fernet.generate_key().decode()))
    applier = ConfigApplier(view)
    applier.apply(b"w1", _cfg(version=3).to_bytes())
    view.mark_disabled("w1")  # after a 410, before the registry's change comes back
    applier.apply(b"w1", _cfg(version=3).to_bytes())  # the same change again (re-read, resync)
    held = view.get("w1")
    assert held is not None and not held.enabled
    applier.apply(b"w1", _cfg(version=4).to_bytes())  # the registry's answer, or any later change
    held = view.get("w1")
    assert held is not None and held.enabled and held.version == 4
    applier.apply(b"w1", None)
    assert view.get("w1") is None and view.removed("w1")
