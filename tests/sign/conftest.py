"""Fixtures and helpers for the signing tests: a dev PKI served on loopback, packages built on the fly, an
independent from-spec package hash, openssl checks, NuGet's own signer (the oracle), and timestamp servers
that misbehave on purpose.

Nothing here calls nuseal's signing code: helpers that build CMS by hand (:func:`countersign_by_hand`) use
asn1crypto and cryptography directly, so tests that compare them with nuseal compare two implementations.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nuseal.devpki import DevPki, DevPkiServer, serve, timestamp_response
from nuseal.errors import NetworkError
from nuseal.hashalg import HashAlgorithm
from nuseal.signing import SigningTrust
from nuseal.signing.signer import FileSigner
from nuseal.trust import RevocationMode, TrustStore
from nuseal.trust.online import HttpRevocationFetcher
from nuseal.verify import VerificationPolicy, VerificationResult, Verifier
from support import oracle
from support.packages import nupkg, nuspec_xml

TESTS = Path(__file__).resolve().parents[1]
SHARED = TESTS.parents[1] / "shared"
VECTORS = SHARED / "vectors" / "nuget.org"
REPO_URL = "https://feed.example/v3/index.json"
TIMESTAMP_TOKEN_OID = "1.2.840.113549.1.9.16.2.14"
COUNTERSIGNATURE_OID = "1.2.840.113549.1.9.6"


@dataclass
class Pki:
    """A dev PKI and its running responders (TSA, OCSP, CRL) on 127.0.0.1."""

    dev: DevPki
    server: DevPkiServer

    def signer(self, name: str = "author") -> FileSigner:
        return FileSigner.from_pfx(self.dev.pfx_path(name), self.dev.pfx_password)

    def strict_trust(self, **kwargs: Any) -> SigningTrust:
        """NuGet's behaviour: only the dev root is trusted, for signatures and timestamps; revocation online
        (over HTTP to the loopback responders) unless told otherwise."""
        kwargs.setdefault("fetcher", HttpRevocationFetcher())
        return SigningTrust.from_pem_files(self.dev.root_pem_path, **kwargs)

    def verifier(self, policy: VerificationPolicy | None = None, **kwargs: Any) -> Verifier:
        """A verifier trusting the dev root; an online policy asks the loopback responders over HTTP."""
        root = TrustStore.from_pem_file(self.dev.root_pem_path)
        policy = policy or VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE)
        if policy.revocation_mode is RevocationMode.ONLINE and kwargs.get("fetcher") is None:
            kwargs["fetcher"] = HttpRevocationFetcher()
        return Verifier(policy, code_signing_roots=root, timestamping_roots=root, **kwargs)

    def verify(self, data: bytes, policy: VerificationPolicy | None = None, **kwargs: Any) -> VerificationResult:
        return self.verifier(policy, **kwargs).verify_bytes(data, now=datetime.now(UTC))


def _served(directory: Path) -> Iterator[Pki]:
    dev = DevPki.create(directory)
    with serve(dev) as server:
        yield Pki(dev, server)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """One PKI per test module; tests must not revoke or shift its clock (use ``fresh_pki``)."""
    yield from _served(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fresh_pki(tmp_path: Path) -> Iterator[Pki]:
    """A PKI of its own (new keys, new port): free to revoke certificates or move the TSA's clock."""
    yield from _served(tmp_path / "pki")


