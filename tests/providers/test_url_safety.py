"""The URL policy: address classification (pure), then real fetches from servers on 127.0.0.1.

The fetch tests use real sockets. A test that needs a "public" name maps it to 127.0.0.1 with
an injected resolver and lets the policy admit exactly 127.0.0.1/32 via ``extra_allowed``.
"""

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from providers.url_safety import (
    IPAddress,
    Resolver,
    UnsafeUrl,
    UrlPolicy,
    address_refusal,
    check_url,
    resolve_safe,
    safe_async_client,
    system_resolver,
)

STRICT = UrlPolicy()
LOCAL = UrlPolicy(allow_private=True, allowed_schemes=frozenset({"http", "https"}))
TIMEOUT = httpx.Timeout(5.0)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


# --- classification ---------------------------------------------------------------------------

REFUSED_BY_DEFAULT = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "private"),
    ("0.0.0.0", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("2001::1", "not a globally routable"),  # Teredo
    ("::7f00:1", "not a globally routable"),  # IPv4-compatible, reserved
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("::", "unspecified"),
    ("240.0.0.1", "not a globally routable"),
    ("255.255.255.255", "not a globally routable"),
    ("192.0.2.1", "not a globally routable"),  # documentation range
    ("fd00:ec2::254", "metadata"),
    ("fe80::1%eth0", "link-local"),
]
ALLOWED = ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), REFUSED_BY_DEFAULT)
def test_non_global_addresses_are_refused(address: str, reason: str) -> None:
    refusal = address_refusal(ip(address), STRICT)
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ip(address), STRICT) is None


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1",
     "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"],
)  # fmt: skip
def test_allow_private_admits_local_addresses(address: str) -> None:
    assert address_refusal(ip(address), UrlPolicy(allow_private=True)) is None


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1", "169.254.169.254", "169.254.170.2",
     "fd00:ec2::254", "::ffff:169.254.169.254"],
)  # fmt: skip
def test_allow_private_still_refuses_unspecified_multicast_reserved_and_metadata(
    address: str,
) -> None:
    assert address_refusal(ip(address), UrlPolicy(allow_private=True)) is not None


def test_extra_allowed_admits_only_the_listed_networks() -> None:
    policy = UrlPolicy(extra_allowed=frozenset({ipaddress.ip_network("127.0.0.1/32")}))
    assert address_refusal(ip("127.0.0.1"), policy) is None
    assert address_refusal(ip("127.0.0.2"), policy) is not None
    metadata = UrlPolicy(extra_allowed=frozenset({ipaddress.ip_network("169.254.0.0/16")}))
    assert address_refusal(ip("169.254.169.254"), metadata) is not None


# --- URL shape -----------------------------------------------------------------------------------


def test_https_only_by_default() -> None:
    assert check_url("https://media.example.test/v.mp4", STRICT) == ("media.example.test", 443)
    with pytest.raises(UnsafeUrl, match="scheme 'http'"):
        check_url("http://media.example.test/v.mp4", STRICT)
    for url in ["ftp://media.example.test/v.mp4", "file:///etc/passwd"]:
        with pytest.raises(UnsafeUrl, match="scheme"):
            check_url(url, LOCAL)


def test_user_info_is_refused_without_echoing_it() -> None:
    with pytest.raises(UnsafeUrl, match="user info") as raised:
        check_url("https://admin:hunter2@media.example.test/v.mp4?sig=s3cr3t", STRICT)
    assert "hunter2" not in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://METADATA.google.internal./",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[::ffff:a9fe:a9fe]/",
    ],
)
def test_metadata_hosts_are_refused_under_every_policy(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="metadata"):
        check_url(url, LOCAL)


def test_ip_literals_are_checked_without_dns() -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url("https://[::1]:8443/v.mp4", STRICT)
    assert check_url("https://[::1]:8443/v.mp4", LOCAL) == ("::1", 8443)


# --- resolution ----------------------------------------------------------------------------------


