"""Outbound HTTP for webhooks: only to public addresses, and to the very address that was checked.

A webhook URL is typed by ops, but where its host points is up to whoever runs its DNS, and
a request from inside our network to 127.0.0.1, 10.x or 169.254.169.254 (cloud metadata)
reaches what the internet must not (SSRF). So the URL is checked when it is saved, and
again at every send: the host is resolved once, refused if any of its addresses is private,
loopback, link-local, multicast, reserved or otherwise not global, and the connection goes
to the address just checked (a name re-pointed between a check and a connect gains nothing;
TLS still verifies the certificate against the host name). No redirects are followed and no
proxy from the environment is used. WEBHOOKS_ALLOW_PRIVATE_TARGETS turns the address rule
off (tests, a receiver on a private network); http and https only, always.
"""
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

SCHEMES = ("http", "https")
# The receiver's answer is kept for ops to read, not parsed: its first bytes are enough.
MAX_RESPONSE_BYTES = 64 * 1024


class TargetRefused(Exception):
    """The URL or the address its host resolves to may not be sent to; the message says why.

    Not an OSError on purpose: urllib3 would wrap one as a connection error and retry it.
    """


def address_refusal(address: str) -> str | None:
    """Why an IP address is no webhook target ("loopback", "private"…), or None if it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no part of the address
    candidates = [ip]
    if ip.version == 6:
        # IPv4 carried inside IPv6 (::ffff:127.0.0.1, 6to4, Teredo) reaches that IPv4 address: judged first.
        candidates = [a for a in (ip.ipv4_mapped, ip.sixtofour, ip.teredo and ip.teredo[1]) if a] + candidates
    for candidate in candidates:
        # Most specific first: Python counts link-local and 0.0.0.0 among the private ranges too.
        for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
            if getattr(candidate, f"is_{kind}"):
                return kind.replace("_", "-")
        if not candidate.is_global:
            return "not globally routable"
    return None


def resolve_checked(host: str, port: int) -> list[str]:
    """`host`'s addresses, all public (unless the setting allows any); raises TargetRefused otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"The host {host} does not resolve ({exc}).") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        for address in addresses:
            why = address_refusal(address)
            if why:
                raise TargetRefused(
                    f"The host {host} resolves to {address} ({why}): webhooks go to public addresses only."
                )
    return addresses


def url_check(url: str) -> None:
    """Raise TargetRefused unless `url` is http(s) with a host that resolves to public addresses only."""
    try:
        parts = urlsplit(url)
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused(f"The URL is not valid ({exc}).") from None
    if port == 0:
        raise TargetRefused("The URL is not valid (port 0).")
    if parts.scheme not in SCHEMES:
        raise TargetRefused("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    resolve_checked(parts.hostname, port)


class _CheckedConnectionMixin:
    """Connects to an address `resolve_checked` approved, resolved here once, instead of letting urllib3 resolve."""

    def _new_conn(self):
        host = self._dns_host
        self._dns_host = resolve_checked(host, self.port)[0]
        try:
            return super()._new_conn()
        finally:
            # TLS (server_hostname) and the Host header read the name, not the address.
            self._dns_host = host


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def checked_session() -> requests.Session:
    """A requests session that connects only to checked addresses and ignores proxy variables."""
    session = requests.Session()
    session.trust_env = False  # an HTTP(S)_PROXY from the environment would be connected to unchecked
    adapter = _CheckedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class Answer:
    status_code: int
    text: str  # the first MAX_RESPONSE_BYTES of the body, decoded leniently


def post(session: requests.Session, url: str, *, body: bytes, headers: dict, timeout_s: float) -> Answer:
    """POST `body`; the answer, or an exception (TargetRefused, requests.RequestException, TimeoutError).

    `timeout_s` bounds the whole exchange, not only each socket read: a receiver trickling
    its answer byte by byte is cut off at the deadline like one that says nothing.
    """
    deadline = time.monotonic() + timeout_s
    response = session.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False, stream=True)
    try:
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=4096):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_RESPONSE_BYTES:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer took longer than {timeout_s:g} s")
        return Answer(response.status_code, b"".join(chunks)[:MAX_RESPONSE_BYTES].decode("utf-8", "replace"))
    finally:
        response.close()
