"""Revocation checking: NuGet's online/offline modes, OCSP then CRL, fetched through an injected fetcher.

The split (STYLE.md "sans-I/O core"): a :class:`RevocationFetcher` moves bytes
(:class:`nuseal.trust.online.HttpRevocationFetcher` over ``httpx``, in its own module so that importing this one
loads no HTTP client; tests use a real loopback server); :class:`RevocationChecker` decides what those bytes mean,
at an injected ``now``, with pyhanko-certvalidator's OCSP (RFC 6960) and CRL (RFC 5280 §6.3) validation:
CertID matching, responder authorisation (the issuer itself or a delegated ``id-kp-OCSPSigning`` responder),
signatures, freshness, CRL scope (pyhanko-certvalidator, ~50 ms to import, is imported only when there is an OCSP
response or a CRL to judge: an offline check with nothing cached does not load it). :class:`RevocationCache`
remembers answers per ``(issuer key, serial)`` until the response's ``nextUpdate``.

NuGet semantics (``../shared/NUGET-SIGNING.md`` §4.2, §4.8, §5.3): ``NUGET_CERT_REVOCATION_MODE`` selects
online (default) or offline; revocation is checked for every certificate but the root
(``X509RevocationFlag.ExcludeRoot``); a revoked certificate is reported with its revocation time whatever the
signature's timestamp (the client treats it as an error; the feed's revalidation compares the time);
unreachable or unusable revocation data is "unknown" (NU3018/NU3028 warning at most).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from nuseal.errors import NetworkError, UsageError
from nuseal.trust._aio import run_sync
from nuseal.trust.certificate import der, facts

if TYPE_CHECKING:
    from nuseal.trust.revocation_cache import RevocationStore

__all__ = [
    "CACHE_DEFAULT_LIFETIME",
    "CACHE_MAX_ENTRIES",
    "CACHE_MAX_LIFETIME",
    "MAX_CRL_BYTES",
    "MAX_OCSP_RESPONSE_BYTES",
    "MAX_URLS_PER_METHOD",
    "REVOCATION_BUDGET_SECONDS",
    "REQUEST_TIMEOUT_SECONDS",
    "REVOCATION_MODE_ENV",
    "REVOCATION_TIME_TOLERANCE",
    "HOST_RETRY_SECONDS",
    "HostHealth",
    "ResponderUnreachable",
    "RevocationCache",
    "RevocationChecker",
    "RevocationFetcher",
    "RevocationMode",
    "RevocationResult",
    "RevocationStatus",
    "deadline_remaining",
    "host_of",
    "revocation_deadline",
]

#: NuGet's environment variable (NC ``X509TrustStore``/``SignedPackageVerifierSettings``; DOCS
#: ``Signed-Package-Verification-Options.md``).
REVOCATION_MODE_ENV = "NUGET_CERT_REVOCATION_MODE"
#: Hard limit on one OCSP or CRL request, connect to last byte (seconds).
REQUEST_TIMEOUT_SECONDS = 10.0
#: Largest OCSP response accepted (bytes).
MAX_OCSP_RESPONSE_BYTES = 64 << 10
#: Largest CRL accepted (bytes); some public CAs publish CRLs of several megabytes.
MAX_CRL_BYTES = 32 << 20
#: At most this many OCSP URLs and this many CRL URLs are tried per certificate.
MAX_URLS_PER_METHOD = 3
#: Once this much time (seconds) went into one certificate's revocation requests, no further URL is tried.
REVOCATION_BUDGET_SECONDS = 20.0
#: Clock skew allowed between this machine and the responder (thisUpdate in the future, nextUpdate just past).
REVOCATION_TIME_TOLERANCE = timedelta(minutes=5)
#: How long an answer without ``nextUpdate`` is cached.
CACHE_DEFAULT_LIFETIME = timedelta(hours=1)
#: Upper bound on how long any answer is cached, whatever ``nextUpdate`` says.
CACHE_MAX_LIFETIME = timedelta(hours=24)
#: Entries kept by a :class:`RevocationCache` (oldest dropped first).
CACHE_MAX_ENTRIES = 10_000

#: How long a host marked unreachable stays marked (seconds): a whole CLI run, but a long-running process
#: (the feed) tries again after this.
HOST_RETRY_SECONDS = 300.0



class RevocationMode(enum.StrEnum):
    """NuGet's ``RevocationMode``: fetch OCSP/CRL (``online``) or use only what is cached (``offline``)."""

    ONLINE = "online"
    OFFLINE = "offline"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RevocationMode:
        """Read ``NUGET_CERT_REVOCATION_MODE`` like NuGet does.

        NuGet parses it with ``Enum.TryParse(value, ignoreCase: true)``: ``online``/``offline`` in any case,
        surrounding white space allowed, the numeric values ``0``/``1`` accepted; anything else, or unset,
        means ``online``.
        """
        value = (os.environ if environ is None else environ).get(REVOCATION_MODE_ENV, "").strip().lower()
        if value in ("offline", "1"):
            return cls.OFFLINE
        return cls.ONLINE


