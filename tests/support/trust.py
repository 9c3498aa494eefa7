"""Helpers for the nuseal.trust tests (no tests here).

* :func:`vector_signatures`: the signer / timestamp certificates of the real nuget.org vectors, read with
  asn1crypto straight from ``.signature.p7s`` (a stand-in until ``nuseal.signature`` lands).
* :class:`Pki`: a small certificate factory on ``cryptography`` for synthetic chains.
* :class:`LoopbackServer`: a real HTTP server on 127.0.0.1 that serves OCSP and CRL responses built in the test.
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuseal.trust.certificate import load_der_certificate, subject_key_identifier

SHARED = Path(__file__).resolve().parents[3] / "shared"  # ../shared next to the repository
VECTORS = SHARED / "vectors" / "nuget.org"
CODESIGN_BUNDLE = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP_BUNDLE = SHARED / "trust" / "timestampctl.pem"
# ``nuseal verify`` options that judge the real vectors offline against the shared trust bundles
CLI_TRUST_ARGS = [
    "--revocation-mode", "offline",
    "--code-signing-roots", str(CODESIGN_BUNDLE),
    "--timestamping-roots", str(TIMESTAMP_BUNDLE),
]
UTC = dt.UTC

# --------------------------------------------------------------------------- real vectors

_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
_COUNTERSIGNATURE = "1.2.840.113549.1.9.6"


@dataclass(frozen=True)
class VectorTimestamp:
    gen_time: dt.datetime
    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class VectorSignature:
    package: str
    kind: str  # "primary" or "countersignature"
    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]  # the outer SignedData bag
    timestamps: tuple[VectorTimestamp, ...]


def _certificates(signed_data: cms.SignedData) -> tuple[x509.Certificate, ...]:
    return tuple(
        load_der_certificate(choice.chosen.dump())
        for choice in signed_data["certificates"]
        if choice.name == "certificate"
    )


def _find_signer(signer_info: cms.SignerInfo, certs: tuple[x509.Certificate, ...]) -> x509.Certificate:
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "subject_key_identifier":
            if subject_key_identifier(cert) == sid.chosen.native:
                return cert
        elif (
            cert.serial_number == sid.chosen["serial_number"].native
            and cert.issuer.public_bytes() == sid.chosen["issuer"].dump()
        ):
            return cert
    raise LookupError("signer certificate not in the bag")


def _unsigned(signer_info: cms.SignerInfo, oid: str) -> list[core.Asn1Value]:
    attrs = signer_info["unsigned_attrs"]
    if isinstance(attrs, core.Void):
        return []
    return [value for attr in attrs if attr["type"].dotted == oid for value in attr["values"]]


def _timestamps(signer_info: cms.SignerInfo) -> tuple[VectorTimestamp, ...]:
    found = []
    for token in _unsigned(signer_info, _TIMESTAMP_TOKEN):
        signed_data = token["content"]
        info = signed_data["encap_content_info"]["content"].parsed
        certs = _certificates(signed_data)
        found.append(
            VectorTimestamp(info["gen_time"].native, _find_signer(signed_data["signer_infos"][0], certs), certs)
        )
    return tuple(found)


@functools.cache
def vector_signatures(name: str) -> tuple[VectorSignature, ...]:
    """The primary signature and any countersignature of vector ``name`` (a file in VECTORS)."""
    with zipfile.ZipFile(VECTORS / name) as archive:
        data = archive.read(".signature.p7s")
    signed_data = cms.ContentInfo.load(data)["content"]
    certs = _certificates(signed_data)
    primary = signed_data["signer_infos"][0]
    result = [VectorSignature(name, "primary", _find_signer(primary, certs), certs, _timestamps(primary))]
    for counter in _unsigned(primary, _COUNTERSIGNATURE):
        result.append(
            VectorSignature(name, "countersignature", _find_signer(counter, certs), certs, _timestamps(counter))
        )
    return tuple(result)


def vector_names() -> list[str]:
    return sorted(p.name for p in VECTORS.glob("*.nupkg"))


# --------------------------------------------------------------------------- synthetic PKI

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A cached RSA key per name (generation is the slow part of these tests)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Pki:
    """Builds certificates; every argument has a sensible default for a code-signing chain valid at NOW."""

    not_before: dt.datetime = NOW - dt.timedelta(days=365)
    not_after: dt.datetime = NOW + dt.timedelta(days=365)
    serial: int = field(default=1000)

    def issue(
        self,
        subject: str,
        *,
        issuer: Issued | None = None,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
        ca: bool | None = False,
        path_length: int | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        key_usage: str | None = "auto",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        hash_algorithm: hashes.HashAlgorithm | None = None,
        extra: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
        key_ids: bool = True,
        ocsp_nocheck: bool = False,
        pss: bool = False,
    ) -> Issued:
        self.serial += 1
        key = key or rsa_key(subject)
        signer_key = issuer.key if issuer else key
        issuer_name = issuer.cert.subject if issuer else name(subject)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(self.serial)
            .not_valid_before(not_before or self.not_before)
            .not_valid_after(not_after or self.not_after)
        )
        if ca is not None:
            builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        if key_usage == "auto":
            if ca:
                usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
            else:
                usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
            builder = builder.add_extension(usage, critical=True)
        if key_ids:
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            if issuer is not None:
                builder = builder.add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
                )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if ocsp_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                        )
                    ]
                ),
                critical=False,
            )
        if crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
                ),
                critical=False,
            )
        if ocsp_nocheck:
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        for extension, critical in extra:
            builder = builder.add_extension(extension, critical=critical)
        padding = rsa_padding.PSS(rsa_padding.MGF1(hashes.SHA256()), rsa_padding.PSS.DIGEST_LENGTH) if pss else None
        cert = builder.sign(signer_key, hash_algorithm or hashes.SHA256(), rsa_padding=padding)  # type: ignore[arg-type]
        return Issued(cert, key)

    def code_signing_chain(self, **leaf_options: object) -> tuple[Issued, Issued, Issued]:
        """root -> intermediate CA -> code-signing leaf."""
        root = self.issue("Test Root CA", ca=True)
        intermediate = self.issue("Test Code Signing CA", issuer=root, ca=True)
        options: dict[str, object] = {"eku": [ExtendedKeyUsageOID.CODE_SIGNING]}
        options.update(leaf_options)
        leaf = self.issue("Test Signer", issuer=intermediate, **options)  # type: ignore[arg-type]
        return root, intermediate, leaf


def ocsp_response(
    cert: x509.Certificate,
    issuer: Issued,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    revocation_time: dt.datetime | None = None,
    this_update: dt.datetime = NOW - dt.timedelta(hours=1),
    next_update: dt.datetime | None = NOW + dt.timedelta(days=1),
    responder: Issued | None = None,
) -> bytes:
    """A DER OCSPResponse for ``cert`` signed by its issuer (or a delegated ``responder``)."""
    signer = responder or issuer
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revocation_time,
        revocation_reason=x509.ReasonFlags.key_compromise if revocation_time else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if responder is not None:
        builder = builder.certificates([responder.cert])
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


def crl(
    issuer: Issued,
    revoked: dict[int, dt.datetime] | None = None,
    *,
    last_update: dt.datetime = NOW - dt.timedelta(hours=1),
    next_update: dt.datetime = NOW + dt.timedelta(days=7),
) -> bytes:
    """A DER CRL by ``issuer`` listing ``revoked`` (serial -> revocation date)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    for serial, when in (revoked or {}).items():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- loopback HTTP

Handler = Callable[[bytes], tuple[int, bytes]]


class LoopbackServer:
    """An HTTP server on 127.0.0.1 with per-path handlers ``body -> (status, bytes)`` and hit counters."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                route = server.routes.get(self.path)
                status, payload = route(body) if route else (404, b"")
                if server.release.is_set():
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def hang(self, path: str) -> None:
        """Make ``path`` accept the request and never answer (until the server closes)."""

        def handler(body: bytes) -> tuple[int, bytes]:
            self.release.wait(30)
            return 500, b""

        self.routes[path] = handler

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def closed_port_url(path: str) -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
