"""RFC 3161 timestamp client (request and response with ``rfc3161-client``, transport with ``httpx``).

The request is the one NuGet makes (NC ``Rfc3161TimestampProvider.GetTimestamp``; NUGET-SIGNING.md §3.6): a
message imprint over the stamped signature value, a nonce, ``certReq`` true, no policy, over HTTP(S) with a
10 s limit. The response must pass, in NuGet's order before it is used:

1. .NET's own decoding (``Rfc3161TimestampRequest.ProcessResponse`` / ``Rfc3161TimestampToken.TryDecode``):
   status granted, a token whose signer certificate carries a **critical** extended-key-usage extension
   with id-kp-timeStamping (RFC 3161 §2.3). .NET throws an uncoded ``CryptographicException`` ("The
   response from the timestamping server was not understood"); so does this client (no code).
2. NuGet's ``ValidateTimestampResponse``: the nonce echoed (NU3026), the imprint equal (NU3019).
3. NuGet's ``ValidateTimestampCms`` and the token checks shared with verification
   (:meth:`nuseal.timestamp.token.Timestamp.check`): TSA signature (NU3021), certificate present
   (NU3020), its signature algorithm (NU3022), key (NU3023), digest algorithm (NU3024), not yet valid
   (NU3025), genTime inside its validity (NU3036).

The TSA certificate's chain (NU3028) is judged by the caller, which knows the trust stores
(:func:`nuseal.signing.checks.check_timestamp_certificate`); :func:`with_certificates` then adds the chain
certificates the TSA left out, as NuGet's ``EnsureCertificatesInCertificatesCollection`` does.

SHA-384 imprints: ``rfc3161-client`` builds SHA-256 and SHA-512 requests only, so a SHA-384 request is built
with ``asn1crypto.tsp`` (the same fields, with NuGet's 32-byte nonce).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime

import httpx
import rfc3161_client
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal._internal.bounded import read_bounded
from nuseal._internal.tls import shared_tls_context
from nuseal.codes import Level, NuCode
from nuseal.errors import NetworkError, TimestampError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.timestamp.token import Timestamp

__all__ = ["MAX_RESPONSE_BYTES", "TIMEOUT_SECONDS", "TimestampClient", "with_certificates"]

#: NuGet's timestamp request limit (``_rfc3161RequestTimeoutSeconds``): a hard deadline here, connect to last byte.
TIMEOUT_SECONDS = 10.0
#: Largest timestamp response read (bytes); real responses are 2-12 KB.
MAX_RESPONSE_BYTES = 1 << 20
#: NuGet's nonce length (bytes).
NONCE_BYTES = 32

_RFC3161_ALGORITHMS = {
    HashAlgorithm.SHA256: rfc3161_client.HashAlgorithm.SHA256,
    HashAlgorithm.SHA512: rfc3161_client.HashAlgorithm.SHA512,
}
_ASN1_NAMES = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA384: "sha384", HashAlgorithm.SHA512: "sha512"}
_NOT_UNDERSTOOD = "The response from the timestamping server was not understood"
_STATUS_NAMES = {0: "granted", 1: "grantedWithMods", 2: "rejection", 3: "waiting", 4: "revocationWarning",
                 5: "revocationNotification"}


def _request(signature_value: bytes, algorithm: HashAlgorithm) -> tuple[bytes, int]:
    """DER TimeStampReq and its nonce."""
    if algorithm in _RFC3161_ALGORITHMS:
        request = rfc3161_client.TimestampRequestBuilder(
            data=signature_value, hash_algorithm=_RFC3161_ALGORITHMS[algorithm], nonce=True, cert_req=True
        ).build()
        assert request.nonce is not None  # nonce=True
        return request.as_bytes(), int(request.nonce)
    # NuGet: 32 random bytes read as a positive integer (the top bit cleared).
    nonce = int.from_bytes(secrets.token_bytes(NONCE_BYTES), "big") >> 1
    req = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": _ASN1_NAMES[algorithm]}),
            "hashed_message": algorithm.digest(signature_value),
        },
        "nonce": nonce,
        "cert_req": True,
    })
    return bytes(req.dump()), nonce


def _post(client: httpx.Client, url: str, body: bytes, *, deadline: float) -> bytes:
    """POST ``body``; the response body, at most :data:`MAX_RESPONSE_BYTES`, before ``deadline`` (monotonic)."""
    remaining = max(deadline - time.monotonic(), 0.001)
    with client.stream(
        "POST", url, content=body, headers={"Content-Type": "application/timestamp-query"}, timeout=remaining
    ) as reply:
        if reply.status_code != 200:
            raise NetworkError(f"the timestamp server {url} answered HTTP {reply.status_code}")
        return read_bounded(
            reply.iter_bytes(),
            MAX_RESPONSE_BYTES,
            too_large=lambda: NetworkError(
                f"the timestamp response from {url} is larger than {MAX_RESPONSE_BYTES} bytes"
            ),
            deadline=deadline,
            too_late=lambda: NetworkError(f"the timestamp server {url} did not answer within the time limit"),
        )


def _post_with_deadline(client: httpx.Client, url: str, body: bytes, timeout: float) -> bytes:
    """:func:`_post` in a worker thread, abandoned when ``timeout`` seconds pass (httpx's timeouts are per
    phase; this makes the limit hard, whatever the server's pace)."""
    outcome: list[bytes | BaseException] = []
    deadline = time.monotonic() + timeout

    def work() -> None:
        try:
            outcome.append(_post(client, url, body, deadline=deadline))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=work, name="nuseal-tsa", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimestampError(f"the timestamp server {url} did not answer within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, httpx.HTTPError | NetworkError):
        raise TimestampError(f"the timestamp server {url} could not be reached: {result}") from result
    if isinstance(result, BaseException):
        raise result
    return result


def _is_timestamping_certificate(cert: x509.Certificate) -> bool:
    """RFC 3161 §2.3 as .NET checks it: the EKU extension is present, critical, and lists id-kp-timeStamping."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return eku.critical and ExtendedKeyUsageOID.TIME_STAMPING in eku.value


class TimestampClient:
    """Asks one TSA for tokens over ``signature value``s.

    Args:
        url: http or https URL of the RFC 3161 service.
        hash_algorithm: the message-imprint algorithm (NuGet's ``--timestamp-hash-algorithm``).
        timeout: hard limit in seconds for one request, connect to last byte.
        transport: an httpx transport (tests, embedders); default: real sockets.

    Raises:
        UsageError: (constructor) a URL that is not http(s).
    """

    def __init__(
        self,
        url: str,
        *,
        hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"the timestamper must be an http(s) URL: {url!r}")
        self.url = url
        self.hash_algorithm = hash_algorithm
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        """One pooled HTTP client per TSA client, on the process's shared TLS context (:mod:`nuseal._internal.tls`)."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=self._transport, follow_redirects=False, verify=shared_tls_context()
                )
            return self._client

    def close(self) -> None:
        """Close the pooled connections (the client stays usable: a new pool is made on demand)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> TimestampClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def timestamp(self, signature_value: bytes, *, now: datetime) -> bytes:
        """A TimeStampToken (DER ContentInfo) over ``signature_value`` that passed the checks in the module
        docstring; ``now`` (timezone-aware) is the moment NU3025 is judged at.

        Raises:
            TimestampError: transport failure or timeout, a refused request or an undecodable response (no
                code, as .NET); NU3026 nonce, NU3019 imprint, NU3020-NU3025/NU3036 token problems.
        """
        body, nonce = _request(signature_value, self.hash_algorithm)
        raw = _post_with_deadline(self._http(), self.url, body, self.timeout)
        try:
            response = rfc3161_client.decode_timestamp_response(raw)
        except ValueError as exc:
            raise TimestampError(f"{_NOT_UNDERSTOOD}: {self._status_text(raw) or exc}.") from exc
        if response.status not in (0, 1):
            status = _STATUS_NAMES.get(response.status, str(response.status))
            raise TimestampError(f"the timestamp server {self.url} refused the request ({status}).")
        token = response.time_stamp_token()
        try:
            parsed = Timestamp.parse(token)
        except TimestampError as exc:
            raise TimestampError(f"{_NOT_UNDERSTOOD}: {exc.message}") from exc
        cert = parsed.signer_certificate
        if cert is not None and not _is_timestamping_certificate(cert):
            raise TimestampError(
                f"{_NOT_UNDERSTOOD}: the TSA certificate does not carry a critical id-kp-timeStamping extended "
                "key usage (RFC 3161 §2.3)."
            )
        if parsed.nonce != nonce:
            raise TimestampError("The timestamp response is invalid.  Nonces did not match.", code=NuCode.NU3026)
        if (
            parsed.imprint_algorithm_oid != self.hash_algorithm.oid
            or parsed.message_imprint != self.hash_algorithm.digest(signature_value)
        ):
            raise TimestampError("The timestamp's message imprint does not match the signature.", code=NuCode.NU3019)
        problems = [i for i in parsed.check(signature_value, now=now) if i.level is Level.ERROR]
        if problems:
            raise TimestampError(problems[0].message, code=problems[0].code)
        return token

    @staticmethod
    def _status_text(raw: bytes) -> str | None:
        try:
            status = tsp.TimeStampResp.load(raw)["status"]
            text = status["status_string"].native
            return f"status {status['status'].native}" + (f" ({'; '.join(text)})" if text else "")
        except (ValueError, TypeError, KeyError):
            return None


def with_certificates(token: bytes, certificates: Sequence[x509.Certificate]) -> bytes:
    """``token`` with every certificate of ``certificates`` it lacks appended to its ``certificates`` set
    (NC ``EnsureCertificatesInCertificatesCollection``); the token itself when it lacks none.

    The TSA's signature covers only TSTInfo and its signed attributes, so the token stays valid.

    Raises:
        TimestampError: NU3003 the token is not a CMS SignedData.
    """
    try:
        signed = cms.ContentInfo.load(token)["content"]
        # Present or not without .native, which renders every certificate and fails on values asn1crypto lacks.
        existing = [] if isinstance(signed["certificates"], core.Void) else list(signed["certificates"])
        present = {c.dump() for c in existing}
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"The timestamp cannot be decoded: {exc}", code=NuCode.NU3003) from exc
    missing = [d for d in dict.fromkeys(c.public_bytes(Encoding.DER) for c in certificates) if d not in present]
    if not missing:
        return token
    added = [cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)}) for d in missing]
    signed["certificates"] = [*existing, *added]
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())
