"""Online revocation against a real loopback HTTP server serving OCSP responses and CRLs built here."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.errors import NetworkError, UsageError
from nuseal.trust import (
    CertificatePurpose,
    ChainBuilder,
    ChainStatus,
    RevocationCache,
    RevocationChecker,
    RevocationMode,
    RevocationStatus,
    TrustStore,
)
from nuseal.trust.online import HttpRevocationFetcher
from nuseal.trust.revocation import REVOCATION_MODE_ENV
from support.trust import NOW, Issued, LoopbackServer, Pki, closed_port_url, crl, ocsp_response

AT = NOW - dt.timedelta(days=30)  # the "timestamp"
REVOKED_AT = NOW - dt.timedelta(days=10)  # after the timestamp: NuGet's client still fails the chain


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.close()


class CountingFetcher(HttpRevocationFetcher):
    """The real HTTP fetcher, counting calls (to prove offline mode and the cache do not fetch)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.calls: list[str] = []

    def fetch_ocsp(self, url: str, request: bytes) -> bytes:
        self.calls.append(url)
        return super().fetch_ocsp(url, request)

    def fetch_crl(self, url: str) -> bytes:
        self.calls.append(url)
        return super().fetch_crl(url)


def ocsp_route(issuer: Issued, statuses: dict[int, dt.datetime | None], **kwargs: object):  # type: ignore[no-untyped-def]
    """An OCSP responder: parses the request, answers for its serial (None = good, datetime = revoked at)."""
    certs: dict[int, x509.Certificate] = {}

    def handler(body: bytes) -> tuple[int, bytes]:
        request = ocsp.load_der_ocsp_request(body)
        cert = certs[request.serial_number]
        revoked_at = statuses.get(request.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        return 200, ocsp_response(cert, issuer, status=status, revocation_time=revoked_at, **kwargs)  # type: ignore[arg-type]

    handler.certs = certs  # type: ignore[attr-defined]
    return handler


def build(store: TrustStore, leaf: Issued, chain: list[Issued], fetcher: HttpRevocationFetcher, **kwargs: object):  # type: ignore[no-untyped-def]
    builder = ChainBuilder(store, revocation_mode=RevocationMode.ONLINE, fetcher=fetcher, **kwargs)  # type: ignore[arg-type]
    return builder.build(
        leaf.cert,
        extra_certificates=[c.cert for c in chain],
        purpose=CertificatePurpose.CODE_SIGNING,
        at=AT,
        now=NOW,
    )


def test_ocsp_good_for_leaf_and_crl_good_for_intermediate(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    intermediate = pki.issue("Intermediate", issuer=root, ca=True, crl_url=server.url("/root.crl"))
    leaf = pki.issue(
        "Signer", issuer=intermediate, eku=[ExtendedKeyUsageOID.CODE_SIGNING], ocsp_url=server.url("/ocsp")
    )
    route = ocsp_route(intermediate, {})
    route.certs[leaf.cert.serial_number] = leaf.cert
    server.routes["/ocsp"] = route
    server.routes["/root.crl"] = lambda body: (200, crl(root))
    fetcher = CountingFetcher()
    result = build(TrustStore.from_certificates([root.cert]), leaf, [intermediate], fetcher)
    assert result.statuses == ChainStatus.NO_ERROR
    assert result.succeeded
    assert result.elements[0].revocation is not None
    assert result.elements[0].revocation.status is RevocationStatus.GOOD
    assert result.elements[0].revocation.source == server.url("/ocsp")
    assert result.elements[1].revocation is not None
    assert result.elements[1].revocation.source == server.url("/root.crl")
    assert result.elements[2].revocation is None  # ExcludeRoot
    assert server.hits == {"/ocsp": 1, "/root.crl": 1}


def test_ocsp_revoked_reports_time_even_after_timestamp(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], ocsp_url=server.url("/ocsp"))
    route = ocsp_route(root, {leaf.cert.serial_number: REVOKED_AT})
    route.certs[leaf.cert.serial_number] = leaf.cert
    server.routes["/ocsp"] = route
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOKED
    assert result.revocation_time == REVOKED_AT
    assert result.revocation_time > result.verification_time
    assert result.messages_for(ChainStatus.REVOKED) == ("Revoked: certificate revoked",)
    element = result.revoked_element
    assert element is not None and element.certificate == leaf.cert
    assert element.revocation is not None and element.revocation.reason == "key_compromise"


def test_crl_revoked_when_no_ocsp(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], crl_url=server.url("/ca.crl"))
    revoked_at = AT - dt.timedelta(days=1)
    server.routes["/ca.crl"] = lambda body: (200, crl(root, {leaf.cert.serial_number: revoked_at}))
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOKED
    assert result.revocation_time == revoked_at


def test_crl_not_listing_the_certificate_is_good(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], crl_url=server.url("/ca.crl"))
    server.routes["/ca.crl"] = lambda body: (200, crl(root, {leaf.cert.serial_number + 1: AT}))
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.NO_ERROR


