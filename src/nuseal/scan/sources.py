"""Where packages to scan come from: files, folders, globs, a global-packages folder, a packages.lock.json, a
V3 feed. This is the I/O edge of :mod:`nuseal.scan` (the analysers never do I/O); the CLI and the restore gate
call it.

:func:`expand_targets` turns command-line targets into :class:`PackageSource` descriptors (cheap, picklable:
``--jobs`` workers load them) and :class:`Missing` entries (a locked package not found: NS9006):

* a ``.nupkg`` file, or a glob;
* a folder: every extracted package in it (a folder with a root ``.nuspec`` next to NuGet's
  ``.nupkg.metadata`` or ``*.nupkg.sha512`` marker, as in the global-packages folder ``<id>/<version>/``) is scanned
  as extracted files, what builds use; every other ``*.nupkg`` below it is scanned as a file. A folder that is
  itself an extracted package (a root ``.nuspec``) is one package;
* a ``packages.lock.json``: each locked package (``Direct``/``Transitive``/``CentralTransitive``, once per
  id and version) is looked up in the global-packages folder (``--packages-folder``, else ``NUGET_PACKAGES``,
  else ``~/.nuget/packages``) at ``<id lower>/<version lower>/`` (NuGet's ``VersionFolderPathResolver``);
  not found is a :class:`Missing`;
* an ``http(s)://`` URL of a V3 service index (``.../index.json``): package ids are listed through the
  ``SearchQueryService`` (``q=``, ``prerelease=true``, ``semVerLevel=2.0.0``, pages of 1000; nuget.org and nuseal
  allow ``skip`` up to 3000, so at most 4000 ids), each id's versions through ``PackageBaseAddress``
  ``{base}/{id}/index.json`` (every version, unlisted ones included; ``latest=True``: only the highest), and the
  ``.nupkg`` from ``{base}/{id}/{version}/{id}.{version}.nupkg``. Search was chosen over the catalog because every
  V3 feed (nuget.org, nuseal, Azure Artifacts, BaGet) has it, while the catalog is optional.

Raises :class:`~nuseal.errors.UsageError` for a target that matches nothing or cannot be read, and
:class:`~nuseal.errors.NetworkError` when a feed cannot be reached or answers nonsense.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nuseal._internal.bounded import read_bounded
from nuseal.errors import NetworkError, UsageError
from nuseal.package.version import NuGetVersion
from nuseal.scan.package import ScanPackage

__all__ = [
    "MAX_DOWNLOAD",
    "FeedClient",
    "Missing",
    "PackageSource",
    "default_packages_folder",
    "expand_targets",
    "load_source",
]

#: Largest .nupkg downloaded from a feed (bytes).
MAX_DOWNLOAD = 1 << 30
#: Most packages one invocation expands to.
MAX_SOURCES = 1_000_000
_MARKERS = (".nupkg.metadata",)
_SEARCH_TAKE = 1000
_SEARCH_MAX_SKIP = 3000


@dataclass(frozen=True, slots=True)
class PackageSource:
    """One package to load: ``kind`` is ``file`` (a .nupkg path), ``folder`` (an extracted package) or ``url``
    (a .nupkg on a feed); ``label`` is what reports show as the package's source."""

    kind: str
    location: str
    label: str


@dataclass(frozen=True, slots=True)
class Missing:
    """A package a lock file names that is not in the global-packages folder."""

    id: str
    version: str
    lock_file: str
    expected: str


def default_packages_folder() -> Path:
    """NuGet's global-packages folder: ``NUGET_PACKAGES``, else ``~/.nuget/packages``."""
    env = os.environ.get("NUGET_PACKAGES")
    return Path(env) if env else Path.home() / ".nuget" / "packages"


def _is_extracted(folder: Path) -> bool:
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n.lower().endswith(".nuspec") for n in names)


def _is_restored(folder: Path, names: list[str]) -> bool:
    return any(n.lower().endswith(".nuspec") for n in names) and any(
        n in _MARKERS or n.lower().endswith(".nupkg.sha512") for n in names
    )