class RevocationStatus(enum.Enum):
    """The answer for one certificate."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """What is known about one certificate's revocation.

    ``offline`` is set when no revocation server could be asked (offline mode, or every server unreachable):
    .NET's ``OfflineRevocation`` on top of ``RevocationStatusUnknown``. ``source`` names the OCSP or CRL URL
    that answered. ``revocation_time`` and ``reason`` (RFC 5280 reason name) are set for ``REVOKED``.
    ``next_update`` is when the answer goes stale; ``checked_at`` the ``now`` it was judged at.
    """

    status: RevocationStatus
    message: str
    checked_at: datetime
    revocation_time: datetime | None = None
    reason: str | None = None
    source: str | None = None
    next_update: datetime | None = None
    offline: bool = False


@runtime_checkable
class RevocationFetcher(Protocol):
    """Moves revocation bytes; decides nothing. Implementations raise :class:`~nuseal.errors.NetworkError`."""

    def fetch_ocsp(self, url: str, request: bytes) -> bytes:
        """POST a DER ``OCSPRequest`` to ``url``; return the DER ``OCSPResponse``."""
        ...

    def fetch_crl(self, url: str) -> bytes:
        """GET the CRL at ``url``; return its bytes (DER, or PEM)."""
        ...


class ResponderUnreachable(NetworkError):
    """The responder's host could not be reached: name resolution failed, the connection was refused or reset,
    or it did not answer in time. (An HTTP error status is a reachable host: plain :class:`NetworkError`.)"""


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("nuseal_revocation_deadline", default=None)


@contextlib.contextmanager
def revocation_deadline(seconds: float | None) -> Iterator[None]:
    """Bound every revocation request made inside the block to ``seconds`` in total (``time.monotonic``), e.g.
    one package's verification. ``None`` sets no bound. Requests started after the deadline fail at once with
    :class:`~nuseal.errors.NetworkError`; a request running into it is cut (a timeout)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline_remaining() -> float | None:
    """Seconds left before the enclosing :func:`revocation_deadline` (may be zero or negative once spent), or
    ``None`` outside any deadline. Fetchers bound each request by it."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def host_of(url: str) -> str:
    """``host:port`` of an http(s) URL (the port made explicit), the unit :class:`HostHealth` tracks."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme.lower() == "https" else 80
    return f"{(parts.hostname or '').lower()}:{port or default}"