def test_unreachable_ocsp_falls_back_to_crl(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue(
        "Signer",
        issuer=root,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ocsp_url=closed_port_url("/ocsp"),
        crl_url=server.url("/ca.crl"),
    )
    server.routes["/ca.crl"] = lambda body: (200, crl(root))
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.NO_ERROR
    assert result.elements[0].revocation is not None
    assert result.elements[0].revocation.source == server.url("/ca.crl")


def test_everything_unreachable_is_unknown_and_offline_within_the_timeout(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    server.hang("/slow.crl")
    leaf = pki.issue(
        "Signer",
        issuer=root,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ocsp_url=closed_port_url("/ocsp"),
        crl_url=server.url("/slow.crl"),
    )
    started = time.monotonic()
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher(timeout=0.3))
    elapsed = time.monotonic() - started
    assert elapsed < 3
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
    revocation = result.elements[0].revocation
    assert revocation is not None and revocation.offline
    assert "did not answer within 0.3 s" in revocation.message


def test_bad_responses_are_unknown_but_not_offline(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    impostor = pki.issue("Impostor", ca=True)
    leaf = pki.issue(
        "Signer",
        issuer=root,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ocsp_url=server.url("/ocsp"),
        crl_url=server.url("/ca.crl"),
    )
    # OCSP signed by a key that is neither the issuer nor authorised by it; CRL that went stale.
    server.routes["/ocsp"] = lambda body: (200, ocsp_response(leaf.cert, root, responder=impostor))
    server.routes["/ca.crl"] = lambda body: (
        200,
        crl(root, last_update=NOW - dt.timedelta(days=14), next_update=NOW - dt.timedelta(days=7)),
    )
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN
    revocation = result.elements[0].revocation
    assert revocation is not None and not revocation.offline
    assert "signed by an unauthorized certificate" in revocation.message


def test_only_stale_crl_is_offline_revocation(server: LoopbackServer) -> None:
    # .NET maps X509_V_ERR_CRL_HAS_EXPIRED to OfflineRevocation: no current data could be had.
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], crl_url=server.url("/ca.crl"))
    server.routes["/ca.crl"] = lambda body: (
        200,
        crl(root, last_update=NOW - dt.timedelta(days=14), next_update=NOW - dt.timedelta(days=7)),
    )
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
    assert "not recent enough" in result.elements[0].revocation.message  # type: ignore[union-attr]


def test_http_error_and_garbage_are_unknown(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue(
        "Signer",
        issuer=root,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ocsp_url=server.url("/missing"),
        crl_url=server.url("/garbage.crl"),
    )
    server.routes["/garbage.crl"] = lambda body: (200, b"not a crl")
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert ChainStatus.REVOCATION_STATUS_UNKNOWN in result.statuses
    message = result.elements[0].revocation.message  # type: ignore[union-attr]
    assert "HTTP 404" in message
    assert "not a CRL" in message


def test_delegated_ocsp_responder_with_nocheck(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    responder = pki.issue("OCSP Responder", issuer=root, eku=[ExtendedKeyUsageOID.OCSP_SIGNING], ocsp_nocheck=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], ocsp_url=server.url("/ocsp"))
    route = ocsp_route(root, {leaf.cert.serial_number: REVOKED_AT}, responder=responder)
    route.certs[leaf.cert.serial_number] = leaf.cert
    server.routes["/ocsp"] = route
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOKED
    assert result.revocation_time == REVOKED_AT


def test_offline_mode_never_fetches(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], crl_url=server.url("/ca.crl"))
    server.routes["/ca.crl"] = lambda body: (200, crl(root, {leaf.cert.serial_number: AT}))
    fetcher = CountingFetcher()
    builder = ChainBuilder(
        TrustStore.from_certificates([root.cert]), revocation_mode=RevocationMode.OFFLINE, fetcher=fetcher
    )
    result = builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=AT, now=NOW)
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
    assert fetcher.calls == []
    assert server.hits == {}


def test_no_fetcher_no_network_even_online(server: LoopbackServer) -> None:
    """Library use: a builder given no fetcher asks no server, whatever the mode (issue 12: no hidden I/O)."""
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], crl_url=server.url("/ca.crl"))
    server.routes["/ca.crl"] = lambda body: (200, crl(root, {leaf.cert.serial_number: AT}))
    for builder in (
        ChainBuilder(TrustStore.from_certificates([root.cert])),
        ChainBuilder(TrustStore.from_certificates([root.cert]), revocation_mode=RevocationMode.ONLINE),
    ):
        result = builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=AT, now=NOW)
        assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
        assert result.elements[0].revocation is not None and result.elements[0].revocation.offline
    assert server.hits == {}


