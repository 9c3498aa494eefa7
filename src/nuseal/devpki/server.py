"""Loopback responders for the dev PKI: RFC 3161 timestamps, OCSP and CRLs, with revocation at run time.

Timestamp tokens are built with asn1crypto as RFC 3161 / RFC 5816 describe them (TSTInfo in a CMS SignedData,
ESS signing-certificate-v2, the request's nonce echoed, the TSA chain included when ``certReq`` is set).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp

from nuseal.devpki.pki import DevPki

__all__ = ["MAX_REQUEST_BYTES", "TSA_POLICY_OID", "DevPkiServer", "serve", "timestamp_response"]

TSA_POLICY_OID = "1.2.3.4.1"
MAX_REQUEST_BYTES = 64 << 10
_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


class _TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc] # asn1crypto is untyped
    """RFC 3161 §2.4.2 ``TimeStampResp``; asn1crypto declares ``timeStampToken`` mandatory, the RFC optional."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _rejection(fail_info: str, text: str) -> bytes:
    """An RFC 3161 §2.4.2 ``rejection`` with one ``PKIFailureInfo`` bit and a free-text reason."""
    status = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text], "fail_info": {fail_info}})
    return bytes(_TimeStampResp({"status": status}).dump())


def timestamp_response(
    request_der: bytes,
    *,
    tsa_cert: x509.Certificate,
    tsa_key: rsa.RSAPrivateKey,
    chain: list[x509.Certificate],
    gen_time: datetime,
) -> bytes:
    """A granted ``TimeStampResp`` for ``request_der`` (or a rejection for a malformed request)."""
    try:
        req = tsp.TimeStampReq.load(request_der)
        imprint = req["message_imprint"]
        _ = imprint["hash_algorithm"]["algorithm"].native
    except (ValueError, TypeError, KeyError):
        return _rejection("bad_data_format", "the request is not a DER TimeStampReq")
    info = tsp.TSTInfo({
        "version": "v1",
        "policy": TSA_POLICY_OID,
        "message_imprint": imprint,
        "serial_number": secrets.randbits(63),
        "gen_time": gen_time.astimezone(UTC).replace(microsecond=0),
        "accuracy": {"seconds": 1},
        "ordering": False,
        **({"nonce": req["nonce"].native} if req["nonce"].native is not None else {}),
    })
    content = info.dump()
    tsa_asn1 = asn1_x509.Certificate.load(_der(tsa_cert))
    ess = tsp.SigningCertificateV2({
        "certs": [{
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(_der(tsa_cert)).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName(name="directory_name", value=tsa_asn1.issuer)],
                "serial_number": tsa_asn1.serial_number,
            },
        }]
    })
    signed_attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": gen_time.astimezone(UTC)})]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}),
    ])
    signature = tsa_key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({
            "issuer_and_serial_number": {"issuer": tsa_asn1.issuer, "serial_number": tsa_asn1.serial_number}
        }),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        "signature": signature,
    })
    certificates = [asn1_x509.Certificate.load(_der(c)) for c in chain] if req["cert_req"].native else []
    signed_data = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(content)},
        **({"certificates": certificates} if certificates else {}),
        "signer_infos": [signer],
    })
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return bytes(tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())


class DevPkiServer:
    """TSA at ``/tsa`` (POST ``application/timestamp-query``), OCSP at ``/ocsp`` (POST), CRLs at
    ``/crl/<issuer>.crl``, on 127.0.0.1. Use as a context manager or call :meth:`stop`."""

    def __init__(self, pki: DevPki, *, tsa_name: str = "tsa") -> None:
        self.pki = pki
        self.tsa_name = tsa_name
        self.revoked: dict[int, datetime] = {}
        self.clock_offset = timedelta(0)
        self._lock = threading.Lock()
        self._stopped = False
        # Loaded once: cryptography checks an RSA key's consistency on every load (tens of milliseconds).
        self._tsa_material = (pki.key(tsa_name), pki.chain(tsa_name))
        self._ca_keys = {name: pki.key(name) for name in ("intermediate", "root", "untrusted-root")}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", pki.port), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nuseal-devpki", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.pki.base_url

    def revoke(self, name: str, *, at: datetime) -> None:
        """Revoke certificate ``name`` as of ``at``; OCSP and CRLs report it from now on."""
        with self._lock:
            self.revoked[self.pki.cert(name).serial_number] = at

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DevPkiServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ responders
    def _timestamp(self, body: bytes) -> bytes:
        key, chain = self._tsa_material
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the dev TSA key must be RSA")
        now = datetime.now(UTC) + self.clock_offset
        return timestamp_response(body, tsa_cert=chain[0], tsa_key=key, chain=chain, gen_time=now)

    def _issuer_of(self, cert: x509.Certificate) -> str:
        for name in ("intermediate", "root", "untrusted-root"):
            if self.pki.cert(name).subject == cert.issuer:
                return name
        return "intermediate"

    def _ocsp(self, body: bytes) -> bytes:
        try:
            req = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                serialization.Encoding.DER
            )
        subject = next(
            (self.pki.cert(n) for n in self._names() if self.pki.cert(n).serial_number == req.serial_number), None
        )
        if subject is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER
            )
        issuer_name = self._issuer_of(subject)
        issuer = self.pki.cert(issuer_name)
        now = datetime.now(UTC)
        with self._lock:
            revoked_at = self.revoked.get(subject.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=subject, issuer=issuer, algorithm=hashes.SHA1(), cert_status=status,  # noqa: S303 - CertID hash
            this_update=now - timedelta(minutes=1), next_update=now + timedelta(hours=1),
            revocation_time=revoked_at, revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer).certificates([issuer])
        try:  # RFC 8954: echo the request's nonce
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(x509.OCSPNonce(nonce.nonce), critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(self._ca_keys[issuer_name], hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )

    def _crl(self, issuer_name: str) -> bytes:
        issuer = self.pki.cert(issuer_name)
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(hours=1))
        )
        with self._lock:
            revoked = dict(self.revoked)
        for name in self._names():
            cert = self.pki.cert(name)
            if cert.serial_number in revoked and cert.issuer == issuer.subject:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(cert.serial_number)
                    .revocation_date(revoked[cert.serial_number])
                    .build()
                )
        crl = builder.sign(self._ca_keys[issuer_name], hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)

    @staticmethod
    def _names() -> tuple[str, ...]:
        from nuseal.devpki.pki import NAMES  # noqa: PLC0415

        return NAMES

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go out in separate writes
            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._reply(413, b"request too large", "text/plain")
                    return
                body = self.rfile.read(length)
                if self.path == "/tsa":
                    self._reply(200, server._timestamp(body), "application/timestamp-reply")
                elif self.path == "/ocsp":
                    self._reply(200, server._ocsp(body), "application/ocsp-response")
                else:
                    self._reply(404, b"not found", "text/plain")

            def do_GET(self) -> None:
                if self.path.startswith("/crl/") and self.path.endswith(".crl"):
                    name = self.path[len("/crl/") : -len(".crl")]
                    if name in ("intermediate", "root", "untrusted-root"):
                        self._reply(200, server._crl(name), "application/pkix-crl")
                        return
                self._reply(404, b"not found", "text/plain")

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def serve(pki: DevPki, *, tsa_name: str = "tsa") -> DevPkiServer:
    """Start the responders for ``pki`` on 127.0.0.1:``pki.port`` in a background thread."""
    return DevPkiServer(pki, tsa_name=tsa_name)