def _walk_folder(root: Path) -> Iterator[PackageSource]:
    if _is_extracted(root) and not any(root.glob("*.nupkg")):
        yield PackageSource("folder", str(root), str(root))
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        if _is_restored(here, filenames):
            dirnames.clear()  # an extracted package: its own files are its content
            yield PackageSource("folder", str(here), str(here))
            continue
        for name in sorted(filenames):
            if name.lower().endswith(".nupkg"):
                path = here / name
                yield PackageSource("file", str(path), str(path))


def _lock_file(path: Path, packages_folder: Path) -> Iterator[PackageSource | Missing]:
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"{path} is not a packages.lock.json (not JSON: {exc})") from exc
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    if not isinstance(deps, dict):
        raise UsageError(f"{path} is not a packages.lock.json (no 'dependencies' object)")
    seen: set[tuple[str, str]] = set()
    for framework in deps.values():
        if not isinstance(framework, dict):
            continue
        for package_id, entry in framework.items():
            if not isinstance(entry, dict) or entry.get("type") == "Project":
                continue
            resolved = entry.get("resolved")
            if not isinstance(resolved, str) or not isinstance(package_id, str):
                continue
            try:
                version = NuGetVersion.parse(resolved).normalized
            except ValueError:
                version = resolved
            key = (package_id.lower(), version.lower())
            if key in seen:
                continue
            seen.add(key)
            folder = packages_folder / key[0] / key[1]
            if folder.is_dir():
                yield PackageSource("folder", str(folder), str(folder))
            else:
                yield Missing(package_id, version, str(path), str(folder))


def expand_targets(
    targets: Sequence[str],
    *,
    packages_folder: Path | None = None,
    latest: bool = False,
    client: FeedClient | None = None,
) -> list[PackageSource | Missing]:
    """Expand command-line targets (see the module docstring), in argument order, without duplicates.

    Raises:
        UsageError: a target that matches nothing or cannot be read; more than :data:`MAX_SOURCES` packages.
        NetworkError: a feed cannot be read.
    """
    out: list[PackageSource | Missing] = []
    seen: set[str] = set()

    def add(items: Iterator[PackageSource | Missing] | list[PackageSource | Missing], target: str) -> None:
        count = 0
        for item in items:
            count += 1
            key = item.location if isinstance(item, PackageSource) else f"missing:{item.expected}"
            if item.__class__ is PackageSource and item.kind != "url":
                key = str(Path(key).resolve())
            if key in seen:
                continue
            seen.add(key)
            out.append(item)
            if len(out) > MAX_SOURCES:
                raise UsageError(f"more than {MAX_SOURCES} packages to scan")
        if count == 0:
            raise UsageError(f"no package found in {target}")

    for target in targets:
        if target.startswith(("http://", "https://")):
            owned = client is None
            feed = client or FeedClient()
            try:
                add(list(feed.list_packages(target, latest=latest)), target)
            finally:
                if owned:
                    feed.close()
            continue
        path = Path(target)
        if path.is_dir():
            add(_walk_folder(path), target)
        elif path.is_file() and path.name.lower().endswith(".lock.json"):
            add(_lock_file(path, packages_folder or default_packages_folder()), target)
        elif path.is_file():
            add(iter([PackageSource("file", str(path), str(path))]), target)
        elif glob.has_magic(target):
            matches = sorted(Path(p) for p in glob.glob(target, recursive=True))
            items: list[PackageSource | Missing] = []
            for m in matches:
                if m.is_dir():
                    items.extend(_walk_folder(m))
                elif m.name.lower().endswith(".nupkg"):
                    items.append(PackageSource("file", str(m), str(m)))
            add(items, target)
        else:
            raise UsageError(f"not found: {target}")
    return out


