"""RFC 3161 timestamp client (request with ``rfc3161-client``, transport with ``httpx``).

Request as NuGet makes it (NC ``Rfc3161TimestampProvider.GetTimestampAsync``): message imprint over the
stamped signature value, a nonce, ``certReq``; response checks with NuGet's codes: status granted, nonce equal
(NU3026), imprint equal (NU3019), then the token's own checks (``nuseal.signature.Timestamp.check``: NU3020,
NU3021, NU3022, NU3023, NU3024, NU3036...).
"""

from __future__ import annotations

from datetime import datetime

import httpx
import rfc3161_client

from nuseal.codes import Level, NuCode
from nuseal.errors import TimestampError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.signature.timestamp import Timestamp

__all__ = ["MAX_RESPONSE_BYTES", "TIMEOUT_SECONDS", "TimestampClient"]

#: NuGet's timestamp request timeout.
TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1 << 20
_ALGORITHMS = {
    HashAlgorithm.SHA256: rfc3161_client.HashAlgorithm.SHA256,
    HashAlgorithm.SHA512: rfc3161_client.HashAlgorithm.SHA512,
}


class TimestampClient:
    """Asks one TSA for tokens. ``transport`` lets tests and embedders pass an httpx transport."""

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
        if hash_algorithm not in _ALGORITHMS:
            raise UsageError(
                f"timestamp hash algorithm {hash_algorithm.nuget_name} is not supported; use SHA256 or SHA512"
            )
        self.url = url
        self.hash_algorithm = hash_algorithm
        self._timeout = timeout
        self._transport = transport

    def timestamp(self, signature_value: bytes, *, now: datetime) -> bytes:
        """A verified TimeStampToken (DER ContentInfo) over ``signature_value``.

        Raises:
            TimestampError: transport failure or timeout (no code), a refused request, or a response that fails
                NuGet's checks (NU3026 nonce, NU3019 imprint, NU3020/NU3021/... token problems).
        """
        request = rfc3161_client.TimestampRequestBuilder(
            data=signature_value, hash_algorithm=_ALGORITHMS[self.hash_algorithm], nonce=True, cert_req=True
        ).build()
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
                reply = client.post(
                    self.url,
                    content=request.as_bytes(),
                    headers={"Content-Type": "application/timestamp-query"},
                )
        except httpx.HTTPError as exc:
            raise TimestampError(f"the timestamp server {self.url} could not be reached: {exc}") from exc
        if reply.status_code != 200:
            raise TimestampError(f"the timestamp server {self.url} answered HTTP {reply.status_code}")
        if len(reply.content) > MAX_RESPONSE_BYTES:
            raise TimestampError(f"the timestamp response is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            response = rfc3161_client.decode_timestamp_response(reply.content)
        except ValueError as exc:
            raise TimestampError(f"the timestamp response cannot be decoded: {exc}", code=NuCode.NU3021) from exc
        if response.status not in (0, 1):  # granted, grantedWithMods
            raise TimestampError(f"the timestamp server refused the request (status {response.status})")
        if response.tst_info.nonce != request.nonce:
            raise TimestampError("The timestamp response is invalid.  Nonces did not match.", code=NuCode.NU3026)
        if response.tst_info.message_imprint.message != self.hash_algorithm.digest(signature_value):
            raise TimestampError("The timestamp's message imprint does not match the signature.", code=NuCode.NU3019)
        token = response.time_stamp_token()
        problems = [i for i in Timestamp.parse(token).check(signature_value, now=now) if i.level is Level.ERROR]
        if problems:
            raise TimestampError(problems[0].message, code=problems[0].code)
        return token
