"""Loopback responders for the dev PKI: RFC 3161 timestamps, OCSP and CRLs, with revocation at run time.

Timestamp tokens are built with asn1crypto as RFC 3161 / RFC 5816 describe them (TSTInfo in a CMS SignedData,
ESS signing-certificate-v2, the request's nonce echoed, the TSA chain included when ``certReq`` is set).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import secrets
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from nuseal.devpki.pki import CA_NAMES, NAMES, DevPki
from nuseal.errors import UsageError

__all__ = [
    "LOOPBACK",
    "MAX_GEN_TIME",
    "MAX_REQUEST_BYTES",
    "REVOCATION_REASONS",
    "RESPONSE_LIFETIME",
    "TSA_POLICY_OID",
    "DevPkiServer",
    "serve",
    "timestamp_response",
]

TSA_POLICY_OID = "1.2.3.4.1"
MAX_REQUEST_BYTES = 64 << 10
LOOPBACK = "127.0.0.1"
RESPONSE_BACKDATE = timedelta(minutes=1)  # thisUpdate / lastUpdate before now, for clock skew
RESPONSE_LIFETIME = timedelta(hours=1)  # OCSP and CRL nextUpdate after now
STOP_TIMEOUT_SECONDS = 5.0
MIN_GEN_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # bounds of a chosen genTime (whole Unix seconds in the URL)
MAX_GEN_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# RFC 5280 §5.3.1 CRLReason names as cryptography spells them; removeFromCRL only exists in delta CRLs.
REVOCATION_REASONS = tuple(r.name for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl)
_AT_PARTS = 3  # <name>/at/<seconds>
_TsaMaterial = tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, list[x509.Certificate]]
MAX_LOGGED_REQUESTS = 1000
MAX_LOGGED_PATH = 200
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
    tsa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    gen_time: datetime,
) -> bytes:
    """A DER ``TimeStampResp`` (RFC 3161 §2.4.2) answering ``request_der``.

    Granted: a token whose TSTInfo carries the request's imprint and nonce, policy :data:`TSA_POLICY_OID`,
    accuracy 1 s and ``gen_time`` (whole seconds, UTC), signed sha256WithRSA (ecdsa-with-SHA256 for an EC key)
    by ``tsa_key`` with ESS
    signing-certificate-v2 (RFC 5816) naming ``tsa_cert``; ``chain`` (TSA certificate first) is included when
    the request sets ``certReq``. Rejected (``rejection`` + ``failInfo``): an unparsable request
    (``badDataFormat``), an imprint algorithm without a known digest (``badAlg``), an imprint whose length
    does not match its algorithm (``badDataFormat``). Never raises for bad input.
    """
    try:
        req = tsp.TimeStampReq.load(request_der)
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
    except (ValueError, TypeError, KeyError, OverflowError):
        return _rejection("bad_data_format", "the request is not a DER TimeStampReq")
    try:
        size = hashlib.new(str(algorithm)).digest_size
    except (ValueError, TypeError):
        return _rejection("bad_alg", f"unsupported imprint algorithm {algorithm}")
    if not isinstance(hashed, bytes) or len(hashed) != size:
        return _rejection("bad_data_format", f"the {algorithm} imprint must be {size} bytes")
    info = tsp.TSTInfo({
        "version": "v1",
        "policy": TSA_POLICY_OID,
        "message_imprint": imprint,
        "serial_number": secrets.randbits(63),
        "gen_time": gen_time.astimezone(UTC).replace(microsecond=0),
        "accuracy": {"seconds": 1},
        "ordering": False,
        **({"nonce": nonce} if nonce is not None else {}),
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
    if isinstance(tsa_key, rsa.RSAPrivateKey):
        signature = tsa_key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        signature_algorithm = "sha256_rsa"
    else:
        signature = tsa_key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signature_algorithm = "sha256_ecdsa"
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({
            "issuer_and_serial_number": {"issuer": tsa_asn1.issuer, "serial_number": tsa_asn1.serial_number}
        }),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}),
        "signature": signature,
    })
    certificates = [asn1_x509.Certificate.load(_der(c)) for c in chain] if cert_req else []
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
    """The dev PKI's responders on ``127.0.0.1:pki.port``, in a background thread (:func:`serve` starts it).

    Routes: ``POST /tsa`` (RFC 3161, ``application/timestamp-query`` -> ``application/timestamp-reply``, signed
    by ``tsa_name``); ``POST /tsa/<name>`` signed by another dev-PKI certificate (:meth:`tsa_for`) and
    ``POST /tsa/<name>/at/<unix seconds>`` with a fixed genTime (:meth:`timestamp_at`);
    ``POST /ocsp`` and ``GET /ocsp/<base64 request>`` (RFC 6960 §A.1; answered by the certificate's issuing CA,
    the request's nonce echoed as RFC 8954 asks, ``thisUpdate`` now-1 min, ``nextUpdate`` +1 h); ``GET
    /crl/<ca>.crl`` for ``root``, ``intermediate`` and ``untrusted-root`` (CRL v2 with CRL number and AKI,
    regenerated per request, ``nextUpdate`` +1 h). Anything else is 404; bodies over
    :data:`MAX_REQUEST_BYTES` are 413. Nothing is revoked until :meth:`revoke` says so (``revoked-signer``
    included). ``clock_offset`` shifts the TSA's clock on ``/tsa`` and ``/tsa/<name>`` (back-dated tokens).

    Raises:
        OSError: the port cannot be bound (in use, or not loopback-capable).
        UsageError: ``tsa_name`` is not a dev-PKI certificate.
    """

    def __init__(self, pki: DevPki, *, tsa_name: str = "tsa") -> None:
        self.pki = pki
        self.tsa_name = tsa_name
        self.revoked: dict[int, datetime] = {}  # serial -> revocation time
        self.reasons: dict[int, x509.ReasonFlags] = {}  # serial -> reason
        self.clock_offset = timedelta(0)
        self._lock = threading.Lock()
        self._stopped = False
        self._crl_number = 0
        self._log: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=MAX_LOGGED_REQUESTS)
        # Loaded once: cryptography checks an RSA key's consistency on every load (tens of milliseconds).
        self._certs = {name: pki.cert(name) for name in NAMES}
        self._by_serial = {cert.serial_number: name for name, cert in self._certs.items()}
        self._tsa_material: dict[str, _TsaMaterial] = {}
        self._load_tsa(tsa_name)
        self._ca_keys = {name: pki.key(name) for name in CA_NAMES}
        self._httpd = ThreadingHTTPServer((pki.host, pki.port), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nuseal-devpki", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://<host>:<port>``: the prefix of :attr:`DevPki.tsa_url`, ``ocsp_url`` and ``crl_url``."""
        return self.pki.base_url

    def tsa_for(self, name: str, *, at: datetime | None = None) -> str:
        """The URL of a TSA on this server that signs with dev-PKI certificate ``name`` (any of
        :data:`~nuseal.devpki.NAMES`, e.g. ``"tsa-no-eku"``, ``"expired-signer"``, ``"untrusted-signer"``,
        ``"ecdsa-signer"``), at the current time (shifted by ``clock_offset``) or, with ``at``, always with that
        genTime (whole seconds). The key is loaded now, so a bad name fails here rather than in a request.

        Raises:
            UsageError: ``name`` is not a dev-PKI certificate; ``at`` is naive or outside 1970..9999.
        """
        self._load_tsa(name)
        if at is None:
            return f"{self.url}/tsa/{name}"
        if at.tzinfo is None:
            raise UsageError("genTime must be timezone-aware (e.g. datetime.now(UTC))")
        if not MIN_GEN_TIME <= at <= MAX_GEN_TIME:
            raise UsageError(f"genTime {at.isoformat()} is outside {MIN_GEN_TIME.year}..{MAX_GEN_TIME.year}")
        return f"{self.url}/tsa/{name}/at/{int(at.timestamp())}"

    def timestamp_at(self, gen_time: datetime, *, tsa: str = "tsa") -> str:
        """The URL of a TSA whose tokens always carry ``gen_time`` (whole seconds), signed by ``tsa``; the same
        as ``tsa_for(tsa, at=gen_time)``. For simulating a timestamp made in the past, e.g. during
        ``expired-signer``'s validity (``tsa`` is valid from 4 years before the PKI's creation).

        Raises:
            UsageError: as :meth:`tsa_for`.
        """
        return self.tsa_for(tsa, at=gen_time)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """The requests answered so far, oldest first, as ``(method, path, status)``; the last
        :data:`MAX_LOGGED_REQUESTS` only. Shows tests which responders a client really asked (OCSP or CRL)."""
        with self._lock:
            return list(self._log)

    def revoke(self, name: str, *, at: datetime, reason: str = "key_compromise") -> None:
        """Revoke certificate ``name`` as of ``at`` (timezone-aware; whole seconds are reported) for ``reason``
        (one of :data:`REVOCATION_REASONS`, RFC 5280 §5.3.1). Immediately, the next OCSP answer says
        ``revoked`` with that time and reason, and the issuer's next CRL lists the serial with that date and a
        CRLReason entry extension (none for ``unspecified``, as RFC 5280 §5.3.1 recommends; nor in OCSP).
        Revoking again replaces the time and reason.

        .NET on Linux caches a downloaded CRL (``~/.dotnet/corefx/cryptography/crls``, keyed by issuer name and
        URL) until its nextUpdate and then does not ask again, so NuGet does not see a revocation made after it
        fetched this PKI's CRL: revoke before NuGet's first chain build, or use a fresh PKI (a cached CRL from
        another PKI fails its signature check and .NET falls back to OCSP over GET).

        Raises:
            UsageError: ``name`` is not a dev-PKI certificate, ``at`` is naive, or ``reason`` is unknown.
        """
        if at.tzinfo is None:
            raise UsageError("revocation time must be timezone-aware (e.g. datetime.now(UTC))")
        if reason not in REVOCATION_REASONS:
            raise UsageError(f"unknown revocation reason {reason!r} (known: {', '.join(REVOCATION_REASONS)})")
        serial = self.pki.cert(name).serial_number
        with self._lock:
            self.revoked[serial] = at.astimezone(UTC).replace(microsecond=0)
            self.reasons[serial] = x509.ReasonFlags[reason]

    def unrevoke(self, name: str) -> None:
        """Undo :meth:`revoke` for ``name`` (as releasing a certificateHold): OCSP says ``good`` again and the
        CRL no longer lists it. A certificate that is not revoked is left as it is.

        Raises:
            UsageError: ``name`` is not a dev-PKI certificate.
        """
        serial = self.pki.cert(name).serial_number
        with self._lock:
            self.revoked.pop(serial, None)
            self.reasons.pop(serial, None)

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> DevPkiServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ responders
    def _load_tsa(self, name: str) -> _TsaMaterial:
        with self._lock:
            material = self._tsa_material.get(name)
        if material is None:
            material = (self.pki.key(name), self.pki.chain(name))  # UsageError for an unknown name
            with self._lock:
                self._tsa_material[name] = material
        return material

    def _timestamp(self, body: bytes, name: str, gen_time: datetime | None = None) -> bytes:
        key, chain = self._load_tsa(name)
        when = gen_time if gen_time is not None else datetime.now(UTC) + self.clock_offset
        return timestamp_response(body, tsa_cert=chain[0], tsa_key=key, chain=chain, gen_time=when)

    def _tsa_route(self, path: str, body: bytes) -> bytes | None:
        """``/tsa/<name>`` or ``/tsa/<name>/at/<unix seconds>``; ``None`` when the path names neither."""
        parts = path.split("/")[2:]
        if not parts or parts[0] not in NAMES:
            return None
        if len(parts) == 1:
            return self._timestamp(body, parts[0])
        if len(parts) != _AT_PARTS or parts[1] != "at" or not parts[2].isdigit():
            return None
        seconds = int(parts[2])
        if seconds > MAX_GEN_TIME.timestamp():
            return None
        return self._timestamp(body, parts[0], datetime.fromtimestamp(seconds, UTC))

    @staticmethod
    def _ocsp_error(status: ocsp.OCSPResponseStatus) -> bytes:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)

    def _ocsp(self, body: bytes) -> bytes:
        try:
            req = ocsp.load_der_ocsp_request(body)
            serial = req.serial_number
        except ValueError:  # also multi-certificate requests, which cryptography does not parse
            return self._ocsp_error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        name = self._by_serial.get(serial)
        issuer_name = DevPki.issuer_name(name) if name else None
        if name is None or issuer_name is None:
            return self._ocsp_error(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        subject, issuer = self._certs[name], self._certs[issuer_name]
        try:  # the CertID must name this issuer too (same serial under another CA is someone else)
            expected = ocsp.OCSPRequestBuilder().add_certificate(subject, issuer, req.hash_algorithm).build()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return self._ocsp_error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if (expected.issuer_key_hash, expected.issuer_name_hash) != (req.issuer_key_hash, req.issuer_name_hash):
            return self._ocsp_error(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            revoked_at = self.revoked.get(serial)
            reason = self.reasons.get(serial) if revoked_at else None
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=subject, issuer=issuer, algorithm=req.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD,
            this_update=now - RESPONSE_BACKDATE, next_update=now + RESPONSE_LIFETIME,
            revocation_time=revoked_at,
            revocation_reason=reason if reason is not x509.ReasonFlags.unspecified else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer).certificates([issuer])
        try:  # RFC 8954: echo the request's nonce
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(x509.OCSPNonce(nonce.nonce), critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(self._ca_keys[issuer_name], hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _crl(self, issuer_name: str) -> bytes:
        issuer = self._certs[issuer_name]
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            revoked = dict(self.revoked)
            reasons = dict(self.reasons)
            self._crl_number += 1
            number = self._crl_number
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now - RESPONSE_BACKDATE)
            .next_update(now + RESPONSE_LIFETIME)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._ca_keys[issuer_name].public_key()), critical=False)
        )
        for serial, at in revoked.items():
            name = self._by_serial[serial]
            if DevPki.issuer_name(name) == issuer_name:
                entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
                reason = reasons.get(serial, x509.ReasonFlags.unspecified)
                if reason is not x509.ReasonFlags.unspecified:
                    entry = entry.add_extension(x509.CRLReason(reason), critical=False)
                builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self._ca_keys[issuer_name], hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        if method == "POST" and path == "/tsa":
            return 200, self._timestamp(body, self.tsa_name), "application/timestamp-reply"
        if method == "POST" and path.startswith("/tsa/"):
            reply = self._tsa_route(path, body)
            if reply is not None:
                return 200, reply, "application/timestamp-reply"
        if method == "POST" and path == "/ocsp":
            return 200, self._ocsp(body), "application/ocsp-response"
        if method == "GET" and path.startswith("/ocsp/"):
            try:
                der = base64.b64decode(urllib.parse.unquote(path[len("/ocsp/"):]), validate=True)
            except (ValueError, binascii.Error):
                return 200, self._ocsp_error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), "application/ocsp-response"
            return 200, self._ocsp(der), "application/ocsp-response"
        if method == "GET" and path.startswith("/crl/") and path.endswith(".crl"):
            name = path[len("/crl/") : -len(".crl")]
            if name in CA_NAMES:
                return 200, self._crl(name), "application/pkix-crl"
        return 404, b"not found", "text/plain"

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

            def _serve(self, method: str) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    self._reply(400, b"bad Content-Length", "text/plain")
                    return
                if length < 0 or length > MAX_REQUEST_BYTES:
                    self._reply(413, b"request too large", "text/plain")
                    return
                body = self.rfile.read(length) if length else b""
                try:
                    status, reply, content_type = server._route(method, self.path, body)
                except Exception as exc:  # a dev responder answers 500 rather than dropping the connection
                    status, reply, content_type = 500, f"{type(exc).__name__}: {exc}".encode(), "text/plain"
                with server._lock:
                    server._log.append((method, self.path[:MAX_LOGGED_PATH], status))
                self._reply(status, reply, content_type)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def serve(pki: DevPki, *, tsa_name: str = "tsa") -> DevPkiServer:
    """Start the responders for ``pki`` on ``pki.host:pki.port`` (loopback) in a background thread; returns the
    running :class:`DevPkiServer` (a context manager). ``tsa_name`` picks the certificate ``/tsa`` signs with
    (e.g. ``"tsa-no-eku"`` for negative tests); :meth:`DevPkiServer.tsa_for` serves others side by side.

    Raises:
        OSError: the port cannot be bound.
        UsageError: ``tsa_name`` is not a dev-PKI certificate.
    """
    return DevPkiServer(pki, tsa_name=tsa_name)
