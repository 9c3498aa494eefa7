"""Online revocation fetching: :class:`HttpRevocationFetcher`, the :class:`~nuseal.trust.revocation.RevocationFetcher`
over HTTP(S) with ``httpx``.

Kept apart from :mod:`nuseal.trust.revocation` (which decides what the bytes mean) so that the core loads no
HTTP client: only the callers that choose to fetch online import this module (the CLI's ``verify``, ``audit``,
``restore`` and ``revocation prefetch`` through :func:`~nuseal.trust.revocation_cache.revocation_run`, the
feed's composition). ``import nuseal.trust`` / ``nuseal.verify`` never does.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

from nuseal._internal.bounded import read_bounded
from nuseal._internal.tls import shared_tls_context
from nuseal.errors import NetworkError, UsageError
from nuseal.trust.revocation import (
    MAX_CRL_BYTES,
    MAX_OCSP_RESPONSE_BYTES,
    REQUEST_TIMEOUT_SECONDS,
    HostHealth,
    ResponderUnreachable,
    deadline_remaining,
    host_of,
)

__all__ = ["MAX_REDIRECTS", "HttpRevocationFetcher"]

#: At most this many HTTP redirects are followed per request.
MAX_REDIRECTS = 3

_USER_AGENT = "nuseal-revocation/1"
_OCSP_CONTENT_TYPE = "application/ocsp-request"


class HttpRevocationFetcher:
    """:class:`~nuseal.trust.revocation.RevocationFetcher` over HTTP(S) with ``httpx``: a hard deadline and a size
    cap per request.

    ``timeout`` (seconds, default :data:`REQUEST_TIMEOUT_SECONDS`) bounds the whole request, connect to last
    byte, and never runs past the enclosing :func:`~nuseal.trust.revocation.revocation_deadline`. Only ``http``
    and ``https`` URLs are fetched; at most :data:`MAX_REDIRECTS` redirects are followed. ``client`` lets a
    caller share a connection pool (it is not closed here); otherwise each request uses a short-lived client.
    ``hosts`` (optional) is the run's :class:`~nuseal.trust.revocation.HostHealth`: a host that failed once is
    not asked again (:class:`~nuseal.trust.revocation.ResponderUnreachable` at once).
    """

    def __init__(
        self,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        max_ocsp_bytes: int = MAX_OCSP_RESPONSE_BYTES,
        max_crl_bytes: int = MAX_CRL_BYTES,
        client: httpx.Client | None = None,
        hosts: HostHealth | None = None,
    ) -> None:
        if timeout <= 0:
            raise UsageError("revocation request timeout must be positive")
        self.timeout = timeout
        self.max_ocsp_bytes = max_ocsp_bytes
        self.max_crl_bytes = max_crl_bytes
        self._client = client
        self.hosts = hosts

    def fetch_ocsp(self, url: str, request: bytes) -> bytes:
        """POST ``request`` as ``application/ocsp-request``.

        Raises:
            NetworkError: bad URL scheme, connection failure, timeout, non-200 status, oversized body.
        """
        headers = {"Content-Type": _OCSP_CONTENT_TYPE, "Accept": "application/ocsp-response"}
        return self._fetch("POST", url, request, headers, self.max_ocsp_bytes)

    def fetch_crl(self, url: str) -> bytes:
        """GET a CRL. Raises :class:`~nuseal.errors.NetworkError` as :meth:`fetch_ocsp` does."""
        return self._fetch("GET", url, None, {}, self.max_crl_bytes)

    def _fetch(self, method: str, url: str, body: bytes | None, headers: dict[str, str], limit: int) -> bytes:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise NetworkError(f"revocation URL {url!r} is not http or https")
        host = host_of(url)
        if self.hosts is not None:
            why = self.hosts.unreachable(host)
            if why is not None:
                raise ResponderUnreachable(f"{url} was not asked: {host} could not be reached earlier ({why})")
        timeout = self.timeout
        remaining = deadline_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
            if timeout <= 0:
                raise NetworkError(f"{url} was not asked: the revocation deadline is spent")
        try:
            return self._request(method, url, body, headers, limit, timeout)
        except ResponderUnreachable as exc:
            if self.hosts is not None:
                self.hosts.mark(host, exc.message)
            raise

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], limit: int, timeout: float
    ) -> bytes:
        deadline = time.monotonic() + timeout
        headers = {"User-Agent": _USER_AGENT, **headers}
        client = self._client or httpx.Client(
            follow_redirects=True, max_redirects=MAX_REDIRECTS, verify=shared_tls_context()
        )
        try:
            with client.stream(method, url, content=body, headers=headers, timeout=timeout) as response:
                if response.status_code != httpx.codes.OK:
                    raise NetworkError(f"{url} answered HTTP {response.status_code}")
                return read_bounded(
                    response.iter_bytes(),
                    limit,
                    too_large=lambda: NetworkError(f"{url} sent more than {limit} bytes"),
                    deadline=deadline,
                    too_late=lambda: ResponderUnreachable(f"{url} did not answer within {timeout:.3g} s"),
                )
        except httpx.TimeoutException as exc:
            raise ResponderUnreachable(f"{url} did not answer within {timeout:.3g} s") from exc
        except httpx.TransportError as exc:
            raise ResponderUnreachable(f"{url} could not be reached: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"{url} could not be reached: {exc}") from exc
        finally:
            if self._client is None:
                client.close()

