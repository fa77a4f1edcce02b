"""Safety at the edge: which URLs we may fetch on a user's or a provider's behalf.

A URL handed to us by a provider (a finished video) or a user (a first-frame image) is
untrusted. Fetching it from inside our network could reach what the Internet cannot: the
cloud metadata service (instance credentials), databases, Temporal, the admin side of anything
listening on loopback. So every such fetch is held to a :class:`UrlPolicy`:

* **Scheme.** ``https`` only by default: providers serve media over TLS, and plain ``http``
  would let anyone on the path swap the video we rehost. Local test doubles are plain ``http``,
  so a policy that allows private addresses usually allows ``http`` too (see
  ``providers.http_media.media_policy``); the two are separate fields so neither is implied.
* **Shape.** A host is required, and user info (``user:pass@``) is refused: credentials do not
  belong in media URLs, and ``https://trusted@evil/`` is a classic way to confuse a reader.
  Ports are *not* restricted: the address check is what keeps internal services out, and an
  odd port on a public host reaches nothing a browser could not.
* **Addresses, after DNS.** The host is resolved (all A and AAAA records) and refused if *any*
  address is not globally routable — see :func:`address_refusal` for the exact rules. Checking
  the name's string is not enough (``http://2130706433/`` and ``localtest.me`` are loopback), and
  checking one record while connecting to another is a hole, so all of them must pass.

**DNS rebinding.** Resolving, vetting and then letting the HTTP library resolve again would
check one answer and connect to another: a hostile DNS server can answer "public" to the first
lookup and "169.254.169.254" to the second. So the check lives *in the connection path*:
:class:`VettingNetworkBackend` is the httpcore network backend behind every connection the
client from :func:`safe_async_client` opens (first request, redirect hops, reconnects after a
keep-alive expires). Its ``connect_tcp`` resolves the host itself, vets every address and opens
the TCP connection to a vetted IP literal; httpcore then starts TLS with the *hostname* as SNI
and as the name the certificate must match. The Host header is untouched. The address we
connect to is therefore exactly the address we checked, and TLS still verifies the real name.

**No proxies.** The client ignores ``HTTP(S)_PROXY``/``ALL_PROXY`` (``trust_env=False``): through
a proxy the proxy resolves and connects, so our address check would vet the proxy instead of
the target. TLS trust is still taken from ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set (httpx only
reads them when ``trust_env`` is on), so a local HTTPS double with a test CA keeps working.

:class:`UnsafeUrl` messages name the host and the reason, never the query string or user info,
which often carry signatures or credentials.
"""

