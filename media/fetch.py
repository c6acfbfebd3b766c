"""Fetch an https reference safely: public addresses only, size-capped streaming, a whole-download deadline.

The host is resolved once and every address it resolves to is checked before connecting; the
connection goes to the checked address (the TLS handshake still verifies the host's certificate), so
a DNS answer that changes between the check and the connection cannot reach a private address.
Redirects are followed by hand, each new location checked the same way. Private, loopback, link-local
and other non-global addresses are refused unless a network that holds them is allowed explicitly
(``FetchPolicy.allowed_networks``, from ``SYNCREEL_REFERENCE_PRIVATE_NETWORKS``).

The deadline covers the whole download, every phase of every hop: connecting, the TLS handshake, the
headers and the body. Each socket operation is bounded by the time left, and at the deadline a timer
shuts the socket down, so a server that sends one byte at a time (each well within any per-read
timeout) cannot stretch the download past it.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from syncreel.media.errors import MediaError

_CHUNK = 1 << 16
_REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "syncreel-reference-fetch/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 500_000_000
    timeout_s: float = 60.0  # the whole download: connecting, TLS, headers and body of every hop
    allowed_networks: tuple[str, ...] = ()  # CIDR networks outside the public internet that may be fetched
    max_redirects: int = 3


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: IPAddress, allowed_networks: tuple[str, ...]) -> str | None:
    """Why ``address`` may not be fetched from (None: it may)."""
    address = _plain(address)
    for network in allowed_networks:
        if address in ipaddress.ip_network(network, strict=False):
            return None
    if address.is_global and not address.is_multicast:
        return None
    kind = (
        "loopback"
        if address.is_loopback
        else "link-local"
        if address.is_link_local
        else "private"
        if address.is_private
        else "multicast"
        if address.is_multicast
        else "non-public"
    )
    return (
        f"{address} is a {kind} address; references are fetched from public addresses only "
        "(allow a network with SYNCREEL_REFERENCE_PRIVATE_NETWORKS, e.g. '[\"10.0.0.0/8\"]')"
    )


def _resolve(url: str, host: str, port: int, policy: FetchPolicy) -> str:
    """The address to connect to, after checking every address ``host`` resolves to."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise MediaError(url, f"cannot resolve host {host!r} ({exc})") from None
        addresses = [ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found]
        if not addresses:
            raise MediaError(url, f"host {host!r} has no address")
    for address in addresses:
        refusal = address_refusal(address, policy.allowed_networks)
        if refusal:
            raise MediaError(url, f"refused: {host} resolves to {refusal}")
    return str(addresses[0])


class _Deadline:
    """The whole download's deadline. Every connection registered with ``watch`` is shut down when it
    passes (a read in progress then ends at once), and ``check`` turns whatever that caused into the
    deadline's error."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s
        self.passed = False
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for handle in self._watched:
                handle.close()
            self._watched.clear()

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for handle in self._watched:
                _shut(handle)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down at the deadline. A duplicate descriptor is kept: shutting it
        down ends the connection for every descriptor, and it outlives ``sock`` being wrapped in TLS
        (which detaches the original)."""
        with self._lock:
            handle = sock.dup()
            self._watched.append(handle)
            if self.passed:
                _shut(handle)

    def check(self, url: str) -> None:
        if self.passed or time.monotonic() >= self.at:
            raise MediaError(
                url, f"download took longer than {self.timeout_s:g} s; accepted: at most {self.timeout_s:g} s"
            )

    def left(self, url: str) -> float:
        """Seconds left (the bound for one socket operation); raises once the deadline has passed."""
        self.check(url)
        return self.at - time.monotonic()


