"""The NuGet V3 client restore uses: the service index, ``PackageBaseAddress/3.0.0`` (flat container: version list,
``.nuspec``, ``.nupkg``), and local folder sources; bounded parallelism, retries, hard timeouts and an HTTP cache.

Protocol: NuGet docs ``api/service-index.md`` and ``api/package-base-address-resource.md`` (lower-case id and
normalized lower-case version in every URL; a 404 on the version list means no such id); NuGet.Protocol
``HttpSource``/``HttpRetryHandler`` (retries on 5xx, 408, 429 and connection failures, growing delay) and
``LocalV2FindPackageByIdResource``/``LocalV3FindPackageByIdResource`` (a folder of ``<id>.<version>.nupkg`` or the
``<id>/<version>/<id>.<version>.nupkg`` layout).

The HTTP cache (``HttpCacheUtility``'s idea, own layout): ``<cache>/<sha256(source url)[:16]>/`` holds the service
index (``index.json``) and version lists (``list_<id>.json``) for :attr:`HttpSettings.list_ttl` seconds (NuGet's
30 minutes) and ``.nuspec`` files for good (a version's manifest never changes). ``.nupkg`` files are not cached:
the global-packages folder is their cache, and the lock file's content hash checks every fresh copy. Default folder:
``$NUGET_HTTP_CACHE_PATH``, else ``$XDG_CACHE_HOME/nuseal/http-cache`` (``~/.cache/nuseal/http-cache``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx

from nuseal.client.gate import RepositorySignatureInfo
from nuseal.client.settings import PackageSource
from nuseal.client.v3documents import (
    PACKAGE_BASE_ADDRESS,
    REPOSITORY_SIGNATURES,
    V3DocumentError,
    parse_repository_signatures,
    parse_service_index,
    parse_version_list,
)
from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError, RestoreError
from nuseal.package.nuspec import find_nuspec_name
from nuseal.package.version import NuGetVersion

__all__ = [
    "FeedClient",
    "HttpSettings",
    "SourceClient",
    "default_cache_dir",
]

#: Largest JSON document (service index, version list) read from a source.
MAX_JSON_BYTES = 32 << 20
#: Largest .nupkg downloaded (nuget.org's limit is 250 MB).
MAX_NUPKG_BYTES = 512 << 20
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def default_cache_dir() -> Path:
    """``$NUGET_HTTP_CACHE_PATH``, else ``$XDG_CACHE_HOME/nuseal/http-cache``."""
    if os.environ.get("NUGET_HTTP_CACHE_PATH"):
        return Path(os.environ["NUGET_HTTP_CACHE_PATH"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nuseal" / "http-cache"


@dataclass(frozen=True)
class HttpSettings:
    """``timeout``: seconds for one request attempt, whole (connect to last byte); ``retries``: attempts after the
    first; ``backoff``: first retry delay in seconds (doubled each time, with jitter); ``parallel``: requests in
    flight at once over all sources; ``cache_dir``: ``None`` disables the cache; ``list_ttl``: seconds a cached
    version list or service index stays fresh."""

    timeout: float = 100.0
    retries: int = 2
    backoff: float = 0.2
    parallel: int = 16
    cache_dir: Path | None = None
    list_ttl: float = 1800.0


class SourceClient:
    """One package source: HTTP V3 or a local folder. Methods raise :class:`RestoreError` (NU1301) when the source
    cannot be read; a missing id gives an empty version list, a missing version ``None``."""

    def __init__(self, source: PackageSource, feed: FeedClient) -> None:
        self.source = source
        self.feed = feed
        self._base: str | None = None
        self._signatures_url: str | None = None
        self._base_lock = asyncio.Lock()
        self._cache = (
            feed.settings.cache_dir / hashlib.sha256(source.url.encode()).hexdigest()[:16]
            if feed.settings.cache_dir is not None and not source.is_local
            else None
        )

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def url(self) -> str:
        return self.source.url

    # ------------------------------------------------------------------ cache
    def _cached(self, name: str, ttl: float | None) -> bytes | None:
        if self._cache is None:
            return None
        path = self._cache / name
        try:
            if ttl is not None and time.time() - path.stat().st_mtime > ttl:
                return None
            return path.read_bytes()
        except OSError:
            return None

    def _store(self, name: str, data: bytes) -> None:
        if self._cache is None:
            return
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            tmp = self._cache / f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
            tmp.write_bytes(data)
            os.replace(tmp, self._cache / name)
        except OSError:
            pass  # a cache that cannot be written is only slower

    # ------------------------------------------------------------------ HTTP V3
    async def _package_base(self) -> str:
        async with self._base_lock:
            if self._base is not None:
                return self._base
            data = self._cached("index.json", self.feed.settings.list_ttl)
            fresh = data is None
            if data is None:
                status, body = await self.feed.get(self.source, self.source.url)
                if status != 200:
                    raise RestoreError(
                        f"Unable to load the service index for source {self.source.url} (HTTP {status})",
                        code=NuCode.NU1301,
                        source=self.source.url,
                    )
                data = body
            try:
                index = parse_service_index(data)
            except V3DocumentError:
                raise RestoreError(
                    f"Unable to load the service index for source {self.source.url}: it is not a NuGet V3 service "
                    "index (a V2 feed is not supported; use its /v3/index.json)",
                    code=NuCode.NU1301,
                    source=self.source.url,
                ) from None
            found = index.find(PACKAGE_BASE_ADDRESS)
            self._signatures_url = index.find(REPOSITORY_SIGNATURES)
            if not found:
                raise RestoreError(
                    f"the service index of {self.source.url} lists no PackageBaseAddress/3.0.0 resource",
                    code=NuCode.NU1301,
                    source=self.source.url,
                )
            if fresh:
                self._store("index.json", data)
            self._base = found.rstrip("/") + "/"
            return self._base

    async def repository_signatures(self) -> RepositorySignatureInfo | None:
        """The source's ``RepositorySignatures`` resource as the gate takes it (``None`` for a local folder or a
        source that does not list one). NuGet.Protocol ``RepositorySignatureResourceProvider``: the resource and its
        certificates' ``contentUrl`` must be https, else the source cannot be used at all.

        Raises:
            RestoreError: NU1301 - served over http, unreadable, or not the documented shape.
        """
        if self.source.is_local:
            return None
        await self._package_base()
        url = self._signatures_url
        if url is None:
            return None
        if not url.lower().startswith("https://"):
            raise RestoreError(
                f"Repository Signatures resource must be served over HTTPS. Source: {self.source.url}",
                code=NuCode.NU1301,
                source=self.source.url,
            )
        status, body = await self.feed.get(self.source, url)
        if status != 200:
            raise RestoreError(
                f"Unable to get repository signature information for source {url} (HTTP {status})",
                code=NuCode.NU1301,
                source=self.source.url,
            )
        try:
            document = parse_repository_signatures(body)
        except V3DocumentError:
            raise RestoreError(
                f"Unable to get repository signature information for source {url}: not a RepositorySignatures document",
                code=NuCode.NU1301,
                source=self.source.url,
            ) from None
        return RepositorySignatureInfo.from_document(document)

    async def versions(self, package_id: str) -> list[NuGetVersion]:
        """Every version the source has for ``package_id`` (unlisted ones too, as restore sees them)."""
        lower = package_id.lower()
        if self.source.is_local:
            return await asyncio.to_thread(self._local_versions, package_id)
        cache_name = f"list_{lower}.json"
        data = self._cached(cache_name, self.feed.settings.list_ttl)
        if data is None:
            base = await self._package_base()
            status, body = await self.feed.get(self.source, f"{base}{lower}/index.json")
            if status == 404:
                body = b'{"versions": []}'
            elif status != 200:
                raise RestoreError(
                    f"Failed to retrieve information about '{package_id}' from remote source '{self.source.url}' "
                    f"(HTTP {status})",
                    code=NuCode.NU1301,
                    source=self.source.url,
                )
            data = body
            self._store(cache_name, data)
        try:
            return parse_version_list(data)
        except V3DocumentError:
            raise RestoreError(
                f"the version list of '{package_id}' from '{self.source.url}' is not valid JSON",
                code=NuCode.NU1301,
                source=self.source.url,
            ) from None

    async def nuspec(self, package_id: str, version: NuGetVersion) -> bytes | None:
        """The ``.nuspec`` of one version (for its dependencies), or ``None`` when the source does not have it."""
        lower, ver = package_id.lower(), version.normalized.lower()
        if self.source.is_local:
            path = await asyncio.to_thread(self._local_path, package_id, version)
            if path is None:
                return None
            return _nuspec_from(await asyncio.to_thread(path.read_bytes), self.source.url)
        cache_name = f"nuspec_{lower}.{ver}.nuspec"
        cached = self._cached(cache_name, None)
        if cached is not None:
            return cached
        base = await self._package_base()
        status, body = await self.feed.get(self.source, f"{base}{lower}/{ver}/{lower}.nuspec")
        if status == 404:
            return None
        if status != 200:
            raise RestoreError(
                f"Failed to download the nuspec of {package_id} {version} from '{self.source.url}' (HTTP {status})",
                code=NuCode.NU1301,
                package=f"{package_id} {version}",
                source=self.source.url,
            )
        self._store(cache_name, body)
        return body

    async def nupkg(self, package_id: str, version: NuGetVersion) -> bytes | None:
        """The ``.nupkg`` bytes, or ``None`` when the source does not have that version."""
        lower, ver = package_id.lower(), version.normalized.lower()
        if self.source.is_local:
            path = await asyncio.to_thread(self._local_path, package_id, version)
            if path is None:
                return None
            data = await asyncio.to_thread(path.read_bytes)
            if self.feed.on_bytes is not None:
                self.feed.on_bytes(len(data))
            return data
        base = await self._package_base()
        status, body = await self.feed.get(
            self.source, f"{base}{lower}/{ver}/{lower}.{ver}.nupkg", limit=MAX_NUPKG_BYTES, count=True
        )
        if status == 404:
            return None
        if status != 200:
            raise RestoreError(
                f"Failed to download package {package_id} {version} from '{self.source.url}' (HTTP {status})",
                code=NuCode.NU1301,
                package=f"{package_id} {version}",
                source=self.source.url,
            )
        return body

    # ------------------------------------------------------------------ local folders
    def _folder(self) -> Path:
        folder = Path(self.source.url)
        if not folder.is_dir():
            raise RestoreError(
                f"The local source '{folder}' doesn't exist.", code=NuCode.NU1301, source=self.source.url
            )
        return folder

    def _local_candidates(self, package_id: str) -> dict[NuGetVersion, Path]:
        folder = self._folder()
        lower = package_id.lower()
        found: dict[NuGetVersion, Path] = {}
        id_dir = next((p for p in folder.iterdir() if p.is_dir() and p.name.lower() == lower), None)
        if id_dir is not None:  # V3 layout: <id>/<version>/<id>.<version>.nupkg
            for vdir in id_dir.iterdir():
                try:
                    version = NuGetVersion.parse(vdir.name)
                except PackageFormatError:
                    continue
                nupkg = next((p for p in vdir.glob("*.nupkg")), None) if vdir.is_dir() else None
                if nupkg is not None:
                    found.setdefault(version, nupkg)
        for file in folder.iterdir():  # flat layout: <id>.<version>.nupkg
            name = file.name
            if not file.is_file() or not name.lower().endswith(".nupkg") or not name.lower().startswith(lower + "."):
                continue
            try:
                version = NuGetVersion.parse(name[len(lower) + 1 : -len(".nupkg")])
            except PackageFormatError:
                continue
            found.setdefault(version, file)
        return found

    def _local_versions(self, package_id: str) -> list[NuGetVersion]:
        return list(self._local_candidates(package_id))

    def _local_path(self, package_id: str, version: NuGetVersion) -> Path | None:
        return self._local_candidates(package_id).get(version)


def _nuspec_from(data: bytes, where: str) -> bytes:
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            name = find_nuspec_name(tuple(archive.namelist()))
            return archive.read(name)
    except (zipfile.BadZipFile, OSError, KeyError, PackageFormatError) as exc:
        raise RestoreError(f"a package in {where} is not a readable .nupkg: {exc}", source=where) from None


class FeedClient:
    """Every configured source behind one bounded, retrying HTTP client. Use as ``async with FeedClient(...)``.

    ``on_bytes`` is called with the size of each downloaded ``.nupkg`` (progress bars).
    """

    def __init__(
        self,
        sources: tuple[PackageSource, ...],
        settings: HttpSettings | None = None,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.on_bytes = on_bytes
        self._semaphore = asyncio.Semaphore(max(1, self.settings.parallel))
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout),
            follow_redirects=True,
            headers={"User-Agent": "nuseal (NuGet V3 client)"},
            limits=httpx.Limits(max_connections=max(1, self.settings.parallel)),
        )
        self.clients = {s.name.lower(): SourceClient(s, self) for s in sources}
        self.requests = 0
        self.retried = 0

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def client(self, source: PackageSource) -> SourceClient:
        return self.clients[source.name.lower()]

    async def get(
        self, source: PackageSource, url: str, *, limit: int = MAX_JSON_BYTES, count: bool = False
    ) -> tuple[int, bytes]:
        """GET ``url`` with the source's credentials: ``(status, body)``; retries 5xx/408/429 and connection
        failures with a growing delay; each attempt is cut at :attr:`HttpSettings.timeout` seconds.

        Raises:
            RestoreError: NU1301 once the attempts are used up (timeout, connection failure, a body over ``limit``).
        """
        auth = None
        if source.credential is not None and (source.credential.username or source.credential.password):
            auth = httpx.BasicAuth(source.credential.username, source.credential.password)
        attempts = self.settings.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                self.retried += 1
                delay = self.settings.backoff * (2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            try:
                async with self._semaphore:
                    self.requests += 1
                    status, body = await asyncio.wait_for(self._fetch(url, auth, limit), self.settings.timeout)
            except TimeoutError:
                last = f"timed out after {self.settings.timeout:g} s"
                continue
            except httpx.TimeoutException:
                last = f"timed out after {self.settings.timeout:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if status in _RETRY_STATUS and attempt + 1 < attempts:
                last = f"HTTP {status}"
                continue
            if status in (401, 403):
                raise RestoreError(
                    f"the source {source.url} refused {url}: HTTP {status} (check packageSourceCredentials for "
                    f"source {source.name!r})",
                    code=NuCode.NU1301,
                    source=source.url,
                )
            if count and status == 200 and self.on_bytes is not None:
                self.on_bytes(len(body))
            return status, body
        raise RestoreError(
            f"Failed to retrieve {url} from source '{source.url}' after {attempts} attempts: {last}",
            code=NuCode.NU1301,
            source=source.url,
        )

    async def _fetch(self, url: str, auth: httpx.Auth | None, limit: int) -> tuple[int, bytes]:
        async with self._http.stream("GET", url, auth=auth) as response:
            if response.status_code != 200:
                await response.aread()
                return response.status_code, b""
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise RestoreError(
                        f"{url} is larger than {limit} bytes; refusing it", code=NuCode.NU1301, source=url
                    )
                chunks.append(chunk)
            return 200, b"".join(chunks)