def test_cache_answers_until_next_update(server: LoopbackServer) -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING], ocsp_url=server.url("/ocsp"))
    next_update = NOW + dt.timedelta(hours=2)
    route = ocsp_route(root, {}, next_update=next_update)
    route.certs[leaf.cert.serial_number] = leaf.cert
    server.routes["/ocsp"] = route
    cache = RevocationCache()
    fetcher = CountingFetcher()
    builder = ChainBuilder(
        TrustStore.from_certificates([root.cert]), revocation_mode=RevocationMode.ONLINE, fetcher=fetcher, cache=cache
    )
    for now in (NOW, NOW + dt.timedelta(hours=1)):
        assert builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=AT, now=now).succeeded
    assert len(fetcher.calls) == 1
    assert len(cache) == 1
    # Offline mode consults the cache too (as .NET consults its CRL cache).
    offline = ChainBuilder(
        TrustStore.from_certificates([root.cert]), revocation_mode=RevocationMode.OFFLINE, cache=cache
    )
    assert (
        offline.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=AT, now=NOW).statuses
        == ChainStatus.NO_ERROR
    )
    # Past nextUpdate the entry is gone and the responder is asked again (its answer is then stale: its
    # this/nextUpdate window no longer covers 'now', so the result is unknown).
    later = builder.build(
        leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=AT, now=next_update + dt.timedelta(hours=1)
    )
    assert len(fetcher.calls) == 2
    assert ChainStatus.REVOCATION_STATUS_UNKNOWN in later.statuses


def test_no_revocation_information_is_unknown_not_offline() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    fetcher = CountingFetcher()
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], fetcher)
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN
    assert fetcher.calls == []


def test_checker_rejects_misuse() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    checker = RevocationChecker(None)
    with pytest.raises(UsageError):
        checker.check([root.cert], 0, now=NOW, mode=RevocationMode.ONLINE)
    with pytest.raises(UsageError):
        checker.check([root.cert, root.cert], 0, now=NOW.replace(tzinfo=None), mode=RevocationMode.ONLINE)


def test_http_fetcher_limits(server: LoopbackServer) -> None:
    server.routes["/big"] = lambda body: (200, b"x" * 2048)
    server.routes["/ok"] = lambda body: (200, b"crl-bytes")
    fetcher = HttpRevocationFetcher(max_crl_bytes=1024, max_ocsp_bytes=1024)
    assert fetcher.fetch_crl(server.url("/ok")) == b"crl-bytes"
    with pytest.raises(NetworkError, match="more than 1024 bytes"):
        fetcher.fetch_crl(server.url("/big"))
    with pytest.raises(NetworkError, match="more than 1024 bytes"):
        fetcher.fetch_ocsp(server.url("/big"), b"request")
    with pytest.raises(NetworkError, match="not http or https"):
        fetcher.fetch_crl("ldap://127.0.0.1/cn=crl")
    with pytest.raises(NetworkError, match="could not be reached"):
        fetcher.fetch_crl(closed_port_url("/x.crl"))
    with pytest.raises(UsageError):
        HttpRevocationFetcher(timeout=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, RevocationMode.ONLINE),
        ("", RevocationMode.ONLINE),
        ("offline", RevocationMode.OFFLINE),
        (" OffLine ", RevocationMode.OFFLINE),
        ("1", RevocationMode.OFFLINE),
        ("ONLINE", RevocationMode.ONLINE),
        ("0", RevocationMode.ONLINE),
        ("nonsense", RevocationMode.ONLINE),
    ],
)
def test_revocation_mode_from_env(value: str | None, expected: RevocationMode) -> None:
    environ = {} if value is None else {REVOCATION_MODE_ENV: value}
    assert RevocationMode.from_env(environ) is expected


@pytest.mark.parametrize(
    "mangle",
    [
        lambda good: b"",
        lambda good: good[: len(good) // 2],
        lambda good: good[:-1] + bytes([good[-1] ^ 0xFF]),  # signature bit flip
        lambda good: b"\x30\x03\x0a\x01\x01",  # OCSPResponse malformedRequest
        lambda good: b"\x30\x80" + b"\x00" * 64,
    ],
)
def test_malformed_responses_never_raise(server: LoopbackServer, mangle) -> None:  # type: ignore[no-untyped-def]
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue(
        "Signer",
        issuer=root,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ocsp_url=server.url("/ocsp"),
        crl_url=server.url("/ca.crl"),
    )
    good_ocsp = ocsp_response(leaf.cert, root)
    good_crl = crl(root)
    server.routes["/ocsp"] = lambda body: (200, mangle(good_ocsp))
    server.routes["/ca.crl"] = lambda body: (200, mangle(good_crl))
    result = build(TrustStore.from_certificates([root.cert]), leaf, [], HttpRevocationFetcher())
    assert result.statuses == ChainStatus.REVOCATION_STATUS_UNKNOWN
    assert server.hits == {"/ocsp": 1, "/ca.crl": 1}