class HostHealth:
    """A run's view of responder hosts: the first failure to reach one (DNS, refused, reset, timeout) marks it
    unreachable, and later requests there fail at once without touching the network.

    ``directory`` (optional) shares the marks between processes, e.g. forked verification workers: a mark is an
    empty file named after the host's SHA-256, created atomically. Marks expire after ``retry_after`` seconds
    (default :data:`HOST_RETRY_SECONDS`). Thread-safe.
    """

    def __init__(self, directory: Path | None = None, *, retry_after: float = HOST_RETRY_SECONDS) -> None:
        self.directory = directory
        self.retry_after = retry_after
        self._marks: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _file(self, host: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / hashlib.sha256(host.encode()).hexdigest()

    def mark(self, host: str, reason: str) -> None:
        """Record that ``host`` (``host:port``) could not be reached, and why."""
        with self._lock:
            self._marks.setdefault(host, (time.monotonic(), reason))
        path = self._file(host)
        if path is not None:
            with contextlib.suppress(OSError):
                tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(reason, encoding="utf-8")
                os.replace(tmp, path)

    def unreachable(self, host: str) -> str | None:
        """Why ``host`` is marked unreachable, or ``None`` when it may be tried."""
        with self._lock:
            mark = self._marks.get(host)
            if mark is not None:
                if time.monotonic() - mark[0] < self.retry_after:
                    return mark[1]
                del self._marks[host]
        path = self._file(host)
        if path is None:
            return None
        try:
            if time.time() - path.stat().st_mtime >= self.retry_after:
                return None
            reason = path.read_text(encoding="utf-8")
        except OSError:
            return None
        with self._lock:
            self._marks.setdefault(host, (time.monotonic(), reason))
        return reason


CacheKey = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why one OCSP response or CRL did not settle the question; ``stale`` when it was only out of date."""

    reason: str
    stale: bool = False


class RevocationCache:
    """Thread-safe in-memory cache of GOOD/REVOKED answers keyed by ``(sha256(issuer SPKI), serial)``.

    An entry expires at the answer's ``nextUpdate`` (or :data:`CACHE_DEFAULT_LIFETIME` after it was checked when
    there is none), never later than :data:`CACHE_MAX_LIFETIME`. UNKNOWN answers are never cached.

    ``store`` (optional) is the on-disk cache across runs (:class:`~nuseal.trust.revocation_cache.RevocationStore`):
    the checker reads the raw responses kept there, judges them again, and stores every response that settled
    a question online.
    """

    def __init__(self, *, max_entries: int = CACHE_MAX_ENTRIES, store: RevocationStore | None = None) -> None:
        self._entries: dict[CacheKey, tuple[datetime, RevocationResult]] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.store = store

    @staticmethod
    def key(cert: x509.Certificate, issuer: x509.Certificate) -> CacheKey:
        """The cache key of ``cert`` issued by ``issuer``."""
        return facts(issuer).spki_sha256, cert.serial_number  # sha256 of the issuer's SPKI DER, memoised

    def get(self, key: CacheKey, now: datetime) -> RevocationResult | None:
        """The cached answer still valid at ``now``, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: CacheKey, result: RevocationResult) -> None:
        """Remember ``result`` (ignored unless GOOD or REVOKED)."""
        if result.status is RevocationStatus.UNKNOWN:
            return
        checked = result.checked_at
        expiry = result.next_update or checked + CACHE_DEFAULT_LIFETIME
        expiry = min(expiry, checked + CACHE_MAX_LIFETIME)
        if expiry <= checked:
            return
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (expiry, result)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _http_urls(urls: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for url in urls:
        if urlsplit(url).scheme.lower() in ("http", "https") and url not in seen:
            seen.append(url)
    return seen[:MAX_URLS_PER_METHOD]


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) OCSP URLs of ``cert``'s AuthorityInformationAccess (at most :data:`MAX_URLS_PER_METHOD`)."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return _http_urls(
        [
            d.access_location.value
            for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
        ]
    )


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) full-name URLs of ``cert``'s CRLDistributionPoints (at most :data:`MAX_URLS_PER_METHOD`)."""
    try:
        cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    urls = [
        name.value
        for point in cdp
        for name in (point.full_name or ())
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    return _http_urls(urls)


_ASN1_CACHE: dict[bytes, Any] = {}
_ASN1_CACHE_SIZE = 4096
_ASN1_LOCK = threading.Lock()


def _asn1(cert: x509.Certificate) -> Any:
    """asn1crypto's view of ``cert``, parsed once per DER encoding (pyhanko reads the same issuers again and
    again; parsing dominated judging a cached response)."""
    encoded = der(cert)
    with _ASN1_LOCK:
        parsed = _ASN1_CACHE.get(encoded)
    if parsed is None:
        parsed = asn1_x509.Certificate.load(encoded)
        with _ASN1_LOCK:
            if len(_ASN1_CACHE) >= _ASN1_CACHE_SIZE:
                _ASN1_CACHE.clear()
            parsed = _ASN1_CACHE.setdefault(encoded, parsed)
    return parsed


def _reason_name(error: Exception) -> str | None:
    reason = getattr(error, "reason", None)
    native = getattr(reason, "native", None)
    return str(native) if native is not None else None


class RevocationChecker:
    """Decides the revocation status of one certificate of a chain (OCSP first, then CRL).

    ``fetcher`` is used only in online mode; without one nothing is fetched (the answer is UNKNOWN, offline, as
    when no server can be reached); ``cache`` (optional) is consulted in both modes, as .NET consults
    its CRL cache offline. Judging is done by pyhanko-certvalidator at the given ``now``, with
    :data:`REVOCATION_TIME_TOLERANCE` of clock skew; MD2/MD5-signed responses are refused, SHA-1 accepted
    (as .NET does).
    """

    def __init__(self, fetcher: RevocationFetcher | None, *, cache: RevocationCache | None = None) -> None:
        self.fetcher = fetcher
        self.cache = cache

    def check(
        self,
        chain: Sequence[x509.Certificate],
        index: int,
        *,
        now: datetime,
        mode: RevocationMode,
    ) -> RevocationResult:
        """The status of ``chain[index]``, whose issuer is ``chain[index + 1]``.

        ``chain`` runs leaf to top; its top certificate serves as the anchor for judging responses (whether it
        is trusted is the chain builder's business). Never raises for bad or missing revocation data: that is
        an ``UNKNOWN`` result with a message.

        Raises:
            UsageError: ``index`` has no issuer in ``chain``, or ``now`` is naive.
        """
        if now.tzinfo is None:
            raise UsageError("revocation checking needs a timezone-aware 'now'")
        if not 0 <= index < len(chain) - 1:
            raise UsageError("revocation checking needs the certificate's issuer in the chain")
        cert, issuer = chain[index], chain[index + 1]
        key = RevocationCache.key(cert, issuer)
        if self.cache is not None:
            cached = self.cache.get(key, now)
            if cached is not None:
                return cached
            if self.cache.store is not None:
                stored = self._from_store(self.cache.store, chain, index, now)
                if stored is not None:
                    self.cache.put(key, stored)
                    return stored
        if mode is RevocationMode.OFFLINE or self.fetcher is None:
            why = "revocation mode is offline" if mode is RevocationMode.OFFLINE else "no revocation fetcher was given"
            message = f"revocation was not checked because {why}"
            return RevocationResult(RevocationStatus.UNKNOWN, message, now, offline=True)
        result = self._check_online(chain, index, now, self.fetcher)
        if self.cache is not None:
            self.cache.put(key, result)
        return result

    def prepare(
        self, chain: Sequence[x509.Certificate], *, now: datetime, mode: RevocationMode
    ) -> dict[int, RevocationResult]:
        """Check every certificate of ``chain`` that has an issuer, requests to different responder hosts in
        parallel (one thread per host; a host's certificates in order). Returns ``{index: result}``; empty when
        there is nothing to overlap (offline, no fetcher, a single host), and the caller then calls :meth:`check`
        per certificate as usual. Never raises for revocation data (see :meth:`check`)."""
        if mode is not RevocationMode.ONLINE or self.fetcher is None or now.tzinfo is None:
            return {}
        groups: dict[str, list[int]] = {}
        hosts = getattr(self.fetcher, "hosts", None)
        for index in range(len(chain) - 1):
            if self.cache is not None and self.cache.get(RevocationCache.key(chain[index], chain[index + 1]), now):
                continue
            urls = ocsp_urls(chain[index]) or crl_urls(chain[index])
            if not urls:
                continue
            host = host_of(urls[0])
            if isinstance(hosts, HostHealth) and hosts.unreachable(host) is not None:
                continue  # answered at once by check(): nothing to overlap
            groups.setdefault(host, []).append(index)
        if len(groups) < 2:
            return {}

        def run(indexes: list[int]) -> dict[int, RevocationResult]:
            return {i: self.check(chain, i, now=now, mode=mode) for i in indexes}

        import concurrent.futures  # noqa: PLC0415 - with logging ~3 ms; only online, several hosts

        results: dict[int, RevocationResult] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(groups)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, run, indexes) for indexes in groups.values()]
            for future in futures:
                results.update(future.result())
        return results

    # ------------------------------------------------------------------ disk cache
    def _from_store(
        self, store: RevocationStore, chain: Sequence[x509.Certificate], index: int, now: datetime
    ) -> RevocationResult | None:
        """A GOOD/REVOKED answer judged afresh from a stored OCSP response or CRL, fresh at ``now``; entries that
        no longer verify (corrupt, tampered, wrong responder) are removed, stale ones left to be replaced."""
        cert, issuer = chain[index], chain[index + 1]
        candidates: list[tuple[str, str, bytes, datetime]] = []
        entry = store.get_ocsp(cert, issuer)
        if entry is not None:
            candidates.append(("ocsp", *entry))
        for url in crl_urls(cert):
            crl_entry = store.get_crl(url)
            if crl_entry is not None:
                candidates.append(("crl", url, *crl_entry[1:]))
        if not candidates:
            return None
        path = _validation_path(chain)
        for kind, url, data, stored_at in candidates:
            if kind == "ocsp":
                judged = self._judge_ocsp(chain=chain, index=index, path=path, response=data, url=url, now=now)
            else:
                judged = self._judge_crl(chain=chain, index=index, path=path, data=data, url=url, now=now)
            if isinstance(judged, _Failure):
                if not judged.stale:
                    store.discard(kind, cert, issuer, url)
                continue
            expiry = judged.next_update or stored_at + CACHE_DEFAULT_LIFETIME
            if now >= expiry:
                continue
            return RevocationResult(
                judged.status,
                f"{judged.message} (cached)",
                judged.checked_at,
                revocation_time=judged.revocation_time,
                reason=judged.reason,
                source=judged.source,
                next_update=judged.next_update,
            )
        return None

    def _remember(
        self, kind: str, chain: Sequence[x509.Certificate], index: int, url: str, data: bytes, result: RevocationResult
    ) -> None:
        store = self.cache.store if self.cache is not None else None
        if store is None or result.status is RevocationStatus.UNKNOWN:
            return
        if kind == "ocsp":
            store.put_ocsp(chain[index], chain[index + 1], url, data, result.next_update)
        else:
            store.put_crl(url, data, result.next_update)

    # ------------------------------------------------------------------ online
    def _check_online(
        self, chain: Sequence[x509.Certificate], index: int, now: datetime, fetcher: RevocationFetcher
    ) -> RevocationResult:
        cert, issuer = chain[index], chain[index + 1]
        failures: list[str] = []
        attempts = 0
        unreachable = 0
        stale = 0
        path = _validation_path(chain)

        started = time.monotonic()

        def over_budget(url: str) -> bool:
            if time.monotonic() - started < REVOCATION_BUDGET_SECONDS:
                return False
            failures.append(f"{url}: not tried, the {REVOCATION_BUDGET_SECONDS:g} s revocation budget is spent")
            return True

        for url in ocsp_urls(cert):
            if over_budget(url):
                break
            attempts += 1
            try:
                request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 6960 CertID
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                failures.append(f"OCSP {url}: no request can be made for this issuer key ({exc})")
                continue
            try:
                response = fetcher.fetch_ocsp(url, request.public_bytes(Encoding.DER))
            except NetworkError as exc:
                unreachable += 1
                failures.append(f"OCSP {url}: {exc.message}")
                continue
            result = self._judge_ocsp(chain=chain, index=index, path=path, response=response, url=url, now=now)
            if isinstance(result, RevocationResult):
                self._remember("ocsp", chain, index, url, response, result)
                return result
            stale += result.stale
            failures.append(f"OCSP {url}: {result.reason}")

        for url in crl_urls(cert):
            if over_budget(url):
                break
            attempts += 1
            try:
                data = fetcher.fetch_crl(url)
            except NetworkError as exc:
                unreachable += 1
                failures.append(f"CRL {url}: {exc.message}")
                continue
            result = self._judge_crl(chain=chain, index=index, path=path, data=data, url=url, now=now)
            if isinstance(result, RevocationResult):
                self._remember("crl", chain, index, url, data, result)
                return result
            stale += result.stale
            failures.append(f"CRL {url}: {result.reason}")

        if attempts == 0:
            return RevocationResult(
                RevocationStatus.UNKNOWN, "the certificate names no OCSP responder and no CRL distribution point", now
            )
        return RevocationResult(
            RevocationStatus.UNKNOWN,
            "; ".join(failures),
            now,
            # .NET: no server reachable, or only stale data (X509_V_ERR_CRL_HAS_EXPIRED) -> OfflineRevocation.
            offline=unreachable + stale == attempts,
        )

    def _context(self, chain: Sequence[x509.Certificate], now: datetime, **revinfo: Any) -> Any:
        # pyhanko-certvalidator (~50 ms to import) loads only when there is revocation data to judge.
        from pyhanko_certvalidator import ValidationContext  # noqa: PLC0415
        from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy  # noqa: PLC0415

        anchors = [_asn1(chain[-1])]
        return ValidationContext(
            trust_roots=anchors,
            other_certs=[_asn1(c) for c in chain[:-1]],
            moment=now,
            allow_fetching=False,
            revocation_mode="soft-fail",
            time_tolerance=REVOCATION_TIME_TOLERANCE,
            algorithm_usage_policy=DisallowWeakAlgorithmsPolicy(  # type: ignore[no-untyped-call]
                weak_hash_algos=frozenset({"md2", "md5"}), rsa_key_size_threshold=1024
            ),
            **revinfo,
        )

    def _judge_ocsp(
        self,
        *,
        chain: Sequence[x509.Certificate],
        index: int,
        path: Any,
        response: bytes,
        url: str,
        now: datetime,
    ) -> RevocationResult | _Failure:
        try:
            parsed = ocsp.load_der_ocsp_response(response)
        except ValueError:
            return _Failure("the response is not a DER OCSPResponse")
        if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return _Failure(f"the responder answered {parsed.response_status.name}")
        from pyhanko_certvalidator.errors import (  # noqa: PLC0415 - only with a response to judge
            OCSPValidationError,
            PathValidationError,
            RevokedError,
            ValidationError,
        )
        from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response  # noqa: PLC0415

        try:
            context = self._context(chain, now, ocsps=[response])
            run_sync(verify_ocsp_response(_asn1(chain[index]), path, context))
        except RevokedError as exc:
            return RevocationResult(
                RevocationStatus.REVOKED,
                f"the OCSP response from {url} says the certificate was revoked at {exc.revocation_dt.isoformat()}",
                now,
                revocation_time=exc.revocation_dt,
                reason=_reason_name(exc),
                source=url,
                next_update=_ocsp_next_update(parsed),
            )
        except (OCSPValidationError, PathValidationError, ValidationError) as exc:
            return _Failure(_describe(exc), stale=getattr(exc, "suspect_stale", None) is not None)
        except (ValueError, TypeError, KeyError) as exc:
            return _Failure(f"the OCSP response cannot be processed ({exc})")
        return RevocationResult(
            RevocationStatus.GOOD,
            f"the OCSP response from {url} says the certificate is good",
            now,
            source=url,
            next_update=_ocsp_next_update(parsed),
        )

    def _judge_crl(
        self,
        *,
        chain: Sequence[x509.Certificate],
        index: int,
        path: Any,
        data: bytes,
        url: str,
        now: datetime,
    ) -> RevocationResult | _Failure:
        try:
            crl = x509.load_der_x509_crl(data)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(data)
            except ValueError:
                return _Failure("the response is not a CRL")
        crl_der = crl.public_bytes(Encoding.DER)
        from pyhanko_certvalidator.errors import (  # noqa: PLC0415 - only with a CRL to judge
            CRLValidationError,
            PathValidationError,
            RevokedError,
            ValidationError,
        )
        from pyhanko_certvalidator.revinfo.validate_crl import verify_crl  # noqa: PLC0415

        try:
            context = self._context(chain, now, crls=[crl_der])
            # The chain itself was judged by the chain builder: do not re-validate the CRL issuer's path.
            for position in range(index + 1, len(chain)):
                context.record_validation(_asn1(chain[position]), path)
            run_sync(verify_crl(_asn1(chain[index]), path, context))
        except RevokedError as exc:
            return RevocationResult(
                RevocationStatus.REVOKED,
                f"the CRL from {url} says the certificate was revoked at {exc.revocation_dt.isoformat()}",
                now,
                revocation_time=exc.revocation_dt,
                reason=_reason_name(exc),
                source=url,
                next_update=crl.next_update_utc,
            )
        except (CRLValidationError, PathValidationError, ValidationError) as exc:
            return _Failure(_describe(exc), stale=getattr(exc, "suspect_stale", None) is not None)
        except (ValueError, TypeError, KeyError) as exc:
            return _Failure(f"the CRL cannot be processed ({exc})")
        return RevocationResult(
            RevocationStatus.GOOD,
            f"the CRL from {url} does not list the certificate",
            now,
            source=url,
            next_update=crl.next_update_utc,
        )


def _describe(exc: Exception) -> str:
    """pyhanko's reasons for an indeterminate answer (its summary names the certificate confusingly)."""
    failures = getattr(exc, "failures", None)
    if failures:
        return "; ".join(str(f[0]) if isinstance(f, tuple) else str(f) for f in failures)
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _ocsp_next_update(response: ocsp.OCSPResponse) -> datetime | None:
    try:
        return response.next_update_utc
    except ValueError:
        return None


def _validation_path(chain: Sequence[x509.Certificate]) -> Any:
    from pyhanko_certvalidator.authority import CertTrustAnchor  # noqa: PLC0415 - only with revocation to judge
    from pyhanko_certvalidator.path import ValidationPath  # noqa: PLC0415

    anchor = CertTrustAnchor(_asn1(chain[-1]))
    middle = [_asn1(c) for c in reversed(chain[1:-1])]
    return ValidationPath(trust_anchor=anchor, interm=middle, leaf=_asn1(chain[0]))
