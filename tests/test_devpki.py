"""The dev PKI and its loopback responders, checked with independent tools: cryptography's own parsers and
signature checks, ``rfc3161-client`` for timestamp requests and responses, and the ``openssl`` command line
(``ts -verify``, ``ocsp -respin``, ``crl -verify``)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import rfc3161_client
from asn1crypto import tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID

from nuseal.cli.main import main
from nuseal.devpki import NAMES, DevPki, DevPkiServer, serve
from nuseal.errors import UsageError
from support import oracle

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
HTTP_TIMEOUT = 10.0
LEAVES_UNDER_INTERMEDIATE = (
    "author", "repository", "tsa", "rsa1024-signer", "no-eku-signer", "not-yet-valid-signer", "expired-signer",
    "revoked-signer", "tsa-no-eku", "ecdsa-signer",
)
EXPECTED_NAMES = {
    "root", "intermediate", "author", "repository", "tsa", "rsa1024-signer", "no-eku-signer",
    "not-yet-valid-signer", "expired-signer", "revoked-signer", "tsa-no-eku", "self-signed-signer",
    "untrusted-root", "untrusted-signer", "ecdsa-signer",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """One PKI made at a fixed moment, so validity periods can be checked exactly."""
    return DevPki.create(tmp_path_factory.mktemp("pki"), now=NOW)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevPki, DevPkiServer]]:
    """A PKI made now and served on loopback (module scope: revocations in one test would leak, so tests that
    revoke use :func:`fresh` instead)."""
    dev = DevPki.create(tmp_path_factory.mktemp("live"))
    with serve(dev) as server:
        yield dev, server


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[DevPki, DevPkiServer]]:
    dev = DevPki.create(tmp_path / "pki")
    with serve(dev) as server:
        yield dev, server


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


def _ocsp_url(cert: x509.Certificate) -> str:
    aia = _ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert isinstance(aia, x509.AuthorityInformationAccess)
    (url,) = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
    return str(url)


def _crl_url(cert: x509.Certificate) -> str:
    cdp = _ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert isinstance(cdp, x509.CRLDistributionPoints)
    (point,) = list(cdp)
    assert point.full_name is not None
    (name,) = point.full_name
    return str(name.value)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


# --------------------------------------------------------------------------------------------- the files
def test_create_writes_every_certificate_and_load_reopens_it(pki: DevPki) -> None:
    assert set(NAMES) == EXPECTED_NAMES
    again = DevPki.load(pki.directory)
    assert again == pki
    assert 0 < pki.port < 65536
    assert pki.pfx_password == "nuseal-dev"
    assert pki.root_pem_path == pki.cert_path("root")
    assert pki.tsa_url == f"http://127.0.0.1:{pki.port}/tsa"
    for name in NAMES:
        cert = pki.cert(name)
        key = serialization.load_pem_private_key(pki.key_path(name).read_bytes(), password=None)
        assert key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert pki.key_path(name).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_chain_pem_runs_from_leaf_to_a_self_signed_root(pki: DevPki, name: str) -> None:
    chain = x509.load_pem_x509_certificates(pki.chain_pem_path(name).read_bytes())
    assert chain[0] == pki.cert(name)
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    chain[-1].verify_directly_issued_by(chain[-1])
    expected_root = {"untrusted-signer": "untrusted-root", "untrusted-root": "untrusted-root",
                     "self-signed-signer": "self-signed-signer"}.get(name, "root")
    assert chain[-1] == pki.cert(expected_root)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_pfx_holds_the_key_and_the_chain(pki: DevPki, name: str) -> None:
    key, cert, extra = pkcs12.load_key_and_certificates(pki.pfx_path(name).read_bytes(), pki.pfx_password.encode())
    assert cert == pki.cert(name)
    assert key is not None
    assert key.public_key() == cert.public_key()
    assert [cert, *extra] == x509.load_pem_x509_certificates(pki.chain_pem_path(name).read_bytes())
    with pytest.raises(ValueError, match="Invalid password"):
        pkcs12.load_key_and_certificates(pki.pfx_path(name).read_bytes(), b"wrong")


def test_unknown_names_and_missing_pki_are_clear_errors(pki: DevPki, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no certificate 'nobody'"):
        pki.cert_path("nobody")
    with pytest.raises(UsageError, match="no dev PKI"):
        DevPki.load(tmp_path)
    (tmp_path / "devpki.json").write_text("{not json")
    with pytest.raises(UsageError, match="is damaged"):
        DevPki.load(tmp_path)
    (tmp_path / "devpki.json").write_text('{"port": 0}')
    with pytest.raises(UsageError, match="no valid port"):
        DevPki.load(tmp_path)
    (tmp_path / "devpki.json").write_text('{"port": 4433}')
    with pytest.raises(UsageError, match="incomplete"):
        DevPki.load(tmp_path)
    with pytest.raises(UsageError, match="timezone-aware"):
        DevPki.create(tmp_path / "x", now=datetime(2025, 1, 1))  # the naive time under test
    with pytest.raises(UsageError, match="outside"):
        DevPki.create(tmp_path / "x", port=70000)


# ------------------------------------------------------------------------------------ certificate profile
@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_common_profile(pki: DevPki, name: str) -> None:
    cert = pki.cert(name)
    assert cert.version == x509.Version.v3
    public = cert.public_key()
    if name == "ecdsa-signer":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, ec.SECP256R1)
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == (1024 if name == "rsa1024-signer" else 2048)
    # every certificate is signed sha256WithRSA (the issuers are all RSA)
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public)
    issuer = x509.load_pem_x509_certificates(pki.chain_pem_path(name).read_bytes())[1:2] or [cert]
    if issuer[0] is not cert:
        aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
        assert isinstance(aki, x509.AuthorityKeyIdentifier)
        issuer_ski = _ext(issuer[0], ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
        assert isinstance(issuer_ski, x509.SubjectKeyIdentifier)
        assert aki.key_identifier == issuer_ski.digest
        assert _ocsp_url(cert) == pki.ocsp_url
        issuer_name = pki.issuer_name(name)
        assert issuer_name is not None
        assert _crl_url(cert) == pki.crl_url_for(issuer_name)
    basic = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert basic.critical
    assert isinstance(basic.value, x509.BasicConstraints)
    assert basic.value.ca == (name in ("root", "intermediate", "untrusted-root"))


def test_leaf_urls_point_at_the_server(pki: DevPki) -> None:
    base = f"http://127.0.0.1:{pki.port}"
    assert pki.ocsp_url == f"{base}/ocsp"
    assert pki.crl_url == f"{base}/crl/intermediate.crl"
    for name in LEAVES_UNDER_INTERMEDIATE:
        assert _crl_url(pki.cert(name)) == pki.crl_url
        assert pki.issuer_name(name) == "intermediate"
    assert _crl_url(pki.cert("intermediate")) == pki.crl_url_for("root")
    assert _crl_url(pki.cert("untrusted-signer")) == pki.crl_url_for("untrusted-root")
    with pytest.raises(UsageError, match="no CA 'author'"):
        pki.crl_url_for("author")


def _eku(cert: x509.Certificate) -> tuple[set[x509.ObjectIdentifier], bool] | None:
    try:
        ext = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    except x509.ExtensionNotFound:
        return None
    assert isinstance(ext.value, x509.ExtendedKeyUsage)
    return set(ext.value), ext.critical


@pytest.mark.parametrize(
    ("name", "usage", "critical"),
    [
        ("author", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("repository", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("tsa", ExtendedKeyUsageOID.TIME_STAMPING, True),
        ("no-eku-signer", ExtendedKeyUsageOID.SERVER_AUTH, False),
        ("tsa-no-eku", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("ecdsa-signer", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("rsa1024-signer", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("untrusted-signer", ExtendedKeyUsageOID.CODE_SIGNING, False),
        ("self-signed-signer", ExtendedKeyUsageOID.CODE_SIGNING, False),
    ],
)
def test_extended_key_usage(pki: DevPki, name: str, usage: x509.ObjectIdentifier, critical: bool) -> None:
    assert _eku(pki.cert(name)) == ({usage}, critical)


def test_tsa_no_eku_lacks_time_stamping_and_cas_have_no_eku(pki: DevPki) -> None:
    eku = _eku(pki.cert("tsa-no-eku"))
    assert eku is not None
    assert ExtendedKeyUsageOID.TIME_STAMPING not in eku[0]
    for ca in ("root", "intermediate", "untrusted-root"):
        assert _eku(pki.cert(ca)) is None


def test_validity_periods(pki: DevPki) -> None:
    for name in ("author", "repository", "tsa", "revoked-signer", "ecdsa-signer"):
        cert = pki.cert(name)
        assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc
    nyv = pki.cert("not-yet-valid-signer")
    assert nyv.not_valid_before_utc == NOW + timedelta(days=30)
    expired = pki.cert("expired-signer")
    assert expired.not_valid_before_utc == NOW - timedelta(days=3 * 365)
    assert expired.not_valid_after_utc == NOW - timedelta(days=365)
    for name in NAMES:  # every certificate lies inside its issuers' validity
        chain = x509.load_pem_x509_certificates(pki.chain_pem_path(name).read_bytes())
        for child, parent in itertools.pairwise(chain):
            assert parent.not_valid_before_utc <= child.not_valid_before_utc
            assert child.not_valid_after_utc <= parent.not_valid_after_utc


def test_self_signed_and_untrusted_are_outside_the_dev_root(pki: DevPki) -> None:
    root = pki.cert("root")
    self_signed = pki.cert("self-signed-signer")
    assert self_signed.issuer == self_signed.subject
    self_signed.verify_directly_issued_by(self_signed)
    untrusted = pki.cert("untrusted-signer")
    untrusted.verify_directly_issued_by(pki.cert("untrusted-root"))
    assert pki.cert("untrusted-root").subject != root.subject
    for name in ("self-signed-signer", "untrusted-signer", "untrusted-root"):
        with pytest.raises((ValueError, InvalidSignature)):
            pki.cert(name).verify_directly_issued_by(pki.cert("intermediate"))


# ------------------------------------------------------------------------------------------------- TSA
def _timestamp(url: str, data: bytes, *, cert_req: bool = True) -> tuple[bytes, rfc3161_client.TimeStampRequest]:
    request = rfc3161_client.TimestampRequestBuilder(
        data=data, hash_algorithm=rfc3161_client.HashAlgorithm.SHA256, nonce=True, cert_req=cert_req
    ).build()
    reply = httpx.post(url, content=request.as_bytes(), headers={"Content-Type": "application/timestamp-query"},
                       timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/timestamp-reply"
    return reply.content, request


def test_timestamp_verifies_with_openssl(live: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, _ = live
    data = os.urandom(100)
    before = datetime.now(UTC).replace(microsecond=0)
    raw, request = _timestamp(dev.tsa_url, data)
    after = datetime.now(UTC)
    response = rfc3161_client.decode_timestamp_response(raw)
    assert response.status == rfc3161_client.PKIStatus.GRANTED
    info = response.tst_info
    assert info.nonce == request.nonce
    assert info.message_imprint.message == hashlib.sha256(data).digest()
    assert info.policy.dotted_string == "1.2.3.4.1"
    assert info.accuracy is not None and info.accuracy.seconds == 1
    assert before <= info.gen_time.astimezone(UTC) <= after

    (tmp_path / "resp.der").write_bytes(raw)
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "req.tsq").write_bytes(request.as_bytes())
    common = ["-CAfile", str(dev.root_pem_path), "-untrusted", str(dev.chain_pem_path("tsa"))]
    by_data = _run(["openssl", "ts", "-verify", "-in", "resp.der", "-data", "data.bin", *common], tmp_path)
    assert by_data.returncode == 0, by_data.stderr + by_data.stdout
    by_digest = _run(["openssl", "ts", "-verify", "-in", "resp.der", "-digest", hashlib.sha256(data).hexdigest(),
                      *common], tmp_path)
    assert by_digest.returncode == 0, by_digest.stderr + by_digest.stdout
    by_request = _run(["openssl", "ts", "-verify", "-in", "resp.der", "-queryfile", "req.tsq", *common], tmp_path)
    assert by_request.returncode == 0, by_request.stderr + by_request.stdout  # checks the nonce too
    wrong = _run(["openssl", "ts", "-verify", "-in", "resp.der", "-digest", hashlib.sha256(b"x").hexdigest(),
                  *common], tmp_path)
    assert wrong.returncode != 0


def test_timestamp_carries_the_tsa_chain_and_ess_certificate_v2(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = live
    raw, _ = _timestamp(dev.tsa_url, b"chain")
    token = tsp.TimeStampResp.load(raw)["time_stamp_token"]
    signed = token["content"]
    carried = {c.dump() for c in signed["certificates"]}
    expected = {c.public_bytes(serialization.Encoding.DER)
                for c in x509.load_pem_x509_certificates(dev.chain_pem_path("tsa").read_bytes())}
    assert carried == expected
    (signer,) = signed["signer_infos"]
    attrs = {a["type"].native: a["values"] for a in signer["signed_attrs"]}
    (ess,) = attrs["signing_certificate_v2"]
    tsa_der = dev.cert("tsa").public_bytes(serialization.Encoding.DER)
    (entry,) = ess["certs"]
    assert entry["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert entry["issuer_serial"]["serial_number"].native == dev.cert("tsa").serial_number
    # the signature over the signed attributes is the TSA key's, checked with cryptography
    public = dev.cert("tsa").public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signed_attrs = b"\x31" + signer["signed_attrs"].dump()[1:]  # RFC 5652 §5.4: signed as an explicit SET OF
    public.verify(signer["signature"].native, signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    content = signed["encap_content_info"]["content"].contents
    assert attrs["message_digest"][0].native == hashlib.sha256(content).digest()


def test_timestamp_without_cert_req_has_no_certificates(
    live: tuple[DevPki, DevPkiServer], tmp_path: Path
) -> None:
    dev, _ = live
    raw, _ = _timestamp(dev.tsa_url, b"bare", cert_req=False)
    signed = tsp.TimeStampResp.load(raw)["time_stamp_token"]["content"]
    assert not signed["certificates"].native
    (tmp_path / "resp.der").write_bytes(raw)
    (tmp_path / "data.bin").write_bytes(b"bare")
    run = _run(["openssl", "ts", "-verify", "-in", "resp.der", "-data", "data.bin", "-CAfile",
                str(dev.root_pem_path), "-untrusted", str(dev.chain_pem_path("tsa"))], tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout


@pytest.mark.parametrize("body", [b"", b"not DER", b"\x30\x03\x02\x01\x01", b"\x30\x80"])
def test_malformed_timestamp_request_is_rejected(
    live: tuple[DevPki, DevPkiServer], tmp_path: Path, body: bytes
) -> None:
    dev, _ = live
    reply = httpx.post(dev.tsa_url, content=body, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    assert rfc3161_client.decode_timestamp_response(reply.content).status == rfc3161_client.PKIStatus.REJECTION
    (tmp_path / "resp.der").write_bytes(reply.content)
    run = _run(["openssl", "ts", "-reply", "-in", "resp.der", "-text"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Status: Rejected." in run.stdout
    assert "Failure info: the data submitted has the wrong format" in run.stdout


def _raw_request(algorithm: str, hashed: bytes) -> bytes:
    return bytes(tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": hashed},
        "cert_req": True,
    }).dump())


@pytest.mark.parametrize(
    ("request_der", "failure"),
    [
        (_raw_request("sha256", bytes(20)), "the data submitted has the wrong format"),
        (_raw_request("1.2.3.4.5", bytes(32)), "unrecognized or unsupported algorithm identifier"),
    ],
    ids=["short-imprint", "unknown-algorithm"],
)
def test_bad_imprints_are_rejected(
    live: tuple[DevPki, DevPkiServer], tmp_path: Path, request_der: bytes, failure: str
) -> None:
    dev, _ = live
    reply = httpx.post(dev.tsa_url, content=request_der, timeout=HTTP_TIMEOUT)
    (tmp_path / "resp.der").write_bytes(reply.content)
    run = _run(["openssl", "ts", "-reply", "-in", "resp.der", "-text"], tmp_path)
    assert "Status: Rejected." in run.stdout
    assert f"Failure info: {failure}" in run.stdout


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_other_imprint_algorithms_are_granted(live: tuple[DevPki, DevPkiServer], algorithm: str) -> None:
    dev, _ = live
    digest = hashlib.new(algorithm, b"x").digest()
    reply = httpx.post(dev.tsa_url, content=_raw_request(algorithm, digest), timeout=HTTP_TIMEOUT)
    response = rfc3161_client.decode_timestamp_response(reply.content)
    assert response.status == rfc3161_client.PKIStatus.GRANTED
    assert response.tst_info.message_imprint.message == digest
    assert response.tst_info.nonce is None


# ------------------------------------------------------------------------------------------------ OCSP
def _ocsp(dev: DevPki, name: str, *, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        dev.cert(name), dev.cert(DevPki.issuer_name(name) or name), hashes.SHA1()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    request = builder.build()
    url = _ocsp_url(dev.cert(name))
    reply = httpx.post(url, content=request.public_bytes(serialization.Encoding.DER),
                       headers={"Content-Type": "application/ocsp-request"}, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/ocsp-response"
    return reply.content


def _openssl_ocsp(dev: DevPki, name: str, raw: bytes, tmp_path: Path) -> str:
    (tmp_path / "resp.der").write_bytes(raw)
    run = _run(["openssl", "ocsp", "-respin", "resp.der", "-CAfile", str(dev.root_pem_path),
                "-issuer", str(dev.cert_path("intermediate")), "-cert", str(dev.cert_path(name))], tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "Response verify OK" in run.stderr + run.stdout
    return run.stdout


def test_ocsp_good_then_revoked_at_the_given_time(fresh: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, server = fresh
    response = ocsp.load_der_ocsp_response(_ocsp(dev, "author"))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == dev.cert("author").serial_number
    public = dev.cert("intermediate").public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    assert response.next_update_utc is not None
    assert response.this_update_utc <= datetime.now(UTC) < response.next_update_utc
    assert "author.crt.pem: good" in _openssl_ocsp(dev, "author", _ocsp(dev, "author"), tmp_path)

    at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    server.revoke("author", at=at)
    raw = _ocsp(dev, "author")
    revoked = ocsp.load_der_ocsp_response(raw)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == at
    out = _openssl_ocsp(dev, "author", raw, tmp_path)
    assert "author.crt.pem: revoked" in out
    assert "Revocation Time: Mar  4 05:06:07 2025 GMT" in out
    # the others stay good
    assert ocsp.load_der_ocsp_response(_ocsp(dev, "repository")).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_ocsp_echoes_the_nonce(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = live
    nonce = os.urandom(16)
    response = ocsp.load_der_ocsp_response(_ocsp(dev, "repository", nonce=nonce))
    echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value
    assert echoed.nonce == nonce


def test_ocsp_for_the_intermediate_is_answered_by_the_root(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = live
    response = ocsp.load_der_ocsp_response(_ocsp(dev, "intermediate"))
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    public = dev.cert("root").public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())


def test_ocsp_refuses_garbage_and_unknown_certificates(live: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, _ = live
    garbage = httpx.post(dev.ocsp_url, content=b"not DER", timeout=HTTP_TIMEOUT)
    assert ocsp.load_der_ocsp_response(garbage.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    stranger = DevPki.create(tmp_path / "other", port=dev.port)  # same URLs, other certificates
    request = ocsp.OCSPRequestBuilder().add_certificate(
        stranger.cert("author"), stranger.cert("intermediate"), hashes.SHA1()
    ).build()
    reply = httpx.post(dev.ocsp_url, content=request.public_bytes(serialization.Encoding.DER), timeout=HTTP_TIMEOUT)
    assert ocsp.load_der_ocsp_response(reply.content).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_ocsp_over_get_as_dotnet_on_linux_asks(fresh: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = fresh
    request = ocsp.OCSPRequestBuilder().add_certificate(
        dev.cert("repository"), dev.cert("intermediate"), hashes.SHA256()
    ).build()
    encoded = urllib.parse.quote(base64.b64encode(request.public_bytes(serialization.Encoding.DER)).decode(), safe="")
    at = datetime.now(UTC).replace(microsecond=0)
    server.revoke("repository", at=at)
    reply = httpx.get(f"{dev.ocsp_url}/{encoded}", timeout=HTTP_TIMEOUT)
    response = ocsp.load_der_ocsp_response(reply.content)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == at
    assert isinstance(response.hash_algorithm, hashes.SHA256)  # the CertID answers in the request's hash
    bad = httpx.get(f"{dev.ocsp_url}/%%%not-base64", timeout=HTTP_TIMEOUT)
    assert ocsp.load_der_ocsp_response(bad.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_refuses_a_cert_id_naming_the_wrong_issuer(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = live
    request = ocsp.OCSPRequestBuilder().add_certificate(
        dev.cert("author"), dev.cert("untrusted-root"), hashes.SHA1()
    ).build()
    reply = httpx.post(dev.ocsp_url, content=request.public_bytes(serialization.Encoding.DER), timeout=HTTP_TIMEOUT)
    assert ocsp.load_der_ocsp_response(reply.content).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_revocation_time_must_be_aware(live: tuple[DevPki, DevPkiServer]) -> None:
    _, server = live
    with pytest.raises(UsageError, match="timezone-aware"):
        server.revoke("author", at=datetime(2025, 1, 1))  # the naive time under test


# ------------------------------------------------------------------------------------------------- CRL
def _crl(url: str) -> x509.CertificateRevocationList:
    reply = httpx.get(url, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(reply.content)


def test_crl_lists_the_serial_after_revocation(fresh: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, server = fresh
    target = dev.cert("revoked-signer")
    url = _crl_url(target)
    before = _crl(url)
    assert before.issuer == dev.cert("intermediate").subject
    assert before.is_signature_valid(dev.cert("intermediate").public_key())  # type: ignore[arg-type]
    assert before.get_revoked_certificate_by_serial_number(target.serial_number) is None
    assert before.next_update_utc is not None
    assert timedelta(minutes=59) <= before.next_update_utc - datetime.now(UTC) <= timedelta(hours=1)

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    server.revoke("revoked-signer", at=at)
    after = _crl(url)
    entry = after.get_revoked_certificate_by_serial_number(target.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == at
    assert len(after) == 1
    assert after.is_signature_valid(dev.cert("intermediate").public_key())  # type: ignore[arg-type]
    # the root's CRL is not touched by a leaf's revocation
    assert len(_crl(dev.crl_url_for("root"))) == 0
    # RFC 5280 §5.2: conforming CRLs carry the issuer's key id and an increasing CRL number
    aki = after.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(dev.cert("intermediate").public_key()).digest
    numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (before, after)]
    assert numbers[0] < numbers[1]

    (tmp_path / "crl.der").write_bytes(after.public_bytes(serialization.Encoding.DER))
    run = _run(["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text",
                "-CAfile", str(dev.chain_pem_path("intermediate"))], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "verify OK" in run.stderr + run.stdout
    assert f"{target.serial_number:X}" in run.stdout.replace(":", "").upper()


def test_revoke_unknown_name_is_a_usage_error(live: tuple[DevPki, DevPkiServer]) -> None:
    _, server = live
    with pytest.raises(UsageError, match="no certificate"):
        server.revoke("nobody", at=datetime.now(UTC))


def test_unknown_paths_are_404(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = live
    assert server.url == f"http://127.0.0.1:{dev.port}"
    assert httpx.get(f"{server.url}/crl/author.crl", timeout=HTTP_TIMEOUT).status_code == 404
    assert httpx.post(f"{server.url}/elsewhere", content=b"", timeout=HTTP_TIMEOUT).status_code == 404


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_dev_pki_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out"
    assert main(["dev", "pki", str(target), "--port", "18443"]) == 0
    dev = DevPki.load(target)
    assert dev.port == 18443
    for name in NAMES:
        assert dev.cert_path(name).is_file()
        assert dev.pfx_path(name).is_file()
    assert _ocsp_url(dev.cert("author")) == "http://127.0.0.1:18443/ocsp"
    assert str(dev.root_pem_path) in capsys.readouterr().out


def test_cli_dev_tsa_without_a_pki_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "tsa", "--dir", str(tmp_path)]) == 2
    assert "no dev PKI" in capsys.readouterr().err


def test_cli_dev_tsa_serves_until_interrupted(fresh: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, running = fresh
    running.stop()  # free the port: the command serves this PKI itself
    proc = subprocess.Popen([sys.executable, "-m", "nuseal", "dev", "tsa", "--dir", str(dev.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert dev.tsa_url in line
        raw, request = _timestamp(dev.tsa_url, b"cli")
        assert rfc3161_client.decode_timestamp_response(raw).tst_info.nonce == request.nonce
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the port is released
        try:
            httpx.get(dev.crl_url, timeout=0.5)
        except httpx.ConnectError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the dev TSA still answers after Ctrl-C")


def test_cli_dev_tsa_port_in_use_is_a_usage_error(
    live: tuple[DevPki, DevPkiServer], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, _ = live  # already served on dev.port
    assert main(["dev", "tsa", "--dir", str(dev.directory)]) == 2
    assert f"cannot listen on 127.0.0.1:{dev.port}" in capsys.readouterr().err


def test_cli_dev_tsa_on_another_port_warns(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = live
    with socket.socket() as probe:  # a second free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nuseal", "dev", "tsa", "--dir", str(dev.directory),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/tsa" in proc.stdout.readline()
        raw, _ = _timestamp(f"http://127.0.0.1:{port}/tsa", b"moved")
        assert rfc3161_client.decode_timestamp_response(raw).status == rfc3161_client.PKIStatus.GRANTED
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"the certificates name port {dev.port}" in err


# ------------------------------------------------------------------------------------ NuGet's own signer
def _nuget_sign(dev: DevPki, name: str, source: Path) -> oracle.SignReport:
    """NuGet's signer (the oracle) signs with online revocation checks and the dev TSA."""
    return oracle.sign(
        source.read_bytes(), pfx=dev.pfx_path(name), password=dev.pfx_password, signature_type="author",
        tsa_url=dev.tsa_url, extra_certs=[dev.cert_path("intermediate"), dev.root_pem_path],
        trust_bundle=dev.root_pem_path,
    )


@pytest.mark.oracle
def test_nuget_signs_against_the_dev_responders(tmp_path: Path) -> None:
    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    source = tmp_path / "in.nupkg"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("Probe.nuspec", '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/'
                         'packaging/2013/05/nuspec.xsd"><metadata><id>Probe</id><version>1.0.0</version>'
                         "<authors>a</authors><description>d</description></metadata></package>")
        archive.writestr("lib/net8.0/a.txt", "x")
    dev = DevPki.create(tmp_path / "pki")
    with serve(dev) as server:
        # before NuGet's first chain build: .NET caches the CRL until nextUpdate (see DevPkiServer.revoke)
        server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(hours=1))
        good = _nuget_sign(dev, "author", source)
        assert good.ok, good.issues
        asked = {(method, path.split("/")[1]) for method, path, _ in server.requests}
        assert ("POST", "tsa") in asked
        assert asked & {("GET", "crl"), ("GET", "ocsp"), ("POST", "ocsp")}  # .NET checked revocation with us
        assert all(status == 200 for _, _, status in server.requests)
        revoked = _nuget_sign(dev, "revoked-signer", source)
        assert not revoked.ok
        assert [(i.code, i.message) for i in revoked.issues] == [("NU3018", "Revoked: certificate revoked")]
