"""Pure rules of the registry: URL and event-list validation, auth claims/scopes, problem mapping,
secret rotation, If-Match parsing, the command error policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo.errors
import pytest
from aiohttp import web
from aiokafka.errors import KafkaConnectionError
from bson.int64 import Int64

from registry.auth import Principal, authorize, bearer_token, principal_from_claims
from registry.commands import outcome_for
from registry.documents import (
    StoredSecret,
    WebhookChanges,
    change,
    changed_fields,
    config_record,
    current_secret,
    from_doc,
    rotate_secrets,
    to_doc,
)
from registry.errors import (
    CapReached,
    ConcurrentChange,
    FieldError,
    InvalidFields,
    NotFound,
    StaleVersion,
    UnreadableDocument,
)
from registry.handlers import parse_if_match
from registry.openapi import build_openapi
from registry.problems import Problem, problem_for
from registry.routes import ROUTES
from registry.validation import check_fields, normalize_event_list
from tests.support.factories import stored_webhook_doc
from webhooks_common.consumer import Outcome, Undecodable
from webhooks_common.urls import UrlPolicy, url_error

STRICT = UrlPolicy()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/x", "https"),
        ("https://u:p@example.com/x", "credentials"),
        ("https://10.0.0.1/x", "private"),
        ("https://192.168.1.1/x", "private"),
        ("https://127.0.0.1/x", "private"),
        ("https://169.254.169.254/x", "private"),
        ("https://[::1]/x", "private"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("https://localhost/x", "loopback"),
        ("https:///x", "host"),
        ("ftp://example.com/x", "https"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com:99999/x", "valid URL"),
        ("https://example.com/" + "a" * 2100, "2048"),
    ],
)
def test_refused_urls(url: str, words: str) -> None:
    why = url_error(url, STRICT)
    assert why is not None and words in why


def test_accepted_urls_and_switches() -> None:
    assert url_error("https://hooks.example.com:8443/wink?x=1", STRICT) is None
    assert url_error("https://8.8.8.8/hook", STRICT) is None
    assert url_error("http://127.0.0.1:9000/x", UrlPolicy(allow_http=True, allow_private=True)) is None
    assert "private" in (url_error("http://127.0.0.1/x", UrlPolicy(allow_http=True)) or "")
    assert "https" in (url_error("http://example.com/x", UrlPolicy(allow_private=True)) or "")


def test_event_list_deduplicates_and_names_unknown_items() -> None:
    events, errors = normalize_event_list(["booking.created", "booking.*", "booking.created", "nope", "x*"])
    assert events == ["booking.created", "booking.*"]
    assert [e.field for e in errors] == ["eventList[3]", "eventList[4]"]
    assert "`nope`" in errors[0].reason


def test_entity_must_match_the_path() -> None:
    _, errors = check_fields({"entity": {"identifier": "b", "name": "B"}}, "a", STRICT)
    assert [e.field for e in errors] == ["entity.identifier"]
    fields, errors = check_fields({"entity": {"identifier": "a", "name": "A"}, "event_list": []}, "a", STRICT)
    assert errors == [] and fields["event_list"] == []


def test_claims_and_scopes() -> None:
    p = principal_from_claims({"sub": "u1", "scope": "account.read account.write", "entities": ["e1"]})
    assert p == Principal("u1", frozenset({"account.read", "account.write"}), frozenset({"e1"}))
    authorize(p, "account.read", "e1")
    with pytest.raises(Problem) as exc:
        authorize(p, "account.remove", "e1")
    assert exc.value.status == 403
    with pytest.raises(Problem) as exc:
        authorize(p, "account.read", "e2")
    assert exc.value.status == 403
    for bad in ({"scope": "x"}, {"sub": "u", "entities": "e1"}, {"sub": "u", "scope": 3}):
        with pytest.raises(Problem) as exc:
            principal_from_claims(bad)
        assert exc.value.status == 401
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(Problem) as exc:
            bearer_token(header)
        assert exc.value.status == 401
    assert bearer_token("Bearer t.o.k") == "t.o.k"


def test_problem_mapping() -> None:
    assert problem_for(pymongo.errors.ServerSelectionTimeoutError("down")).status == 503
    assert problem_for(pymongo.errors.AutoReconnect("down")).status == 503
    assert problem_for(pymongo.errors.DuplicateKeyError("dup")).status == 500
    assert problem_for(web.HTTPNotFound()).status == 404
    assert problem_for(web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)).status == 413
    p = problem_for(web.HTTPMethodNotAllowed("PUT", ["GET"]))
    assert p.status == 405 and p.headers["Allow"] == "GET"
    assert problem_for(RuntimeError("boom")).body()["detail"] == "unexpected error; it has been logged"


def test_if_match() -> None:
    assert parse_if_match(None) is None and parse_if_match("*") is None
    assert parse_if_match("3") == parse_if_match('"3"') == parse_if_match('W/"3"') == 3
    with pytest.raises(Problem):
        parse_if_match("abc")


def test_rotation_keeps_the_old_secret_for_the_overlap_only() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    secrets = [StoredSecret(encrypted="a", created_at=t0)]
    rotated, until = rotate_secrets(secrets, "b", t0 + timedelta(hours=1), timedelta(hours=24))
    assert [s.encrypted for s in rotated] == ["a", "b"] and until == t0 + timedelta(hours=25)
    assert current_secret(rotated).encrypted == "b"
    # A second rotation after the overlap drops the expired one.
    again, until = rotate_secrets(rotated, "c", t0 + timedelta(hours=30), timedelta(hours=24))
    assert [s.encrypted for s in again] == ["b", "c"] and current_secret(again).encrypted == "c"
    none_left, until = rotate_secrets(secrets, "b", t0, timedelta(0))
    assert [s.encrypted for s in none_left] == ["b"] and until is None


def test_command_errors_retry_or_are_set_aside() -> None:
    assert outcome_for(Undecodable("bad json")) is Outcome.DEAD_LETTER
    assert outcome_for(pymongo.errors.AutoReconnect("down")) is Outcome.RETRY
    assert outcome_for(KafkaConnectionError()) is Outcome.RETRY
    assert outcome_for(RuntimeError("a bug")) is Outcome.DEAD_LETTER
    assert outcome_for(ConcurrentChange(given_up=True)) is Outcome.RETRY
    assert outcome_for(NotFound("w1")) is Outcome.COMMIT
    assert outcome_for(UnreadableDocument("w1", "enabled: not a bool")) is Outcome.COMMIT


def test_domain_errors_map_to_problems_in_one_place() -> None:
    assert problem_for(NotFound("w1")).status == 404
    stale = problem_for(StaleVersion(current=3, expected=1))
    assert stale.status == 409 and stale.headers["ETag"] == '"3"' and "version 3, not 1" in stale.detail
    assert (
        problem_for(ConcurrentChange()).status == problem_for(ConcurrentChange(given_up=True)).status == 409
    )
    assert "maximum of 7" in problem_for(CapReached(7)).detail
    invalid = problem_for(InvalidFields([FieldError("eventUrl", "must use https")]))
    assert invalid.status == 400 and invalid.body()["errors"] == [
        {"field": "eventUrl", "reason": "must use https"}
    ]
    assert problem_for(UnreadableDocument("w1", "x")).status == 500


def test_stored_documents_convert_both_ways_or_say_why_not() -> None:
    doc = stored_webhook_doc()
    webhook = from_doc(doc)
    assert webhook.id == "w1" and webhook.secrets[0].encrypted == "a"
    assert to_doc(webhook) == doc
    # Fields of the older in-document outbox are ignored (documents stored before the change log).
    assert from_doc({**doc, "pending": True, "published_version": 1}) == webhook
    for damage, words in (
        ({"enabled": "yes"}, "enabled"),
        ({"version": "2"}, "version"),
        ({"secrets": []}, "secrets"),
        ({"event_url": None}, "event_url"),
    ):
        with pytest.raises(UnreadableDocument) as exc:
            from_doc(stored_webhook_doc(**damage))
        assert exc.value.webhook_id == "w1" and words in exc.value.reason
        with pytest.raises(UnreadableDocument):
            config_record(stored_webhook_doc(**damage))
    # A delete goes out as a tombstone even when the rest of the document is damaged.
    damaged = stored_webhook_doc(deleted=True, enabled="yes", changed_at_ms=Int64(1_790_000_000_000))
    tomb = config_record(damaged)
    assert tomb.key == b"w1" and tomb.value is None and tomb.version == 2
    assert tomb.changed_at_ms == 1_790_000_000_000  # MongoDB returns large integers as bson's Int64


def test_a_change_that_changes_nothing_is_no_change() -> None:
    webhook = from_doc(stored_webhook_doc())
    assert changed_fields(webhook, WebhookChanges()) is None
    assert changed_fields(webhook, WebhookChanges(name="hook", event_list=[], entity_name="E")) is None
    assert changed_fields(webhook, WebhookChanges(name="hook", enabled=False)) == {"enabled": False}
    update = change(webhook, "u2", datetime(2026, 1, 2, tzinfo=UTC), {"enabled": False})
    assert update["version"] == 3 and update["enabled"] is False and update["user_identifier"] == "u2"
    assert "name" not in update


def test_openapi_describes_every_route_we_serve() -> None:
    doc = build_openapi()
    served = {(r.method.lower(), r.path) for r in ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    create = doc["paths"]["/api/managing-entity/{managingEntityIdentifier}/webhook"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "409", "413", "415", "503"}
    record = doc["components"]["schemas"]["WebhookRecord"]["properties"]
    assert {"id", "createdDate", "lastUpdate", "version", "userIdentifier", "ownerIdentifier"} <= set(record)