# ---------------------------------------------------------------------------------------------- packages
def unsigned_package(package_id: str = "Sign.Test", size: int = 4096) -> bytes:
    nuspec = nuspec_xml(package_id, "1.0.0", authors="a", description="d", namespace=None, declaration=None,
                        compact=True)
    dll = b"MZ" + hashlib.sha256(package_id.encode()).digest() * (size // 32)
    return nupkg([(f"{package_id}.nuspec", nuspec), (f"lib/net8.0/{package_id}.dll", dll)])


def signature_der(package: bytes) -> bytes:
    return zipfile.ZipFile(io.BytesIO(package)).read(".signature.p7s")


def signed_data(package: bytes) -> cms.SignedData:
    return cms.ContentInfo.load(signature_der(package))["content"]


def spec_hash(data: bytes, algorithm: str) -> bytes:
    """NUGET-SIGNING.md §2.3, written again from the spec: the hash of a signed package without its signature.

    Independent of ``nuseal.package``: only ``struct`` and ``hashlib``.
    """
    eocd = data.rfind(b"PK\x05\x06")
    at = struct.unpack_from("<I", data, eocd + 16)[0]
    records = []
    while data[at:at + 4] == b"PK\x01\x02":
        flags = struct.unpack_from("<H", data, at + 8)[0]
        n, x, c = struct.unpack_from("<HHH", data, at + 28)
        lho = struct.unpack_from("<I", data, at + 42)[0]
        records.append({"pos": at, "lho": lho, "name": data[at + 46:at + 46 + n], "flags": flags,
                        "size": 46 + n + x + c})
        at += 46 + n + x + c
    (sig,) = [r for r in records if r["name"] == b".signature.p7s" and not r["flags"] & 0x800]
    start_cd = min(r["pos"] for r in records)
    ordered = sorted(records, key=lambda r: r["lho"])
    for this, following in zip(ordered, [*ordered[1:], None], strict=True):
        this["total"] = (following["lho"] if following else start_cd) - this["lho"]
    others = [r for r in ordered if r is not sig]
    previous_end = 0
    for r in others:
        r["shift"] = previous_end - r["lho"]
        previous_end = r["lho"] + r["total"] + r["shift"]
    h = hashlib.new(algorithm)
    h.update(data[:min(r["lho"] for r in records)])
    for r in others:
        h.update(data[r["lho"]:r["lho"] + r["total"]])
    for r in sorted(others, key=lambda r: r["pos"]):
        h.update(data[r["pos"]:r["pos"] + 42])
        h.update(struct.pack("<I", (r["lho"] + r["shift"]) & 0xFFFFFFFF))
        h.update(data[r["pos"] + 46:r["pos"] + r["size"]])
    end = records[-1]["pos"] + records[-1]["size"]
    disk_entries, entries, cd_size, cd_offset = struct.unpack_from("<HHII", data, end + 8)
    h.update(data[end:end + 8])
    h.update(struct.pack("<HHII", (disk_entries - 1) & 0xFFFF, (entries - 1) & 0xFFFF,
                         (cd_size - sig["size"]) & 0xFFFFFFFF, (cd_offset - sig["total"]) & 0xFFFFFFFF))
    h.update(data[end + 20:])
    return h.digest()


def hash_property(package: bytes) -> tuple[str, bytes]:
    """The ``<oid>-Hash`` property of the signature content: (hash OID, value)."""
    content = signed_data(package)["encap_content_info"]["content"].native.decode("utf-8")
    line = next(x for x in content.split("\n") if "-Hash:" in x)
    oid, value = line.split("-Hash:")
    return oid, base64.b64decode(value)


# ---------------------------------------------------------------------------------------------- openssl
def openssl_cms_verify(signature: bytes, root: Path, tmp: Path) -> bytes:
    """``openssl cms -verify`` of the .signature.p7s against ``root``; returns the verified content."""
    (tmp / "sig.p7s").write_bytes(signature)
    run = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "sig.p7s"),
                          "-CAfile", str(root), "-purpose", "any", "-out", str(tmp / "content")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return (tmp / "content").read_bytes()


def openssl_ts_verify(token: bytes, stamped: bytes, root: Path, tmp: Path) -> None:
    """``openssl ts -verify`` of ``token`` over the bytes it stamps, trusting only ``root`` (the token must
    carry its own chain)."""
    (tmp / "token.der").write_bytes(token)
    (tmp / "stamped.bin").write_bytes(stamped)
    run = subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in", str(tmp / "token.der"), "-data",
                          str(tmp / "stamped.bin"), "-CAfile", str(root)], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr + run.stdout


def unsigned_attribute(info: cms.SignerInfo, oid: str) -> list[Any]:
    if isinstance(info["unsigned_attrs"], core.Void):  # never .native: asn1crypto re-encodes whole subtrees
        return []
    return [v for a in info["unsigned_attrs"] if a["type"].dotted == oid for v in a["values"]]


_HASHLIB = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA384: "sha384", HashAlgorithm.SHA512: "sha512"}


def independent_checks(pki: Pki, package: bytes, unsigned: bytes, tmp_path: Path) -> None:
    """openssl verifies the CMS and every timestamp token; the content hash equals a from-spec hash of the
    signed file and a plain hash of the unsigned one."""
    content = openssl_cms_verify(signature_der(package), pki.dev.root_pem_path, tmp_path)
    assert content.startswith(b"Version:1\n\n")
    oid, value = hash_property(package)
    name = _HASHLIB[HashAlgorithm.from_oid(oid)]  # type: ignore[index]
    assert value == spec_hash(package, name) == HashAlgorithm.from_oid(oid).digest(unsigned)  # type: ignore[union-attr]
    primary = signed_data(package)["signer_infos"][0]
    for token in unsigned_attribute(primary, TIMESTAMP_TOKEN_OID):
        openssl_ts_verify(token.dump(), primary["signature"].native, pki.dev.root_pem_path, tmp_path)
    for counter in unsigned_attribute(primary, COUNTERSIGNATURE_OID):
        for token in unsigned_attribute(counter, TIMESTAMP_TOKEN_OID):
            openssl_ts_verify(token.dump(), counter["signature"].native, pki.dev.root_pem_path, tmp_path)