import asyncio
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import certifi
import httpcore
import httpx

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Maps ``(host, port)`` to every address the host has; raises ``OSError`` when it has none."""

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
"""Names of cloud metadata services, refused before any lookup."""

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "100.100.100.200",  # Alibaba Cloud metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
    )
)
"""Refused under every policy: no local test double lives there, and the prize is credentials."""

_PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # shared address space (carrier NAT, Tailscale)
        "fc00::/7",  # unique local IPv6
        "fec0::/10",  # deprecated IPv6 site-local
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(Exception):
    """The URL may not be fetched under the policy; the message says why."""


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched.

    ``allow_private`` admits loopback, private (RFC 1918, shared 100.64/10, unique-local IPv6)
    and link-local addresses, for local test doubles only; unspecified, multicast, reserved and
    metadata addresses stay refused regardless. ``extra_allowed`` admits specific networks that
    are not global (a VPC endpoint, a test's loopback server) without opening all of them;
    metadata, unspecified and multicast addresses stay refused even when listed.
    """

    allow_private: bool = False
    allowed_schemes: frozenset[str] = frozenset({"https"})
    extra_allowed: frozenset[IPNetwork] = frozenset()


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host`` from the event loop's ``getaddrinfo`` (A and AAAA records).

    Numeric forms the C library accepts (``2130706433``, ``0x7f.1``) come back as the address
    they denote, which is why addresses, not host strings, are what gets vetted.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def address_refusal(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why ``address`` may not be connected to under ``policy``, or ``None`` if it may.

    ``ipaddress``'s ``is_global`` alone is not enough, and its answers differ between Python
    patch releases, so the rules are spelled out:

    * IPv6 forms that carry an IPv4 address get the verdict of that address: IPv4-mapped
      (``::ffff:127.0.0.1`` *is* 127.0.0.1 to the kernel), 6to4 (``2002:7f00:1::/48`` routes to
      127.0.0.1's network through a relay) and NAT64 (``64:ff9b::/96``, which an IPv6-only
      host uses to reach every IPv4 address, so refusing it wholesale would break them).
      Teredo (``2001::/32``) is not global and is refused with the other special ranges.
    * Metadata, unspecified (``0.0.0.0``, ``::``) and multicast addresses are always refused;
      ``is_global`` calls multicast global, so it is checked first.
    * Loopback, link-local (169.254/16 and fe80::/10) and private/shared networks are refused
      unless ``policy.allow_private``.
    * Anything else must be ``is_global`` and not reserved (``is_global`` is true for some
      reserved IPv6 space such as IPv4-compatible ``::a.b.c.d``).
    """
    address = _without_scope(address)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = address_refusal(embedded, policy)
        return None if reason is None else f"{reason} ({embedded}) inside IPv6 {address}"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in policy.extra_allowed):
        return None
    if address.is_loopback:
        local = "a loopback address"
    elif address.is_link_local:
        local = "a link-local address"
    elif any(address in network for network in _PRIVATE_NETWORKS):
        local = "a private address"
    elif address.is_global and not address.is_reserved:
        return None
    else:
        return "not a globally routable address"
    return None if policy.allow_private else local


def check_url(url: str | httpx.URL, policy: UrlPolicy) -> tuple[str, int]:
    """The ``(host, port)`` to connect to for ``url``, after the checks that need no DNS.

    Refuses a malformed URL, a scheme outside ``policy.allowed_schemes``, a missing host, user
    info, a metadata host name, and an IP-literal host that :func:`address_refusal` refuses.
    The host is the ASCII (IDNA) form that will be resolved and sent.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL:
        # httpx's message may quote the URL, query string and all.
        raise UnsafeUrl("malformed URL") from None
    scheme = parsed.scheme
    if scheme not in policy.allowed_schemes:
        allowed = ", ".join(sorted(policy.allowed_schemes))
        raise UnsafeUrl(f"scheme {scheme!r} is not allowed (allowed: {allowed})")
    if parsed.userinfo:
        raise UnsafeUrl("URLs with user info are not allowed")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeUrl("the URL has no host")
    port = parsed.port or DEFAULT_PORTS.get(scheme)
    if port is None:
        raise UnsafeUrl(f"no port given and none known for scheme {scheme!r}")
    _refuse_literal_or_metadata_name(host, policy)
    return host, port


async def resolve_safe(
    url: str, policy: UrlPolicy, *, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """Every address ``url``'s host resolves to, if the URL and all of them pass ``policy``.

    A check before a request; it cannot see what a later lookup returns (DNS rebinding), so
    fetches go through :func:`safe_async_client`, which repeats the check at connect time.
    Raises :class:`UnsafeUrl`, or ``OSError`` when the host does not resolve.
    """
    host, port = check_url(url, policy)
    return await vetted_addresses(host, port, policy, resolver=resolver)


async def vetted_addresses(
    host: str, port: int, policy: UrlPolicy, *, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses of ``host`` (an IP literal or a name), refusing if any one is unsafe."""
    _refuse_literal_or_metadata_name(host, policy)
    literal = _ip_literal(host)
    addresses = [literal] if literal is not None else list(await resolver(host, port))
    if not addresses:
        raise OSError(f"{host} has no addresses")
    for address in addresses:
        reason = address_refusal(address, policy)
        if reason is not None:
            raise UnsafeUrl(f"host {host} resolves to {address}, {reason}")
    return addresses


class VettingNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy allows.

    ``connect_tcp`` resolves the host with ``resolver``, refuses (:class:`UnsafeUrl`) if any
    address is unsafe, then connects to the vetted addresses in order until one answers. The
    caller (httpcore) then starts TLS with the original host name, so certificates are still
    checked against it. Resolution counts against the connect timeout; a name that does not
    resolve is a :class:`httpcore.ConnectError`, like any other failure to connect.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                addresses = await vetted_addresses(
                    _unbracketed(host), port, self._policy, resolver=self._resolver
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            remaining = None if timeout is None else timeout - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None  # vetted_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("Unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class VettingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with every request URL checked and every connection vetted.

    httpx offers no public way to choose the network backend, so the connection pool it
    builds is replaced by an identical one over :class:`VettingNetworkBackend`; the
    constructor fails loudly if a future httpx stops keeping the pool where we replace it,
    rather than silently connecting unvetted.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits = DEFAULT_LIMITS,
        resolver: Resolver = system_resolver,
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("this httpx version keeps its connection pool elsewhere")
        self.policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=VettingNetworkBackend(policy, resolver=resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, self.policy)
        return await super().handle_async_request(request)


class SafeAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose requests and connections are all held to ``policy``."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: httpx.Timeout,
        resolver: Resolver = system_resolver,
    ) -> None:
        super().__init__(
            transport=VettingTransport(
                policy, ssl_context=ssl_context_from_env(), resolver=resolver
            ),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )
        self.policy = policy


def safe_async_client(
    policy: UrlPolicy, *, timeout: httpx.Timeout, resolver: Resolver = system_resolver
) -> SafeAsyncClient:
    """A client for untrusted URLs: checked per request, vetted per connection, no proxies,
    no automatic redirects (follow them one hop at a time so each hop is checked, as
    ``providers.http_media.stream_url`` does). ``resolver`` is for tests."""
    return SafeAsyncClient(policy, timeout=timeout, resolver=resolver)


def ssl_context_from_env() -> ssl.SSLContext:
    """A verifying TLS context trusting ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set (as httpx
    does with ``trust_env``), and certifi's bundle otherwise."""
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    capath = os.environ.get("SSL_CERT_DIR")
    if capath:
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def _refuse_literal_or_metadata_name(host: str, policy: UrlPolicy) -> None:
    if host.lower().rstrip(".") in METADATA_HOSTS:
        raise UnsafeUrl(f"host {host} is a cloud metadata service")
    literal = _ip_literal(host)
    if literal is not None:
        reason = address_refusal(literal, policy)
        if reason is not None:
            raise UnsafeUrl(f"host {host} is {reason}")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(_unbracketed(host))
    except ValueError:
        return None


def _unbracketed(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _without_scope(address: IPAddress) -> IPAddress:
    """``fe80::1%eth0`` as ``fe80::1``: the zone does not change what the address is, but it
    does change equality, which would let a zoned metadata address slip past the set."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