class FeedClient:
    """A small NuGet V3 client for listing and downloading packages (httpx, timeouts, size bound)."""

    def __init__(self, *, timeout: float = 60.0, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=True)
        self._index: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self._client.close()

    def _get_json(self, url: str) -> Any:
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot reach {url}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise NetworkError(f"{url} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise NetworkError(f"{url} did not answer JSON") from exc

    def resources(self, index_url: str) -> dict[str, str]:
        """``{type: url}`` of the service index (first of each type)."""
        found = self._index.get(index_url)
        if found is None:
            doc = self._get_json(index_url)
            if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
                raise NetworkError(f"{index_url} is not a NuGet V3 service index")
            found = {}
            for res in doc["resources"]:
                if isinstance(res, dict) and isinstance(res.get("@type"), str) and isinstance(res.get("@id"), str):
                    found.setdefault(res["@type"], res["@id"])
            self._index[index_url] = found
        return found

    def _base(self, index_url: str) -> str:
        res = self.resources(index_url)
        base = res.get("PackageBaseAddress/3.0.0")
        if base is None:
            raise NetworkError(f"{index_url} has no PackageBaseAddress/3.0.0 resource")
        return base.rstrip("/") + "/"

    def list_ids(self, index_url: str) -> list[str]:
        res = self.resources(index_url)
        search = next((res[t] for t in ("SearchQueryService/3.5.0", "SearchQueryService/3.0.0-rc",
                                        "SearchQueryService") if t in res), None)
        if search is None:
            raise NetworkError(f"{index_url} has no SearchQueryService to list package ids")
        ids: list[str] = []
        skip = 0
        while skip <= _SEARCH_MAX_SKIP:
            params = {"q": "", "skip": str(skip), "take": str(_SEARCH_TAKE), "prerelease": "true",
                      "semVerLevel": "2.0.0"}
            url = str(httpx.URL(search, params=params))
            doc = self._get_json(url)
            data = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(data, list):
                raise NetworkError(f"{url} is not a search response")
            ids.extend(str(d["id"]) for d in data if isinstance(d, dict) and isinstance(d.get("id"), str))
            if len(data) < _SEARCH_TAKE:
                break
            skip += _SEARCH_TAKE
        return ids

    def versions(self, index_url: str, package_id: str) -> list[str]:
        """Every version the flat container lists for ``package_id`` (lower-case normalized strings)."""
        doc = self._get_json(f"{self._base(index_url)}{package_id.lower()}/index.json")
        if not isinstance(doc, dict) or not isinstance(doc.get("versions"), list):
            return []
        return [str(v) for v in doc["versions"]]

    def list_packages(self, index_url: str, *, latest: bool = False) -> Iterator[PackageSource]:
        """A source per package version of the feed (``latest``: the highest version of each id)."""
        base = self._base(index_url)
        for package_id in self.list_ids(index_url):
            versions = self.versions(index_url, package_id)
            if latest and versions:
                try:
                    versions = [max(versions, key=NuGetVersion.parse)]
                except ValueError:
                    versions = versions[-1:]
            low = package_id.lower()
            for v in versions:
                url = f"{base}{low}/{v.lower()}/{low}.{v.lower()}.nupkg"
                yield PackageSource("url", url, url)

    def download(self, url: str) -> bytes:
        """The bytes at ``url``, at most :data:`MAX_DOWNLOAD`.

        Raises:
            NetworkError: unreachable, not HTTP 200, or too large.
        """
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise NetworkError(f"{url} answered HTTP {response.status_code}")
                return read_bounded(
                    response.iter_bytes(),
                    MAX_DOWNLOAD,
                    too_large=lambda: NetworkError(f"{url} is larger than {MAX_DOWNLOAD} bytes"),
                )
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot download {url}: {exc}") from exc


def load_source(source: PackageSource, *, client: FeedClient | None = None) -> ScanPackage:
    """The :class:`ScanPackage` of ``source`` (reads the file, walks the folder, or downloads).

    Raises:
        UsageError: a file cannot be read (it vanished, permissions).
        NetworkError: a download failed.
    """
    if source.kind == "folder":
        return ScanPackage.from_folder(Path(source.location), source=source.label)
    if source.kind == "url":
        owned = client is None
        feed = client or FeedClient()
        try:
            data = feed.download(source.location)
        finally:
            if owned:
                feed.close()
        return ScanPackage.from_bytes(data, source=source.label)
    try:
        data = Path(source.location).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source.location}: {exc.strerror or exc}") from exc
    return ScanPackage.from_bytes(data, source=source.label)
