"""Upstream V3 sources of the mirror (issue 16, point 1): discovery, version lists, registrations, the
``RepositorySignatures`` certificates, search, and ``.nupkg`` downloads, for one upstream (:class:`UpstreamClient`)
and for the set the feed is configured with (:class:`Upstreams`: which upstreams may serve an id).

Protocol (NuGet docs ``api/service-index.md``, ``api/package-base-address-resource.md``,
``api/registration-base-url-resource.md``, ``api/search-query-service-resource.md``,
``api/search-autocomplete-service-resource.md``,
``api/repository-signatures-resource.md``); the documents are read by :mod:`nuseal.client.v3documents`, the same
readers restore's client uses.

Caching: every metadata answer (service index, version list, registration index and pages, RepositorySignatures,
search, autocomplete) is kept in memory for ``metadata_ttl`` seconds of the injected ``clock`` (a 404 too: an id the
upstream does not have stays unknown for the TTL). When a fresh answer cannot be had because the upstream is down
(connection refused, timeout, 5xx), the last answer keeps being served however old it is; with nothing cached the call
raises :class:`UpstreamUnavailableError` naming the upstream (the feed answers 502). Concurrent fetches of the same
document are one request.

Downloads: :meth:`UpstreamClient.fetch_package` streams the ``.nupkg`` to a hidden ``.part-*`` file in
``work_dir`` (cap ``max_package_size``, SHA-512 computed as it arrives), single flight: concurrent callers for the
same (id, version) share one upstream download and each receives its own hard link to the finished file
(:class:`FetchedPackage`, theirs to move or discard). A download that fails, is cut or is cancelled by every caller
removes its part file and is forgotten, so the next call downloads again; hidden files a killed process left
behind (``.part-*``, ``.done-*``) are removed by the next client built on the folder once older than
``download_timeout``. The single flight is per process: ``nuseal serve --workers N`` can make up to N downloads of
one package.

Source mapping: each upstream has ``packageSourceMapping`` patterns (default ``*``); :meth:`Upstreams.route` keeps
the upstreams whose pattern matches an id best, by NuGet's rule (:func:`nuseal.client.settings.mapped_source_names`:
an exact id beats any prefix, a longer prefix a shorter one), and none for an id the feed holds itself
(``local_id`` hook: local ids always win, the dependency-confusion defence).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx

from nuseal.client.settings import check_mapping_pattern, mapped_source_names
from nuseal.client.v3documents import (
    PACKAGE_BASE_ADDRESS,
    REGISTRATIONS_BASE_URL,
    REPOSITORY_SIGNATURES,
    SEARCH_QUERY_SERVICE,
    RegistrationLeaf,
    RegistrationPage,
    RepositorySignatures,
    V3DocumentError,
    parse_registration_index,
    parse_registration_page,
    parse_repository_signatures,
    parse_service_index,
    parse_version_list,
)
from nuseal.codes import NuCode
from nuseal.errors import ConfigError, NetworkError
from nuseal.package.version import NuGetVersion

__all__ = [
    "DEFAULT_METADATA_TTL",
    "FetchedPackage",
    "SingleFlight",
    "UpstreamClient",
    "UpstreamDocumentError",
    "UpstreamError",
    "UpstreamPackageTooLargeError",
    "UpstreamResources",
    "UpstreamSource",
    "UpstreamUnavailableError",
    "Upstreams",
]

log = logging.getLogger(__name__)

#: Seconds a metadata answer stays fresh (NuGet's own HTTP cache keeps version lists 30 minutes).
DEFAULT_METADATA_TTL = 600.0
#: ``@type`` names of the autocomplete resource, preferred first (``api/search-autocomplete-service-resource.md``).
SEARCH_AUTOCOMPLETE_SERVICE = (
    "SearchAutocompleteService/3.5.0",
    "SearchAutocompleteService/3.0.0-rc",
    "SearchAutocompleteService/3.0.0-beta",
    "SearchAutocompleteService",
)
#: Largest ``.nupkg`` taken from an upstream (nuget.org's upload limit is 250 MB).
DEFAULT_MAX_PACKAGE_SIZE = 250 * 1000 * 1000
#: Largest metadata document read (nuget.org's biggest registration pages are a few MB).
MAX_DOCUMENT_BYTES = 32 << 20
#: Most metadata answers kept in memory per upstream (least recently used dropped first).
MAX_CACHE_ENTRIES = 20_000
#: Seconds for one metadata request, and for one whole ``.nupkg`` download.
DEFAULT_TIMEOUT = 30.0
DEFAULT_DOWNLOAD_TIMEOUT = 600.0
#: Extra attempts for a metadata request after a connection failure, timeout or 5xx (downloads are not retried:
#: the client that asked retries).
DEFAULT_RETRIES = 1
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
_PART_PREFIX = ".part-"
_DONE_PREFIX = ".done-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- errors
class UpstreamError(NetworkError):
    """An upstream could not give what was asked. ``upstream`` is its name, ``url`` its service index; the
    message names both. The feed answers 502 with the message."""

    def __init__(self, message: str, *, upstream: str, url: str) -> None:
        super().__init__(message, code=NuCode.NU1301)
        self.upstream = upstream
        self.url = url


class UpstreamUnavailableError(UpstreamError):
    """The upstream did not answer (connection refused or cut, timeout, HTTP 5xx, 401/403) and nothing is cached."""


class UpstreamDocumentError(UpstreamError):
    """The upstream answered with a document that is not the documented V3 shape (or broke a protocol rule, e.g.
    a ``RepositorySignatures`` resource over plain http)."""


class UpstreamPackageTooLargeError(UpstreamError):
    """The ``.nupkg`` is larger than the configured cap; nothing was kept."""


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class UpstreamSource:
    """One configured upstream: ``name`` (shown in errors and pages), ``url`` (its V3 service index), ``patterns``
    (``packageSourceMapping`` package id patterns; ``*`` = every id), ``allow_insecure_connections`` (accept a plain
    http upstream, as nuget.config's ``allowInsecureConnections``; NuGet refuses http sources otherwise).

    Raises:
        ConfigError: a bad name, URL or pattern, or an http URL without ``allow_insecure_connections``.
    """

    name: str
    url: str
    patterns: tuple[str, ...] = ("*",)
    allow_insecure_connections: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"upstream name {self.name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"upstream {self.name!r}: {self.url!r} is not an http(s) service index URL")
        if parts.scheme == "http" and not self.allow_insecure_connections:
            raise ConfigError(
                f"upstream {self.name!r}: {self.url} is plain http; use https, or allow insecure connections "
                "for this upstream explicitly (as nuget.config's allowInsecureConnections)"
            )
        if not self.patterns:
            raise ConfigError(f"upstream {self.name!r}: no package id patterns (use '*' for every id)")
        object.__setattr__(self, "patterns", tuple(check_mapping_pattern(p) for p in self.patterns))

    @classmethod
    def parse(cls, text: str, *, allow_insecure_connections: bool = False) -> UpstreamSource:
        """Read the ``--upstream`` option: ``[NAME=]URL[#PATTERN[,PATTERN...]]``, e.g.
        ``nuget.org=https://api.nuget.org/v3/index.json#Newtonsoft.*,System.*`` (the fragment never reaches the
        server). Without a name, the URL's host is the name; without patterns, ``*``.

        Raises:
            ConfigError: as the constructor.
        """
        name = ""
        rest = text.strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(https?://.*)$", rest, re.IGNORECASE)
        if m:
            name, rest = m.group(1), m.group(2)
        url, _, fragment = rest.partition("#")
        patterns = tuple(p for p in (s.strip() for s in fragment.split(",")) if p) if fragment else ("*",)
        if not name:
            name = urlsplit(url).hostname or url
        return cls(name, url, patterns, allow_insecure_connections)


@dataclass(frozen=True)
class UpstreamResources:
    """What the service index offers (``None``: not offered). Only ``package_base_address`` is required."""

    package_base_address: str
    registrations_base_url: str | None
    search_query_service: str | None
    repository_signatures: str | None
    autocomplete_service: str | None = None


@dataclass(frozen=True)
class FetchedPackage:
    """A downloaded ``.nupkg``: ``path`` (in the client's ``work_dir``, owned by the caller: move it into storage or
    :meth:`discard` it), ``size`` in bytes, ``sha512`` (base64 of the SHA-512 of the file, the feed's and V2's form),
    and where it came from."""

    upstream: str
    package_id: str
    version: NuGetVersion
    url: str
    path: Path
    size: int
    sha512: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# ---------------------------------------------------------------------------------------------- single flight
class SingleFlight(Generic[K, T]):
    """Concurrent :meth:`run` calls with the same key share one run of the work (asyncio, one process). The work
    runs in its own task, so a caller that is cancelled does not cancel it for the others; the key is forgotten as
    soon as the work ends, well or not, so the next call runs it again."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[T]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._tasks

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning when every caller left


@dataclass
class _Download:
    task: asyncio.Task[tuple[Path, int, str, str] | None]
    waiters: int = 0


# ---------------------------------------------------------------------------------------------- one upstream
@dataclass
class _Entry:
    stored_at: float
    value: Any


class UpstreamClient:
    """One upstream V3 source. Use as ``async with UpstreamClient(...)`` (or call :meth:`aclose`).

    Args:
        source: the upstream.
        work_dir: folder for downloads in flight and finished (same filesystem as the feed's storage, so a
            :class:`FetchedPackage` can be moved in); created if missing.
        clock: monotonic seconds, for the metadata TTL (injectable for tests).
        metadata_ttl: seconds a metadata answer stays fresh.
        max_package_size: bytes; larger ``.nupkg`` files are refused (:class:`UpstreamPackageTooLargeError`).
        timeout / download_timeout: seconds for one metadata request / one whole download.
        retries: extra attempts of a metadata request.
        verify: TLS verification for httpx (``True``: the system's CAs; a context for a private CA).
        transport: an httpx transport (e.g. to route through a proxy in tests); default: httpx's.
    """

    def __init__(
        self,
        source: UpstreamSource,
        *,
        work_dir: Path,
        clock: Callable[[], float] = time.monotonic,
        metadata_ttl: float = DEFAULT_METADATA_TTL,
        max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source = source
        self.work_dir = Path(work_dir)
        self.clock = clock
        self.metadata_ttl = metadata_ttl
        self.max_package_size = max_package_size
        self.download_timeout = download_timeout
        self.retries = max(0, retries)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": "nuseal-mirror (NuGet V3 client)"},
            verify=verify,
            transport=transport,
        )
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._metadata: SingleFlight[tuple[str, str], Any] = SingleFlight()
        self._downloads: dict[tuple[str, str], _Download] = {}
        #: Counters: metadata requests sent, downloads started, stale answers served while the upstream was down.
        self.requests = 0
        self.downloads = 0
        self.stale_served = 0
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._remove_dead_parts()

    @property
    def name(self) -> str:
        return self.source.name

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for download in list(self._downloads.values()):
            download.task.cancel()
        await self._http.aclose()

    def _remove_dead_parts(self) -> None:
        """Part files (and finished downloads not yet handed out) older than a download may last were left by a
        killed process."""
        now = time.time()
        for prefix in (_PART_PREFIX, _DONE_PREFIX):
            for part in self.work_dir.glob(prefix + "*"):
                with contextlib.suppress(OSError):
                    if now - part.stat().st_mtime > self.download_timeout:
                        part.unlink()

    # ------------------------------------------------------------------ errors
    def _unavailable(self, what: str, detail: str) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"upstream {self.source.name!r} ({self.source.url}) is unavailable: {what}: {detail}",
            upstream=self.source.name,
            url=self.source.url,
        )

    def _bad_document(self, what: str, detail: str) -> UpstreamDocumentError:
        return UpstreamDocumentError(
            f"upstream {self.source.name!r} ({self.source.url}) sent an invalid {what}: {detail}",
            upstream=self.source.name,
            url=self.source.url,
        )

    # ------------------------------------------------------------------ HTTP
    async def _get(self, url: str, what: str) -> tuple[int, bytes]:
        """GET a metadata document: ``(200, body)`` or ``(404, b"")``; retried on connection failures, timeouts
        and 5xx.

        Raises:
            UpstreamUnavailableError: attempts used up, 401/403, or any other status.
            UpstreamDocumentError: a body over :data:`MAX_DOCUMENT_BYTES`.
        """
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(0.1 * attempt)
            self.requests += 1
            try:
                async with self._http.stream("GET", url) as response:
                    status = response.status_code
                    if status != 200:
                        await response.aclose()
                        if status in (404, 410):
                            return 404, b""
                        last = f"HTTP {status} for {url}"
                        if status in _RETRY_STATUS:
                            continue
                        raise self._unavailable(what, last)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_DOCUMENT_BYTES:
                            raise self._bad_document(what, f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
                        chunks.append(chunk)
                    return 200, b"".join(chunks)
            except httpx.TimeoutException:
                last = f"timed out reading {url}"
            except httpx.HTTPError as exc:  # connection refused or cut, protocol errors
                last = f"{type(exc).__name__} for {url}" + (f": {exc}" if str(exc) else "")
        raise self._unavailable(what, last)

    # ------------------------------------------------------------------ cache
    async def _cached(self, kind: str, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value of ``(kind, key)`` if fresh, else ``load()`` (one flight per key); when ``load`` raises
        :class:`UpstreamUnavailableError`, the stale value if there is one."""
        slot = (kind, key)
        entry = self._cache.get(slot)
        if entry is not None and self.clock() - entry.stored_at < self.metadata_ttl:
            self._cache.move_to_end(slot)
            value: T = entry.value
            return value

        async def fetch() -> T:
            loaded = await load()
            self._cache[slot] = _Entry(self.clock(), loaded)
            self._cache.move_to_end(slot)
            while len(self._cache) > MAX_CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return loaded

        try:
            result: T = await self._metadata.run(slot, fetch)
            return result
        except UpstreamUnavailableError as exc:
            stale = self._cache.get(slot)
            if stale is None:
                raise
            self.stale_served += 1
            log.warning("serving the cached %s %s of upstream %s: %s", kind, key, self.source.name, exc.message)
            stale_value: T = stale.value
            return stale_value

    # ------------------------------------------------------------------ resources
    async def resources(self) -> UpstreamResources:
        """The upstream's service index, read for the resources the mirror uses.

        Raises:
            UpstreamUnavailableError: not reachable and not cached.
            UpstreamDocumentError: not a V3 service index, or no ``PackageBaseAddress/3.0.0``.
        """

        async def load() -> UpstreamResources:
            status, body = await self._get(self.source.url, "service index")
            if status != 200:
                raise self._bad_document("service index", f"{self.source.url} answered 404")
            try:
                index = parse_service_index(body)
            except V3DocumentError as exc:
                raise self._bad_document("service index", exc.message) from None
            base = index.find(PACKAGE_BASE_ADDRESS)
            if base is None:
                raise self._bad_document("service index", "it lists no PackageBaseAddress/3.0.0 resource")
            registrations = index.find(REGISTRATIONS_BASE_URL)
            return UpstreamResources(
                package_base_address=base.rstrip("/") + "/",
                registrations_base_url=registrations.rstrip("/") + "/" if registrations else None,
                search_query_service=index.find(SEARCH_QUERY_SERVICE),
                repository_signatures=index.find(REPOSITORY_SIGNATURES),
                autocomplete_service=index.find(SEARCH_AUTOCOMPLETE_SERVICE),
            )

        return await self._cached("index", "", load)

    async def versions(self, package_id: str) -> tuple[NuGetVersion, ...]:
        """Every version the upstream's flat container lists for ``package_id`` (listed or not), ascending; empty
        when the upstream does not know the id.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`.
        """
        lower = package_id.lower()

        async def load() -> tuple[NuGetVersion, ...]:
            base = (await self.resources()).package_base_address
            status, body = await self._get(f"{base}{lower}/index.json", f"version list of {package_id}")
            if status == 404:
                return ()
            try:
                return tuple(sorted(parse_version_list(body)))
            except V3DocumentError as exc:
                raise self._bad_document(f"version list of {package_id}", exc.message) from None

        return await self._cached("versions", lower, load)

    async def registration(self, package_id: str) -> tuple[RegistrationLeaf, ...]:
        """Every version's registration leaf (``listed``, ``published``: what cooldown needs), ascending, pages that
        are not inlined fetched (concurrently); empty when the id is unknown or the upstream has no
        ``RegistrationsBaseUrl``.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`.
        """
        lower = package_id.lower()
        index = await self._registration_index(package_id)
        fetched = await asyncio.gather(
            *(self._registration_page(lower, page.url) for page in index if page.leaves is None)
        )
        leaves = [leaf for page in index if page.leaves is not None for leaf in page.leaves]
        leaves += [leaf for page_leaves in fetched for leaf in page_leaves]
        return tuple(sorted(leaves, key=lambda leaf: leaf.version))

    async def registration_leaf(self, package_id: str, version: NuGetVersion) -> RegistrationLeaf | None:
        """The registration leaf of one version (only the page whose bounds hold it is fetched), ``None`` when the
        upstream does not list it.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`.
        """
        lower = package_id.lower()
        for page in await self._registration_index(package_id):
            if not page.may_hold(version):
                continue
            leaves = page.leaves if page.leaves is not None else await self._registration_page(lower, page.url)
            for leaf in leaves:
                if leaf.version == version:
                    return leaf
        return None

    async def _registration_index(self, package_id: str) -> tuple[RegistrationPage, ...]:
        lower = package_id.lower()

        async def load() -> tuple[RegistrationPage, ...]:
            base = (await self.resources()).registrations_base_url
            if base is None:
                return ()
            status, body = await self._get(f"{base}{lower}/index.json", f"registration of {package_id}")
            if status == 404:
                return ()
            try:
                return parse_registration_index(body).pages
            except V3DocumentError as exc:
                raise self._bad_document(f"registration of {package_id}", exc.message) from None

        return await self._cached("registration", lower, load)

    async def _registration_page(self, lower: str, url: str) -> tuple[RegistrationLeaf, ...]:
        async def load() -> tuple[RegistrationLeaf, ...]:
            status, body = await self._get(url, f"registration page of {lower}")
            if status == 404:
                raise self._bad_document(f"registration page of {lower}", f"{url} answered 404")
            try:
                return parse_registration_page(body)
            except V3DocumentError as exc:
                raise self._bad_document(f"registration page of {lower}", exc.message) from None

        return await self._cached("registration-page", url, load)

    async def repository_signatures(self) -> RepositorySignatures | None:
        """The upstream's ``RepositorySignatures`` document (its repository-signing certificates' fingerprints by
        hash OID), ``None`` when its service index lists none. As NuGet.Protocol
        (``RepositorySignatureResourceProvider``) the resource must be https unless the upstream allows insecure
        connections.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`; also a non-https resource.
        """

        async def load() -> RepositorySignatures | None:
            url = (await self.resources()).repository_signatures
            if url is None:
                return None
            if not url.lower().startswith("https://") and not self.source.allow_insecure_connections:
                raise self._bad_document("RepositorySignatures resource", f"{url} is not served over https")
            status, body = await self._get(url, "RepositorySignatures resource")
            if status != 200:
                raise self._bad_document("RepositorySignatures resource", f"{url} answered 404")
            try:
                return parse_repository_signatures(body)
            except V3DocumentError as exc:
                raise self._bad_document("RepositorySignatures resource", exc.message) from None

        return await self._cached("repository-signatures", "", load)

    async def search(
        self, query: str, *, skip: int = 0, take: int = 20, prerelease: bool = False, semver_level: str = "2.0.0"
    ) -> dict[str, Any]:
        """The upstream's search answer as it sent it (``totalHits``, ``data``), ``{"totalHits": 0, "data": []}``
        when it offers no search.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`.
        """
        params = urlencode(
            {"q": query, "skip": skip, "take": take, "prerelease": str(prerelease).lower(), "semVerLevel": semver_level}
        )
        return await self._query("search", params, "search answer", "a search result")

    async def autocomplete(
        self,
        query: str,
        *,
        skip: int = 0,
        take: int = 20,
        prerelease: bool = False,
        semver_level: str = "2.0.0",
        package_type: str = "",
    ) -> dict[str, Any]:
        """The upstream's id autocomplete answer as it sent it (``totalHits``, ``data``: package ids), ``{"totalHits":
        0, "data": []}`` when it offers no ``SearchAutocompleteService`` (NuGet docs
        ``api/search-autocomplete-service-resource.md``, "Search for package IDs").

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`.
        """
        fields: dict[str, str | int] = {
            "q": query,
            "skip": skip,
            "take": take,
            "prerelease": str(prerelease).lower(),
            "semVerLevel": semver_level,
        }
        if package_type:
            fields["packageType"] = package_type
        return await self._query("autocomplete", urlencode(fields), "autocomplete answer", "an autocomplete result")

    async def _query(self, kind: str, params: str, what: str, shape: str) -> dict[str, Any]:
        """GET ``params`` from the search (``kind`` "search") or autocomplete service, cached: the answer as sent,
        checked for the shape both share (an object with a ``data`` array and an integer ``totalHits`` when present);
        ``{"totalHits": 0, "data": []}`` when the upstream offers no such service.

        Raises:
            UpstreamUnavailableError, UpstreamDocumentError: as :meth:`resources`; UpstreamDocumentError also for an
                answer not of that shape (not JSON, nested too deep to parse, ``totalHits`` not an integer).
        """

        async def load() -> dict[str, Any]:
            resources = await self.resources()
            url = resources.search_query_service if kind == "search" else resources.autocomplete_service
            if url is None:
                return {"totalHits": 0, "data": []}
            status, body = await self._get(f"{url}?{params}", what)
            try:
                document = json.loads(body) if status == 200 else None
            except (ValueError, RecursionError):
                document = None
            total = document.get("totalHits", 0) if isinstance(document, dict) else None
            if (
                not isinstance(document, dict)
                or not isinstance(document.get("data"), list)
                or not isinstance(total, int)
                or isinstance(total, bool)
            ):
                raise self._bad_document(what, f"{url}?{params} is not {shape}")
            return document

        return await self._cached(kind, params, load)

    # ------------------------------------------------------------------ downloads
    async def fetch_package(self, package_id: str, version: NuGetVersion) -> FetchedPackage | None:
        """Download one ``.nupkg`` (single flight, see the module docstring); ``None`` when the upstream does not
        have it (404).

        Raises:
            UpstreamUnavailableError: the upstream is down or the download was cut (nothing kept).
            UpstreamPackageTooLargeError: over ``max_package_size`` (nothing kept).
            UpstreamDocumentError: its service index cannot be read.
        """
        lower, ver = package_id.lower(), version.normalized.lower()
        key = (lower, ver)
        download = self._downloads.get(key)
        if download is None:
            task = asyncio.ensure_future(self._download(package_id, lower, ver))
            download = _Download(task)
            self._downloads[key] = download
            task.add_done_callback(lambda done: self._download_done(key, done))
        download.waiters += 1
        try:
            result = await asyncio.shield(download.task)
        except asyncio.CancelledError:
            download.waiters -= 1
            if download.waiters == 0:
                if not download.task.done():
                    download.task.cancel()
                elif not download.task.cancelled() and download.task.exception() is None:
                    finished = download.task.result()
                    if finished is not None:
                        finished[0].unlink(missing_ok=True)
            raise
        except BaseException:
            download.waiters -= 1
            raise
        # no await from here on: every waiter links and counts down before the last one removes the file
        download.waiters -= 1
        if result is None:
            return None
        finished_path, size, sha512, url = result
        own = self.work_dir / f"{lower}.{ver}.{os.urandom(8).hex()}.nupkg"
        os.link(finished_path, own)
        if download.waiters == 0:
            finished_path.unlink(missing_ok=True)
        return FetchedPackage(self.source.name, package_id, version, url, own, size, sha512)

    def _download_done(self, key: tuple[str, str], task: asyncio.Task[Any]) -> None:
        download = self._downloads.get(key)
        if download is not None and download.task is task:
            del self._downloads[key]
        if not task.cancelled():
            exc = task.exception()
            result = task.result() if exc is None else None
            if result is not None and download is not None and download.waiters == 0:
                result[0].unlink(missing_ok=True)  # every caller left before it finished

    async def _download(self, package_id: str, lower: str, ver: str) -> tuple[Path, int, str, str] | None:
        base = (await self.resources()).package_base_address
        url = f"{base}{lower}/{ver}/{lower}.{ver}.nupkg"
        part = self.work_dir / f"{_PART_PREFIX}{lower}.{ver}.{os.urandom(8).hex()}"
        what = f"download of {package_id} {ver}"
        self.downloads += 1
        try:
            async with asyncio.timeout(self.download_timeout):
                return await self._stream_to(url, part, what)
        except TimeoutError:
            raise self._unavailable(what, f"{url} took longer than {self.download_timeout:g} s") from None
        except httpx.TimeoutException:
            raise self._unavailable(what, f"timed out reading {url}") from None
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__} for {url}" + (f": {exc}" if str(exc) else "")
            raise self._unavailable(what, detail) from None
        finally:
            part.unlink(missing_ok=True)

    async def _stream_to(self, url: str, part: Path, what: str) -> tuple[Path, int, str, str] | None:
        async with self._http.stream("GET", url) as response:
            if response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                raise self._unavailable(what, f"HTTP {response.status_code} for {url}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_package_size:
                raise self._too_large(what, url)
            digest = hashlib.sha512()
            size = 0
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > self.max_package_size:
                        raise self._too_large(what, url)
                    digest.update(chunk)
                    out.write(chunk)
        finished = part.with_name(_DONE_PREFIX + part.name[len(_PART_PREFIX) :])
        os.replace(part, finished)
        return finished, size, base64.b64encode(digest.digest()).decode("ascii"), url

    def _too_large(self, what: str, url: str) -> UpstreamPackageTooLargeError:
        return UpstreamPackageTooLargeError(
            f"upstream {self.source.name!r} ({self.source.url}): {what} refused: {url} is larger than "
            f"{self.max_package_size} bytes",
            upstream=self.source.name,
            url=self.source.url,
        )


# ---------------------------------------------------------------------------------------------- the set
LocalIdHook = Callable[[str], bool | Awaitable[bool]]


class Upstreams:
    """The feed's upstreams in configured order, with the rule of which may serve an id.

    ``local_id(package_id)`` (sync or async) says whether the feed holds the id itself (pushed to it); such ids are
    never taken from an upstream, whatever the patterns say.
    """

    def __init__(self, clients: Sequence[UpstreamClient], *, local_id: LocalIdHook | None = None) -> None:
        names = [c.name.lower() for c in clients]
        if len(set(names)) != len(names):
            raise ConfigError("two upstreams have the same name")
        self.clients = tuple(clients)
        self.local_id = local_id
        self._mapping = {c.name: c.source.patterns for c in self.clients}

    async def __aenter__(self) -> Upstreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def mapped(self, package_id: str) -> tuple[UpstreamClient, ...]:
        """The upstreams whose patterns match ``package_id`` best (NuGet's packageSourceMapping rule), in
        configured order; empty when no pattern matches."""
        names = {n.lower() for n in mapped_source_names(self._mapping, package_id)}
        return tuple(c for c in self.clients if c.name.lower() in names)

    async def route(self, package_id: str) -> tuple[UpstreamClient, ...]:
        """:meth:`mapped`, or nothing when ``local_id`` says the feed holds ``package_id`` itself."""
        if self.local_id is not None:
            held = self.local_id(package_id)
            if inspect.isawaitable(held):
                held = await held
            if held:
                return ()
        return self.mapped(package_id)

    async def versions(self, package_id: str) -> dict[NuGetVersion, UpstreamClient]:
        """Every version the routed upstreams list, each with the first upstream (configured order) that lists it.

        Raises:
            UpstreamError: from the first upstream that fails (with nothing cached).
        """
        found: dict[NuGetVersion, UpstreamClient] = {}
        for client in await self.route(package_id):
            for version in await client.versions(package_id):
                found.setdefault(version, client)
        return dict(sorted(found.items()))

    async def fetch_package(self, package_id: str, version: NuGetVersion) -> FetchedPackage | None:
        """The ``.nupkg`` from the first routed upstream that lists the version (``None``: none does).

        Raises:
            UpstreamError: as :meth:`UpstreamClient.fetch_package`.
        """
        for client in await self.route(package_id):
            if version in await client.versions(package_id):
                return await client.fetch_package(package_id, version)
        return None
