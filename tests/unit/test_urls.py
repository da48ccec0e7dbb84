"""The shared URL rule (webhooks_common.urls): what the registry accepts, the deliverer can send."""

from __future__ import annotations

import pytest

from webhooks_common.urls import SEND_POLICY, UrlPolicy, check_url, forbidden_reason, url_error

STRICT = UrlPolicy()
DEV = UrlPolicy(allow_http=True, allow_private=True)

NON_CANONICAL_IPV4 = [
    "https://127.1/",
    "https://2130706433/",
    "https://0/",
    "https://0x7f.0.0.1/",
    "https://0x7f000001/",
    "https://010.0.0.1/",
    "https://01.2.3.4/",
    "https://1.2.3.4.5/",
    "https://8.8.8.010/",
    "https://hooks.example.123/",
]


@pytest.mark.parametrize("url", NON_CANONICAL_IPV4)
def test_numeric_hosts_other_than_dotted_decimal_are_refused_under_every_policy(url: str) -> None:
    for policy in (STRICT, DEV, SEND_POLICY):
        assert "dotted-decimal" in (url_error(url, policy) or ""), (url, policy)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("HTTPS://EXAMPLE.COM/x", "https://example.com/x"),
        (
            "Https://Hooks.Example.com:8443/Path/To?Key=Value#Frag",
            "https://hooks.example.com:8443/Path/To?Key=Value#Frag",
        ),
        ("https://example.com./x", "https://example.com./x"),
        ("https://8.8.8.8/hook", "https://8.8.8.8/hook"),
        ("https://[2001:4860:4860::8888]/x", "https://[2001:4860:4860::8888]/x"),
        ("https://bücher.de/ä", "https://bücher.de/ä"),  # sent IDNA-encoded by yarl
        ("https://my_service.example.com/", "https://my_service.example.com/"),
    ],
)
def test_accepted_urls_are_normalised_only_where_case_does_not_matter(url: str, normalised: str) -> None:
    verdict = check_url(url, STRICT)
    assert verdict.error is None and verdict.url == normalised


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "https"),
        ("https:example.com/x", "absolute"),
        ("/relative", "absolute"),
        ("https://u:p@example.com/x", "credentials"),
        ("https://example.com\\@evil.com/", "backslash"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com:99999/x", "valid URL"),
        ("https://example.com:0/x", "port 0"),
        ("https:///x", "host"),
        ("https://a..example.com/", "empty label"),
        ("https://-bad.example.com/", "DNS label"),
        ("https://exa!mple.com/", "DNS label"),
        ("https://" + "a" * 64 + ".com/", "63"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://straße.de/", "ambiguous"),  # IDNA 2003 and 2008 name different hosts
        ("https://example.com/" + "a" * 2100, "2048"),
    ],
)
def test_urls_that_can_never_be_sent_are_refused_with_a_reason(url: str, words: str) -> None:
    for policy in (STRICT, DEV):
        why = url_error(url, policy)
        assert why is not None and words in why, (url, why)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://10.0.0.1/x", "private"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://169.254.169.254/x", "cloud metadata"),
        ("https://100.64.0.1/x", "not globally routable"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://[::1]/x", "loopback"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("https://localhost/x", "loopback"),
        ("https://api.localhost/x", "loopback"),
        ("https://LOCALHOST./x", "loopback"),
    ],
)
def test_private_targets_follow_the_switch(url: str, words: str) -> None:
    why = url_error(url, STRICT)
    assert why is not None and words in why, why
    assert url_error(url, DEV) is None


def test_the_deliverer_sends_what_the_registry_accepted_under_any_policy() -> None:
    assert url_error("http://hooks.example.com/x", SEND_POLICY) is None
    assert url_error("http://127.0.0.1:9000/x", SEND_POLICY) is None  # its connector checks the address
    for url in ("HTTPS://EXAMPLE.COM/x", "https://example.com:443/x", "https://hooks.example.com/a?b=c"):
        accepted = check_url(url, STRICT)
        assert accepted.error is None and check_url(accepted.url, SEND_POLICY) == accepted


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("127.0.0.1", "loopback"),
        ("fe80::1%eth0", "link-local"),
    ],
)
def test_forbidden_reason_is_the_connect_time_rule(addr: str, reason: str | None) -> None:
    assert forbidden_reason(addr) == reason