# ---------------------------------------------------------------------------------------------- revocation
class CrlOnly:
    """Revocation transport with the OCSP responder down: CRLs over real HTTP, OCSP unreachable."""

    def __init__(self) -> None:
        self.http = HttpRevocationFetcher()
        self.crls: list[str] = []

    def fetch_ocsp(self, url: str, request: bytes) -> bytes:
        raise NetworkError(f"{url}: connection refused")

    def fetch_crl(self, url: str) -> bytes:
        self.crls.append(url)
        return self.http.fetch_crl(url)


# ---------------------------------------------------------------------------------------------- oracle
def oracle_sign(pki: Pki, source: bytes, tmp: Path, *, name: str = "author", kind: str = "author",
                tsa: bool = True, hash_name: str = "SHA256", owners: str = "alice;bob",
                extra: tuple[str, ...] = ("intermediate", "root"), timestamp_bundle: Path | None = None,
                ) -> tuple[bytes | None, dict[str, Any]]:
    """Sign ``source`` with NuGet's own ``SigningUtility.SignAsync``; (output or None, the oracle's report)."""
    report = oracle.sign(
        source, pfx=pki.dev.pfx_path(name), password=pki.dev.pfx_password, signature_type=kind,
        hash_algorithm=hash_name, trust_bundle=pki.dev.root_pem_path, timestamp_bundle=timestamp_bundle,
        extra_certs=[pki.dev.cert_path(cert) for cert in extra],  # the oracle reads one certificate per file
        tsa_url=pki.dev.tsa_url if tsa else None,
        v3_service_index_url=REPO_URL if kind == "repository" else None,
        owners=owners.split(";") if kind == "repository" else (),
    )
    doc: dict[str, Any] = json.loads(report.raw)
    return report.signed, doc


def oracle_exception_code(report: dict[str, Any]) -> str | None:
    """The NU code of the exception NuGet's signer threw (``None``: no exception or an uncoded one)."""
    text = report.get("exception") or ""
    for word in text.replace(":", " ").split():
        if word.startswith("NU3") and len(word) == 6:
            return word
    return None


def oracle_issues(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["code"], i["level"], i["message"]) for i in report.get("issues", [])]


def oracle_verify(pki: Pki, data: bytes) -> oracle.VerifyReport:
    return oracle.verify(data, trust_bundle=pki.dev.root_pem_path, timestamp_bundle=pki.dev.root_pem_path)


# ---------------------------------------------------------------------------------------------- timestamps
def timestamper_at(pki: Pki, gen_time: datetime, hash_name: str = "sha256", *,
                   tsa: str = "tsa") -> Callable[[bytes], bytes]:
    """A timestamper whose tokens say ``gen_time``, signed by the dev PKI's certificate ``tsa``, with none of
    the client's checks: for back-dated signatures and broken TSAs."""
    key = pki.dev.key(tsa)
    assert isinstance(key, rsa.RSAPrivateKey)
    chain = pki.dev.chain(tsa)

    def stamp(value: bytes) -> bytes:
        request = tsp.TimeStampReq({
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": hash_name},
                                "hashed_message": hashlib.new(hash_name, value).digest()},
            "nonce": 1234567,
            "cert_req": True,
        }).dump()
        reply = tsp.TimeStampResp.load(timestamp_response(request, tsa_cert=chain[0], tsa_key=key, chain=chain,
                                                          gen_time=gen_time))
        return bytes(reply["time_stamp_token"].dump())

    return stamp


Respond = Callable[[bytes], bytes]
Mutation = Callable[[bytes, Respond], tuple[int, bytes, float]]