def _shut(handle: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the server has closed it already
        handle.shutdown(socket.SHUT_RDWR)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand, with SNI and certificate checks for the original host;
    its socket is watched by the download's deadline from before the TLS handshake."""

    def __init__(
        self, host: str, address: str, port: int, timeout: float, deadline: _Deadline, context: ssl.SSLContext
    ):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context
        self._deadline = deadline

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), timeout=self.timeout)
        self._deadline.watch(raw)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _split(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise MediaError(url, f"scheme {parts.scheme or 'none'!r} refused; accepted: https://")
    if parts.username or parts.password:
        raise MediaError(url, "credentials in the URL are refused; use a presigned URL or s3://")
    if not parts.hostname:
        raise MediaError(url, "no host in the URL")
    try:
        port = parts.port or 443
    except ValueError:
        raise MediaError(url, "the URL's port is not a number in 1-65535") from None
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return parts.hostname, port, target


def _stream(
    url: str,
    response: http.client.HTTPResponse,
    sock: socket.socket | None,
    target: Path,
    policy: FetchPolicy,
    deadline: _Deadline,
) -> int:
    size_limit = policy.max_bytes
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > size_limit:
        raise MediaError(url, f"download is {int(declared):,} bytes; accepted: at most {size_limit:,} bytes")
    written = 0
    with target.open("wb") as out:
        while True:
            if sock is not None:
                sock.settimeout(deadline.left(url))
            try:
                # read1: what one read of the socket gives, so the deadline is checked between reads
                # (read(n) keeps reading until it has n bytes).
                chunk = response.read1(_CHUNK)
            except TimeoutError:
                deadline.check(url)
                raise MediaError(url, f"the server stopped sending for {policy.timeout_s:g} s") from None
            except (OSError, http.client.HTTPException) as exc:
                deadline.check(url)
                raise MediaError(url, f"download broke off after {written:,} bytes ({exc})") from None
            if not chunk:
                deadline.check(url)  # a socket shut down at the deadline ends like a finished body
                break
            written += len(chunk)
            if written > size_limit:
                raise MediaError(url, f"download passed {size_limit:,} bytes; accepted: at most {size_limit:,} bytes")
            out.write(chunk)
    if declared and declared.isdigit() and written != int(declared):
        raise MediaError(url, f"download truncated: {written:,} of {int(declared):,} bytes")
    return written


def fetch_https(url: str, target: Path, policy: FetchPolicy = FetchPolicy()) -> Path:
    """Download ``url`` to ``target`` (written whole or not at all). Raises MediaError naming the URL:
    a refused scheme or address, a redirect to one, an HTTP error, a body over ``policy.max_bytes``, a
    download past ``policy.timeout_s`` (in whichever phase), a TLS failure."""
    target = Path(target)
    context = ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
    current = url
    with _Deadline(policy.timeout_s) as deadline:
        for _ in range(policy.max_redirects + 1):
            try:
                done = _get(current, target, policy, context, deadline)
            except MediaError as exc:
                if current == url:
                    raise
                raise MediaError(url, f"redirected to {current}: {exc.problem}") from None
            if isinstance(done, Path):
                return done
            current = done
    raise MediaError(url, f"more than {policy.max_redirects} redirects")


def _get(current: str, target: Path, policy: FetchPolicy, context: ssl.SSLContext, deadline: _Deadline) -> Path | str:
    """One request: the downloaded file, or the next URL when the answer is a redirect."""
    host, port, path = _split(current)
    address = _resolve(current, host, port, policy)
    connection = _PinnedHTTPSConnection(host, address, port, deadline.left(current), deadline, context)
    try:
        try:
            connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            response = connection.getresponse()
        except ssl.SSLError as exc:
            deadline.check(current)
            raise MediaError(current, f"TLS failed ({exc.reason or exc})") from None
        except TimeoutError:
            deadline.check(current)
            raise MediaError(current, f"no answer within {policy.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            deadline.check(current)
            raise MediaError(current, f"cannot connect ({exc})") from None
        if response.status in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise MediaError(current, f"HTTP {response.status} redirect without a Location")
            return urljoin(current, location)
        if response.status != 200:
            raise MediaError(current, f"HTTP {response.status} {response.reason}")
        partial = target.with_name(f".{target.name}.partial")
        try:
            _stream(current, response, connection.sock, partial, policy, deadline)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)
        return target
    finally:
        connection.close()
