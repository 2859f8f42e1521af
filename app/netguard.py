"""Where URL ingest may connect: public addresses only, plus an operator's allow-list.

A URL an admin queues (or a feed lists, or a page redirects to) must not make the worker
request the machine's own services or its network's: loopback, private (RFC 1918,
fc00::/7), link-local (169.254/16 with the cloud metadata address, fe80::/10), CGNAT
(100.64/10), multicast, unspecified, reserved and documentation ranges are refused. The
test is ``ipaddress``'s ``is_global`` plus explicit networks (``is_global`` says yes to
multicast, 3fff::/20 and others, and has changed between Python versions). An IPv4 address
inside IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4) is judged by the IPv4
address it carries.

``QUILT_FETCH_ALLOW_NETWORKS`` (settings.fetch_allow_networks) lists the deliberate
exceptions, an internal mirror: networks or addresses (``10.20.0.0/16``, ``127.0.0.2``)
and host names (``mirror.lab``; a listed name is trusted whatever it resolves to).

The check happens at three places:

- queue time (``app.services.ingest.queue_url``): a URL whose host is an address literal,
  in any form the resolver accepts (``0x7f000001``, ``2130706433``, ``0177.0.0.1``,
  ``[::1]``), is refused at once. Host names are left to fetch time: their DNS can change.
- before the first request (``check_url``): every A/AAAA record of the host must pass, so
  ``169.254.169.254`` is refused without yt-dlp being started.
- at connect time (``Guard.connect``), for every connection of the fetch, the first and
  each one after a redirect, a playlist page or a media URL a page points to. It resolves
  the host, checks every address and connects to exactly the addresses it checked, so DNS
  rebinding (a public answer to the first lookup, 127.0.0.1 to the next) gains nothing.
  workers/stages/fetch.py gives yt-dlp a single HTTP handler whose connections go through
  it, and no proxy, FTP, ffmpeg or other outside downloader (those would connect on their
  own).

Every refusal reads ``REFUSED``, whatever the port and whether anything listens there, and
comes before any connection: the error text cannot tell an open port from a closed one.

This module imports nothing from the app, so the settings can validate the allow-list
with it and the workers can use it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

REFUSED = "the URL's host is not allowed (internal or reserved address)"
UNRESOLVED = "the URL's host could not be resolved"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(OSError):
    """A destination the policy forbids. An OSError so that an HTTP client takes it as a
    failed connect (urllib wraps it in URLError) and never opens a socket for it."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


class HostUnresolved(OSError):
    def __init__(self) -> None:
        super().__init__(UNRESOLVED)


_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # this network, 0.0.0.0
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, with 255.255.255.255
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped, NAT64 or 6to4."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_forbidden(ip: IPAddress) -> bool:
    """True for every address that is not plainly a public unicast one."""
    inner = _embedded_v4(ip)
    if inner is not None:
        return is_forbidden(inner)
    blocked = _BLOCKED_V4 if ip.version == 4 else _BLOCKED_V6
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in net for net in blocked)
    )


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
# The characters of the legacy numeric IPv4 forms (0x7f000001, 2130706433, 0177.0.0.1).
_NUMERIC_V4 = re.compile(r"^[0-9a-fx.]+$")


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").lower().removesuffix(".")


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally, in any form the resolver would accept, or
    None for a host name."""
    host = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:  # inet_aton only parses: it reads the forms getaddrinfo accepts, no lookup
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class AllowList:
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Networks, addresses and host names; ValueError names a bad entry."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = _normal_host(str(entry))
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(text) or _NUMERIC_V4.match(text):
                raise ValueError(
                    f"fetch allow-list entry {entry!r} is neither a network, an address nor "
                    "a host name"
                )
            hosts.add(text)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        return _normal_host(host) in self.hosts

    def allows(self, ip: IPAddress) -> bool:
        """Allowed: public, or inside a listed network."""
        if not is_forbidden(ip):
            return True
        candidates = [ip, _embedded_v4(ip)]
        return any(
            c is not None and c.version == net.version and c in net
            for c in candidates
            for net in self.networks
        )


@functools.lru_cache(maxsize=32)
def _parsed(entries: tuple[str, ...]) -> AllowList:
    return AllowList.parse(entries)


def allow_list(entries: Iterable[str] = ()) -> AllowList:
    return _parsed(tuple(entries))


def literal_host_refused(url: str, allow: AllowList) -> bool:
    """True when the URL's host is an address literal that may not be fetched (queue time:
    no lookup; host names are checked when they are fetched)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    ip = literal_address(host)
    return ip is not None and not allow.allows(ip)


def _ip_of(sockaddr: tuple) -> IPAddress:
    return ipaddress.ip_address(sockaddr[0])


def resolve(host: str, port: int | None, allow: AllowList) -> list[tuple]:
    """getaddrinfo's TCP answers for host, after checking every address. Raises
    DestinationRefused when any address is forbidden and not allowed, HostUnresolved when
    there is none."""
    if allow.allows_host(host):
        try:
            return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise HostUnresolved() from exc
    literal = literal_address(host)
    if literal is not None and not allow.allows(literal):
        raise DestinationRefused()  # decided without a lookup
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolved() from exc
    if not infos:
        raise HostUnresolved()
    if not all(allow.allows(_ip_of(info[4])) for info in infos):
        raise DestinationRefused()
    return infos


def check_url(url: str, allow: AllowList) -> None:
    """Refuse a URL before any request: an http(s) URL whose host's addresses all pass."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise DestinationRefused() from exc
    if parts.scheme not in ("http", "https") or not host:
        raise DestinationRefused()
    resolve(host, None, allow)


class Guard:
    """Opens connections for an HTTP client, refusing forbidden destinations; ``refused``
    records that one was refused (the client may wrap the error in its own)."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.refused = False

    def check_url(self, url: str) -> None:
        try:
            check_url(url, self.allow)
        except DestinationRefused:
            self.refused = True
            raise

    def connect(
        self,
        address: tuple[str, int],
        timeout: float | None | object = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """socket.create_connection, to the checked addresses only (an http.client
        connection's ``_create_connection``)."""
        host, port = address
        try:
            infos = resolve(host, port, self.allow)
        except DestinationRefused:
            self.refused = True
            raise
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)  # type: ignore[arg-type]
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        assert error is not None
        raise error