class MisbehavingTsa:
    """An RFC 3161 server on 127.0.0.1 whose answer is ``mutate(request, respond)`` -> (HTTP status, body,
    delay between body bytes in seconds); ``respond`` is the dev TSA's real responder (its key, its chain or
    ``chain``)."""

    def __init__(self, pki: Pki, mutate: Mutation, chain: list[x509.Certificate] | None = None) -> None:
        key = pki.dev.key("tsa")
        assert isinstance(key, rsa.RSAPrivateKey)
        tsa_chain = chain or pki.dev.chain("tsa")
        outer = self
        self.stop_event = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                def respond(request: bytes) -> bytes:
                    return timestamp_response(request, tsa_cert=tsa_chain[0], tsa_key=key, chain=tsa_chain,
                                              gen_time=datetime.now(UTC))

                status, reply, delay = mutate(body, respond)
                self.send_response(status)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if not delay:
                    self.wfile.write(reply)
                    return
                for i in range(len(reply)):
                    if outer.stop_event.wait(delay):
                        return
                    self.wfile.write(reply[i:i + 1])
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def misbehaving_tsa(pki: Pki) -> Iterator[Callable[..., MisbehavingTsa]]:
    started: list[MisbehavingTsa] = []

    def start(mutate: Mutation, **kwargs: Any) -> MisbehavingTsa:
        server = MisbehavingTsa(pki, mutate, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# ---------------------------------------------------------------------------------------------- hand-made CMS
def countersign_by_hand(primary_der: bytes, pki: Pki, name: str = "repository", *,
                        owners: tuple[str, ...] = ("alice",)) -> bytes:
    """``primary_der`` with one more repository countersignature, built here with asn1crypto and
    cryptography only (no nuseal code), whatever the primary already carries: for structures nuseal refuses
    to make (NU3033, NU3032)."""
    info = cms.ContentInfo.load(primary_der)
    signed = info["content"]
    primary = signed["signer_infos"][0]
    cert = pki.dev.cert(name)
    key = pki.dev.key(name)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    asn1_cert = asn1_x509.Certificate.load(cert_der)
    ess = tsp.SigningCertificateV2({"certs": [{
        "hash_algorithm": {"algorithm": "sha256"},
        "cert_hash": hashlib.sha256(cert_der).digest(),
        "issuer_serial": {"issuer": [asn1_x509.GeneralName(name="directory_name", value=asn1_cert.issuer)],
                          "serial_number": asn1_cert.serial_number},
    }]})
    signed_attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": datetime.now(UTC)})]}),
        cms.CMSAttribute({"type": "1.2.840.113549.1.9.16.2.16",
                          "values": [_sequence(core.ObjectIdentifier("1.2.840.113549.1.9.16.6.2").dump())]}),
        cms.CMSAttribute({"type": "message_digest",
                          "values": [hashlib.sha256(primary["signature"].native).digest()]}),
        cms.CMSAttribute({"type": "1.3.6.1.4.1.311.84.2.1.1.1",
                          "values": [core.Any.load(core.IA5String(REPO_URL).dump())]}),
        cms.CMSAttribute({"type": "1.3.6.1.4.1.311.84.2.1.1.2",
                          "values": [_sequence(b"".join(core.UTF8String(o).dump() for o in owners))]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}),
    ])
    signature = key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    counter = cms.SignerInfo({
        "version": "v3",
        "sid": cms.SignerIdentifier({"subject_key_identifier": asn1_cert.key_identifier}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256", "parameters": core.Null()}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15",
                                                            "parameters": core.Null()}),
        "signature": signature,
    })
    unsigned = [] if isinstance(primary["unsigned_attrs"], core.Void) else list(primary["unsigned_attrs"])
    unsigned.append(cms.CMSAttribute({"type": "counter_signature", "values": [counter]}))
    rebuilt = cms.SignerInfo({name: primary[name] for name in
                              ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm",
                               "signature")})
    rebuilt["unsigned_attrs"] = cms.CMSAttributes(unsigned)
    certs = list(signed["certificates"])
    present = {c.dump() for c in certs}
    for c in pki.dev.chain(name):
        d = c.public_bytes(serialization.Encoding.DER)
        if d not in present:
            certs.append(cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)}))
    out = cms.SignedData({
        "version": signed["version"].native,
        "digest_algorithms": signed["digest_algorithms"],
        "encap_content_info": signed["encap_content_info"],
        "certificates": certs,
        "signer_infos": [rebuilt],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": out}).dump())


def _sequence(contents: bytes) -> core.Any:
    """DER SEQUENCE around ``contents`` (short or long length form)."""
    n = len(contents)
    width = (n.bit_length() + 7) // 8
    length = bytes([n]) if n < 0x80 else bytes([0x80 | width]) + n.to_bytes(width, "big")
    return core.Any.load(b"\x30" + length + contents)