def fixed_resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    """A resolver answering from ``answers`` and the system for every other name."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host in answers:
            return [ip(address) for address in answers[host]]
        return await system_resolver(host, port)

    return resolve


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match=r"localhost resolves to .*loopback"):
        await resolve_safe("https://localhost/v.mp4", STRICT)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
async def test_numeric_host_spellings_are_judged_by_what_they_resolve_to(host: str) -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        await resolve_safe(f"https://{host}/v.mp4", STRICT)


async def test_one_unsafe_record_among_safe_ones_refuses_the_host() -> None:
    resolver = fixed_resolver({"cdn.example.test": ["8.8.8.8", "10.0.0.7"]})
    with pytest.raises(UnsafeUrl, match=r"10\.0\.0\.7, a private"):
        await resolve_safe("https://cdn.example.test/v.mp4", STRICT, resolver=resolver)
    resolver = fixed_resolver({"cdn.example.test": ["8.8.8.8", "2606:4700::1111"]})
    addresses = await resolve_safe("https://cdn.example.test/v.mp4", STRICT, resolver=resolver)
    assert addresses == [ip("8.8.8.8"), ip("2606:4700::1111")]


# --- fetching through the safe client ----------------------------------------------------------


class _EchoHost(BaseHTTPRequestHandler):
    """Answers every GET with the Host header it received."""

    def do_GET(self) -> None:
        body = self.headers.get("Host", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serving(httpd: ThreadingHTTPServer) -> Iterator[int]:
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), _EchoHost)) as bound:
        yield bound


ONLY_127_0_0_1 = UrlPolicy(
    allowed_schemes=frozenset({"http"}),
    extra_allowed=frozenset({ipaddress.ip_network("127.0.0.1/32")}),
)


async def test_a_loopback_server_is_refused_by_default_and_reached_with_allow_private(
    port: int,
) -> None:
    http_only = UrlPolicy(allowed_schemes=frozenset({"http"}))
    async with safe_async_client(http_only, timeout=TIMEOUT) as client:
        for url in [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/"]:
            with pytest.raises(UnsafeUrl, match="loopback"):
                await client.get(url)
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        response = await client.get(f"http://localhost:{port}/")
    assert response.status_code == 200


async def test_connections_go_to_the_vetted_address_with_the_original_host_header(
    port: int,
) -> None:
    # The system cannot resolve this name, so reaching the server proves the connection used
    # the address our resolver returned and we vetted.
    resolver = fixed_resolver({"media.example.test": ["127.0.0.1"]})
    async with safe_async_client(ONLY_127_0_0_1, timeout=TIMEOUT, resolver=resolver) as client:
        response = await client.get(f"http://media.example.test:{port}/")
    assert response.text == f"media.example.test:{port}"


async def test_the_next_vetted_address_is_tried_when_one_does_not_answer(port: int) -> None:
    # Nothing listens on [::1] at this port, so the connection falls through to 127.0.0.1.
    resolver = fixed_resolver({"dual.example.test": ["::1", "127.0.0.1"]})
    async with safe_async_client(LOCAL, timeout=TIMEOUT, resolver=resolver) as client:
        response = await client.get(f"http://dual.example.test:{port}/")
    assert response.text == f"dual.example.test:{port}"


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


async def test_ipv6_literals_connect_through_the_vetting_backend() -> None:
    try:
        httpd = _IPv6Server(("::1", 0), _EchoHost)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with _serving(httpd) as v6_port:
        async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
            response = await client.get(f"http://[::1]:{v6_port}/")
        assert response.text == f"[::1]:{v6_port}"


async def test_the_address_is_vetted_again_when_connecting(port: int) -> None:
    """DNS rebinding: a first answer passes a check made before the request; the answer the
    connection gets is checked again, and refused."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ip(address) for address in next(answers)]

    url = f"http://rebind.example.test:{port}/"
    assert await resolve_safe(url, ONLY_127_0_0_1, resolver=rebinding) == [ip("127.0.0.1")]
    async with safe_async_client(ONLY_127_0_0_1, timeout=TIMEOUT, resolver=rebinding) as client:
        with pytest.raises(UnsafeUrl, match="metadata"):
            await client.get(url)


async def test_unresolvable_names_are_connect_errors() -> None:
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://no-such-host.invalid/")


async def test_the_client_does_not_follow_redirects_or_use_env_proxies(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would resolve and connect on our behalf, past the address check.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"]:
        monkeypatch.setenv(name, f"http://127.0.0.1:{dead}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{port}/")
        assert client.follow_redirects is False
    assert response.text == f"127.0.0.1:{port}"


# --- TLS through a pinned address -------------------------------------------------------------


def _issue_certificate(directory: Path, hostname: str) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (its PEM bundle) and a server context with a certificate for
    ``hostname`` signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kyma test CA")])

    def builder(subject: x509.Name, key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )

    ca_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca_cert = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        builder(subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    bundle = directory / f"ca-for-{hostname}.pem"
    bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = directory / f"{hostname}.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return bundle, context


def _https_server(directory: Path, certificate_for: str) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 and the CA bundle that trusts it. Its certificate is
    made with ``cryptography`` (installed with moto[server]); trustme is not a dependency."""
    pytest.importorskip("cryptography", reason="the test CA is made with `cryptography`")
    bundle, context = _issue_certificate(directory, certificate_for)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHost)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with _serving(httpd) as port:
        yield port, bundle


@pytest.fixture(scope="module")
def https_localhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    yield from _https_server(tmp_path_factory.mktemp("tls"), "localhost")


@pytest.fixture(scope="module")
def https_wrong_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    yield from _https_server(tmp_path_factory.mktemp("tls"), "elsewhere.example.test")


async def test_tls_verifies_the_host_name_while_connecting_to_the_pinned_address(
    https_localhost: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, bundle = https_localhost
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        response = await client.get(f"https://localhost:{port}/")
    assert response.status_code == 200
    assert response.text == f"localhost:{port}"


async def test_tls_refuses_a_certificate_for_another_name(
    https_wrong_name: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, bundle = https_wrong_name
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{port}/")


async def test_tls_refuses_a_ca_that_is_not_trusted(
    https_localhost: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _bundle = https_localhost
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with safe_async_client(LOCAL, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{port}/")
