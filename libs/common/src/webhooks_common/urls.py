"""The one rule for webhook target URLs: the registry applies it when it accepts an `eventUrl`, the deliverer
when it sends, so a URL the registry accepts is one the deliverer can send, and one that can never be sent is
refused at once with its reason.

Two halves. `check_url` judges the URL itself (scheme, host syntax, literal addresses) and returns it
normalised (scheme and ASCII host lower-cased, nothing else touched). `forbidden_reason` judges an IP address:
the registry applies it to a literal host, the deliverer's connector to every address a name resolves to at
connect time (a DNS name can point anywhere later, so only the resolved address settles it).

A host that ends in a number is an IPv4 address to browsers and to `getaddrinfo` (`127.1`, `2130706433`,
`0x7f.1`, `0`, `010.0.0.1`): resolvers disagree on the short, octal and hex forms, so only the four-part
dotted-decimal form is accepted; the others are refused rather than guessed at.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from yarl import URL

MAX_URL = 2048
MAX_HOST = 253
MAX_LABEL = 63

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


@dataclass(frozen=True)
class UrlPolicy:
    """What a deployment allows: plain http (REGISTRY_ALLOW_HTTP) and private targets
    (DELIVERY_ALLOW_PRIVATE_TARGETS, development only)."""

    allow_http: bool = False
    allow_private: bool = False


# The deliverer's policy for the URL itself: it sends what the registry accepted under its own policy, and
# the connector checks the resolved addresses.
SEND_POLICY = UrlPolicy(allow_http=True, allow_private=True)


@dataclass(frozen=True)
class UrlVerdict:
    """`url` normalised when acceptable (`error` None), else `error` says why in plain words."""

    url: str
    error: str | None = None


def forbidden_reason(addr: str) -> str | None:
    """Why `addr` may not be called (e.g. "loopback"), or None when it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA:
        return "cloud metadata"
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return label
    if not ip.is_global:
        return "not globally routable"
    return None


@functools.lru_cache(maxsize=8192)
def check_url(url: str, policy: UrlPolicy) -> UrlVerdict:
    """Judge a webhook target URL (pure; cached, as the deliverer asks once per attempt)."""
    error = _url_error(url, policy)
    return UrlVerdict(url, error) if error else UrlVerdict(_normalise(url))


def url_error(url: str, policy: UrlPolicy) -> str | None:
    """Why `url` cannot be a webhook target, or None when it can."""
    return check_url(url, policy).error


def _url_error(url: str, policy: UrlPolicy) -> str | None:
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "contains whitespace or control characters"
    if "\\" in url:
        return "contains a backslash (parsers disagree on what it means)"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not url[len(parts.scheme) :].startswith("://"):
        return "must be an absolute https URL"
    if scheme == "http" and not policy.allow_http:
        return "must use https (plain http is refused unless REGISTRY_ALLOW_HTTP is on)"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain credentials"
    if port == 0:
        return "port 0 is not a valid target"
    host = parts.hostname or ""
    if not host:
        return "must name a host"
    why = _ipv6_error(host) if parts.netloc.startswith("[") else _name_or_ipv4_error(host)
    if why:
        return why
    if not policy.allow_private:
        why = _private_error(host)
        if why:
            return why
    return _send_mismatch(url, host)


def _ipv6_error(host: str) -> str | None:
    if "%" in host:
        return "an IPv6 zone (%...) cannot be a webhook target"
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return "the host is not a valid IPv6 address"
    return None


def _name_or_ipv4_error(host: str) -> str | None:
    name = host[:-1] if host.endswith(".") else host  # a fully qualified name may end in a dot
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return "the host is not a valid internationalised domain name"
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return (
                "a numeric host must be an IPv4 address in dotted-decimal form, e.g. 192.0.2.10 "
                "(short, octal, hex and single-number forms are not sent)"
            )
        return None
    if len(name) > MAX_HOST:
        return f"the host name is longer than {MAX_HOST} characters"
    for label in labels:
        if not label:
            return "the host name has an empty label (`..`)"
        if len(label) > MAX_LABEL:
            return f"a label of the host name is longer than {MAX_LABEL} characters"
        if not _LABEL.match(label):
            return f"the host name label `{label}` is not a valid DNS label"
    return None


def _private_error(host: str) -> str | None:
    name = host.rstrip(".")
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return "must not point at a loopback host"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return None  # a DNS name: its resolved address is checked when delivering
    why = forbidden_reason(name)
    return f"must not be a private, loopback or link-local address ({why})" if why else None


def _send_mismatch(url: str, host: str) -> str | None:
    """The deliverer sends with aiohttp, which parses with yarl: it must reach the host checked here."""
    try:
        sent = URL(_normalise(url)).raw_host or ""
    except (ValueError, UnicodeError) as exc:
        return f"not a valid URL ({exc})"
    expected = host if host.isascii() else host.encode("idna").decode("ascii")
    if _same_host(sent, expected):
        return None
    return "the host is ambiguous (parsers read it differently)"


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _normalise(url: str) -> str:
    """Scheme and an ASCII host lower-cased (case-insensitive both); path, query and fragment untouched."""
    scheme, rest = url.split("://", 1)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if authority.isascii():
        authority = authority.lower()
    return f"{scheme.lower()}://{authority}{rest[end:]}"
