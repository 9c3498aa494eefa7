"""The dev PKI's extra responders and options: TSAs signing with any certificate or a chosen genTime, revocation
reasons, unrevoke, other loopback hosts. Checked with ``rfc3161-client``, cryptography's parsers and the
``openssl`` command line (``ts -verify``, ``cms -verify``, ``ocsp -respin``, ``crl -text``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import rfc3161_client
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from nuseal.cli.main import main
from nuseal.devpki import REVOCATION_REASONS, DevPki, DevPkiServer, serve
from nuseal.errors import UsageError

HTTP_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevPki, DevPkiServer]]:
    """Served PKI shared by tests that neither revoke nor move the clock."""
    dev = DevPki.create(tmp_path_factory.mktemp("live"))
    with serve(dev) as server:
        yield dev, server


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[DevPki, DevPkiServer]]:
    dev = DevPki.create(tmp_path / "pki")
    with serve(dev) as server:
        yield dev, server


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


def _stamp(url: str, data: bytes) -> tuple[bytes, rfc3161_client.TimeStampRequest]:
    request = rfc3161_client.TimestampRequestBuilder(
        data=data, hash_algorithm=rfc3161_client.HashAlgorithm.SHA256, nonce=True, cert_req=True
    ).build()
    reply = httpx.post(url, content=request.as_bytes(), headers={"Content-Type": "application/timestamp-query"},
                       timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/timestamp-reply"
    response = rfc3161_client.decode_timestamp_response(reply.content)
    assert response.status == rfc3161_client.PKIStatus.GRANTED
    assert response.tst_info.nonce == request.nonce
    assert response.tst_info.message_imprint.message == hashlib.sha256(data).digest()
    return reply.content, request


def _ts_verify(dev: DevPki, tsa: str, raw: bytes, request: rfc3161_client.TimeStampRequest,
               tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "resp.der").write_bytes(raw)
    (tmp_path / "req.tsq").write_bytes(request.as_bytes())
    return _run(["openssl", "ts", "-verify", "-in", "resp.der", "-queryfile", "req.tsq",
                 "-CAfile", str(dev.root_pem_path), "-untrusted", str(dev.chain_pem_path(tsa))], tmp_path)


def _signer_cert_hash(raw: bytes) -> bytes:
    """The ESS signing-certificate-v2 hash in the token: which certificate the TSA says signed it."""
    signed = tsp.TimeStampResp.load(raw)["time_stamp_token"]["content"]
    (signer,) = signed["signer_infos"]
    (ess,) = next(a["values"] for a in signer["signed_attrs"] if a["type"].native == "signing_certificate_v2")
    (entry,) = ess["certs"]
    return bytes(entry["cert_hash"].native)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------------------------------------ TSA with fixed genTime
def test_timestamp_at_issues_the_chosen_gen_time_inside_expired_signers_life(
    live: tuple[DevPki, DevPkiServer], tmp_path: Path
) -> None:
    dev, server = live
    expired = dev.cert("expired-signer")
    then = expired.not_valid_before_utc + (expired.not_valid_after_utc - expired.not_valid_before_utc) / 2
    url = server.timestamp_at(then)
    assert url.startswith(server.url)
    raw, request = _stamp(url, os.urandom(64))
    gen_time = rfc3161_client.decode_timestamp_response(raw).tst_info.gen_time.astimezone(UTC)
    assert gen_time == then.replace(microsecond=0)
    assert expired.not_valid_before_utc < gen_time < expired.not_valid_after_utc
    tsa = dev.cert("tsa")  # the TSA certificate itself was valid back then
    assert tsa.not_valid_before_utc <= gen_time <= tsa.not_valid_after_utc
    assert _signer_cert_hash(raw) == hashlib.sha256(_der(tsa)).digest()
    verified = _ts_verify(dev, "tsa", raw, request, tmp_path)
    assert verified.returncode == 0, verified.stderr + verified.stdout
    # a second request to the same URL gets the same genTime, not a clock that has moved on
    again, _ = _stamp(url, b"again")
    assert rfc3161_client.decode_timestamp_response(again).tst_info.gen_time.astimezone(UTC) == gen_time


def test_plain_tsa_still_follows_the_clock_offset(fresh: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = fresh
    server.clock_offset = timedelta(days=-100)
    expected = datetime.now(UTC) + server.clock_offset
    for url in (dev.tsa_url, server.tsa_for("tsa")):
        raw, _ = _stamp(url, b"shifted")
        gen_time = rfc3161_client.decode_timestamp_response(raw).tst_info.gen_time.astimezone(UTC)
        assert abs(gen_time - expected) < timedelta(seconds=30)


def test_tsa_for_signs_with_the_named_certificate(live: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, server = live
    good_raw, good_request = _stamp(server.tsa_for("tsa"), b"control")
    control = _ts_verify(dev, "tsa", good_raw, good_request, tmp_path)
    assert control.returncode == 0, control.stderr + control.stdout

    raw, request = _stamp(server.tsa_for("tsa-no-eku"), b"no eku")
    assert _signer_cert_hash(raw) == hashlib.sha256(_der(dev.cert("tsa-no-eku"))).digest()
    carried = {c.dump() for c in tsp.TimeStampResp.load(raw)["time_stamp_token"]["content"]["certificates"]}
    assert carried == {_der(c) for c in x509.load_pem_x509_certificates(dev.chain_pem_path("tsa-no-eku").read_bytes())}
    refused = _ts_verify(dev, "tsa-no-eku", raw, request, tmp_path)  # RFC 3161 §2.3: timeStamping EKU required
    assert refused.returncode != 0
    assert "Verification: OK" not in refused.stdout


def test_tsa_for_an_ec_certificate_signs_with_ecdsa(live: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, server = live
    raw, _ = _stamp(server.tsa_for("ecdsa-signer"), b"ec")
    token = tsp.TimeStampResp.load(raw)["time_stamp_token"]
    (signer,) = token["content"]["signer_infos"]
    assert signer["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    public = dev.cert("ecdsa-signer").public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signer["signature"].native, signer["signed_attrs"].untag().dump(), ec.ECDSA(hashes.SHA256()))
    # and openssl's CMS verifier agrees (any purpose: the certificate is a code-signing one)
    (tmp_path / "token.der").write_bytes(token.dump())
    run = _run(["openssl", "cms", "-verify", "-inform", "DER", "-in", "token.der", "-binary", "-purpose", "any",
                "-CAfile", str(dev.root_pem_path), "-out", "tstinfo.der"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert tsp.TSTInfo.load((tmp_path / "tstinfo.der").read_bytes())["message_imprint"]["hashed_message"].native \
        == hashlib.sha256(b"ec").digest()


def test_tsa_for_refuses_bad_arguments(live: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = live
    with pytest.raises(UsageError, match="no certificate 'nope'"):
        server.tsa_for("nope")
    with pytest.raises(UsageError, match="timezone-aware"):
        server.timestamp_at(datetime(2024, 1, 1))  # the naive time under test
    with pytest.raises(UsageError, match="outside"):
        server.timestamp_at(datetime(1960, 1, 1, tzinfo=UTC))
    for path in ("/tsa/nope", "/tsa/tsa/at/soon", "/tsa/tsa/at/-5", "/tsa/tsa/at/99999999999999", "/tsa/tsa/x/1",
                 "/tsa/tsa/at/1/more", "/tsa/"):
        reply = httpx.post(f"{server.url}{path}", content=b"", timeout=HTTP_TIMEOUT)
        assert reply.status_code == 404, path
    assert dev.tsa_url == f"{server.url}/tsa"


# --------------------------------------------------------------------------------------- revocation reasons
def _ocsp(dev: DevPki, name: str) -> ocsp.OCSPResponse:
    issuer = DevPki.issuer_name(name)
    assert issuer is not None
    request = ocsp.OCSPRequestBuilder().add_certificate(dev.cert(name), dev.cert(issuer), hashes.SHA1()).build()
    reply = httpx.post(dev.ocsp_url, content=request.public_bytes(serialization.Encoding.DER),
                       headers={"Content-Type": "application/ocsp-request"}, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    return ocsp.load_der_ocsp_response(reply.content)


def _crl(dev: DevPki) -> x509.CertificateRevocationList:
    reply = httpx.get(dev.crl_url, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 200
    return x509.load_der_x509_crl(reply.content)


def test_revoke_with_a_reason_reaches_ocsp_and_the_crl(fresh: tuple[DevPki, DevPkiServer], tmp_path: Path) -> None:
    dev, server = fresh
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    server.revoke("revoked-signer", at=at, reason="superseded")
    answer = _ocsp(dev, "revoked-signer")
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_time_utc == at
    assert answer.revocation_reason == x509.ReasonFlags.superseded
    (tmp_path / "resp.der").write_bytes(answer.public_bytes(serialization.Encoding.DER))
    run = _run(["openssl", "ocsp", "-respin", "resp.der", "-CAfile", str(dev.root_pem_path), "-issuer",
                str(dev.cert_path("intermediate")), "-cert", str(dev.cert_path("revoked-signer"))], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Reason: superseded" in run.stdout

    entry = _crl(dev).get_revoked_certificate_by_serial_number(dev.cert("revoked-signer").serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == at
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded


def test_default_reason_is_key_compromise_and_unspecified_is_left_out(fresh: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = fresh
    at = datetime.now(UTC)
    server.revoke("author", at=at)
    server.revoke("repository", at=at, reason="unspecified")
    assert _ocsp(dev, "author").revocation_reason == x509.ReasonFlags.key_compromise
    repository = _ocsp(dev, "repository")
    assert repository.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert repository.revocation_reason is None
    crl = _crl(dev)
    author = crl.get_revoked_certificate_by_serial_number(dev.cert("author").serial_number)
    assert author is not None
    assert author.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    plain = crl.get_revoked_certificate_by_serial_number(dev.cert("repository").serial_number)
    assert plain is not None
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.CRLReason)


def test_unrevoke_makes_the_certificate_good_again(fresh: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = fresh
    server.revoke("revoked-signer", at=datetime.now(UTC), reason="certificate_hold")
    assert _ocsp(dev, "revoked-signer").revocation_reason == x509.ReasonFlags.certificate_hold
    assert len(_crl(dev)) == 1
    server.unrevoke("revoked-signer")
    assert _ocsp(dev, "revoked-signer").certificate_status == ocsp.OCSPCertStatus.GOOD
    assert len(_crl(dev)) == 0
    server.unrevoke("revoked-signer")  # not revoked: nothing to do
    assert _ocsp(dev, "revoked-signer").certificate_status == ocsp.OCSPCertStatus.GOOD


def test_unknown_reasons_are_usage_errors(live: tuple[DevPki, DevPkiServer]) -> None:
    _, server = live
    for reason in ("remove_from_crl", "keyCompromise", "stolen"):
        with pytest.raises(UsageError, match="unknown revocation reason"):
            server.revoke("author", at=datetime.now(UTC), reason=reason)
    assert "remove_from_crl" not in REVOCATION_REASONS
    assert set(REVOCATION_REASONS) == {r.name for r in x509.ReasonFlags} - {"remove_from_crl"}


# --------------------------------------------------------------------------------------------- other hosts
def test_another_loopback_host_is_baked_in_and_served(tmp_path: Path) -> None:
    dev = DevPki.create(tmp_path / "pki", host="127.0.0.2")
    assert dev.host == "127.0.0.2"
    assert dev.tsa_url.startswith(f"http://127.0.0.2:{dev.port}/")
    aia = dev.cert("author").extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [str(d.access_location.value) for d in aia] == [dev.ocsp_url]
    assert DevPki.load(dev.directory) == dev
    with serve(dev) as server:
        assert server.url == f"http://127.0.0.2:{dev.port}"
        _stamp(dev.tsa_url, b"on .2")
        assert _ocsp(dev, "author").certificate_status == ocsp.OCSPCertStatus.GOOD
        with pytest.raises(httpx.ConnectError):  # nothing listens on the same port of 127.0.0.1
            httpx.get(f"http://127.0.0.1:{dev.port}/crl/root.crl", timeout=HTTP_TIMEOUT)


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "localhost", "::1", "127.0.0.256", ""])
def test_non_loopback_hosts_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(UsageError, match="loopback"):
        DevPki.create(tmp_path / "pki", host=host)
    assert not (tmp_path / "pki").exists()


def test_cli_dev_pki_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "pki", str(tmp_path / "pki"), "--host", "127.0.0.3"]) == 0
    assert DevPki.load(tmp_path / "pki").host == "127.0.0.3"
    assert "http://127.0.0.3:" in capsys.readouterr().out
    assert main(["dev", "pki", str(tmp_path / "bad"), "--host", "192.168.1.1"]) == 2
    assert "loopback" in capsys.readouterr().err
