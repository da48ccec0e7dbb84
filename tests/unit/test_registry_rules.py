"""Pure rules of the registry: URL and event-list validation, auth claims/scopes, problem mapping,
secret rotation, If-Match parsing, the command error policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo.errors
import pytest
from aiohttp import web

from registry.auth import Principal, authorize, bearer_token, principal_from_claims
from registry.commands import Outcome, outcome_for
from registry.documents import current_secret, rotate_secrets
from registry.handlers import parse_if_match
from registry.openapi import build_openapi
from registry.problems import Problem, problem_for
from registry.routes import ROUTES
from registry.validation import check_fields, normalize_event_list
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
    secrets = [{"encrypted": "a", "created_at": t0, "expires_at": None}]
    rotated, until = rotate_secrets(secrets, "b", t0 + timedelta(hours=1), timedelta(hours=24))
    assert [s["encrypted"] for s in rotated] == ["a", "b"] and until == t0 + timedelta(hours=25)
    assert current_secret(rotated)["encrypted"] == "b"
    # A second rotation after the overlap drops the expired one.
    again, until = rotate_secrets(rotated, "c", t0 + timedelta(hours=30), timedelta(hours=24))
    assert [s["encrypted"] for s in again] == ["b", "c"] and current_secret(again)["encrypted"] == "c"
    none_left, until = rotate_secrets(secrets, "b", t0, timedelta(0))
    assert [s["encrypted"] for s in none_left] == ["b"] and until is None


def test_command_errors_commit_or_retry() -> None:
    assert outcome_for(None) is Outcome.COMMIT
    assert outcome_for(ValueError("bad json")) is Outcome.COMMIT
    assert outcome_for(pymongo.errors.AutoReconnect("down")) is Outcome.RETRY
    assert outcome_for(Problem(503, "down")) is Outcome.RETRY
    assert outcome_for(Problem(404, "gone")) is Outcome.COMMIT


def test_openapi_describes_every_route_we_serve() -> None:
    doc = build_openapi()
    served = {(r.method.lower(), r.path) for r in ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    create = doc["paths"]["/api/managing-entity/{managingEntityIdentifier}/webhook"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "409", "413", "415", "503"}
    record = doc["components"]["schemas"]["WebhookRecord"]["properties"]
    assert {"id", "createdDate", "lastUpdate", "version", "userIdentifier", "ownerIdentifier"} <= set(record)
