"""NuGet's global-packages folder: install a package exactly as NuGet's ``PackageExtractor`` does, after the gate.

The layout and the write order are NuGet's (NuGet.Packaging 6.14.3 ``PackageExtractor.InstallFromSourceAsync`` with
``PackageSaveMode.Defaultv3`` and ``XmlDocFileSaveMode.None``, ``VersionFolderPathResolver`` lower-case; observed
with ``../shared/tools/nuget-oracle``'s ``extract --trace-fs``, see its README), so ``dotnet restore`` finds every
package nuseal installed and downloads nothing:

``<root>/<id-lower>/<version-normalized-lower>/`` holding

* ``<id-lower>.<version-lower>.nupkg`` - the package as downloaded;
* ``<id-lower>.<version-lower>.nupkg.sha512`` - base64 SHA-512 of that file, no newline;
* ``<id-lower>.nuspec`` - the manifest (extracted under its entry name, then renamed);
* the package's files in central-directory order, except NuGet's OPC files (a file named ``[Content_Types].xml``
  or ``.rels`` in any folder, ``*.psmdcp``; case-sensitive) and root-level ``*.nuspec``/``*.nupkg``;
  ``.signature.p7s`` *is* extracted, so are other files under ``_rels/`` and ``package/``; ``%XX`` in entry
  names is unescaped (``a%20b`` -> ``a b``, ``a%2Fb`` -> ``a/b``); a ``dir/`` entry becomes an empty directory;
  files are created ``0766 & ~umask`` with the entry's DOS date/time taken as UTC as mtime (a future date leaves
  the current time);
* ``.nupkg.metadata`` - ``{"version": 2, "contentHash": <NuGet content hash, signature excluded>, "source": ..}``
  in NuGet's exact bytes (2-space indent, no final newline), written last: the "installed" marker.

The .nupkg, .sha512 and .nupkg.metadata are written under random temporary names and renamed at the end, in that
order. Concurrency and crashes follow NuGet: a per-package file lock (``flock`` on the same file NuGet's
``ConcurrencyUtilities`` locks, ``$NUGET_SCRATCH/lock/<hex>``, so nuseal and ``dotnet restore`` running at once
extract a package once); a folder with ``.nupkg.metadata`` is never touched again; a version folder without it
(a crash, a kill -9) is emptied before the next extraction.

nuseal adds the gate (:mod:`nuseal.client.gate`) before anything is written: a refused package raises
:class:`~nuseal.errors.RestoreError` and leaves nothing on disk. Entries are read through nuseal's hardened
:class:`~nuseal.package.archive.PackageArchive` (CRC-checked, bounded); an archive with structure problems, or an
entry whose unescaped name would land outside the version folder or on NuGet's own files, is refused.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import getpass
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from nuseal.client.gate import GateResult, GateSettings, check
from nuseal.errors import NusealError, PackageFormatError, RestoreError
from nuseal.package.archive import PackageArchive
from nuseal.package.nuspec import find_nuspec_name
from nuseal.package.version import NuGetVersion

__all__ = [
    "METADATA_FILE",
    "GlobalPackagesFolder",
    "InstallOutcome",
    "default_global_packages_folder",
    "metadata_bytes",
    "nuget_lock_path",
    "plan_extraction",
]

#: NuGet's completion marker in a version folder (``PackagingCoreConstants.NupkgMetadataFileExtension``).
METADATA_FILE = ".nupkg.metadata"
#: ``creat()`` mode of extracted files (NuGet via .NET's ``FileStream``: 0766, then the umask).
_FILE_MODE = 0o766
#: Mode of NuGet's own three files (.NET ``File.Create`` default 0666, then the umask).
_NUGET_FILE_MODE = 0o666


def default_global_packages_folder(env: dict[str, str] | None = None) -> Path:
    """``NUGET_PACKAGES``, else ``~/.nuget/packages`` (NC ``SettingsUtility.GetGlobalPackagesFolder`` without a
    ``globalPackagesFolder`` setting; the restore reads nuget.config for that)."""
    values = os.environ if env is None else env
    configured = values.get("NUGET_PACKAGES")
    if configured:
        return Path(configured).expanduser()
    return Path("~/.nuget/packages").expanduser()


def metadata_bytes(content_hash: str, source: str) -> bytes:
    """The exact bytes NuGet writes to ``.nupkg.metadata`` (NC ``NupkgMetadataFileFormat.Write``: Newtonsoft
    indented JSON, 2 spaces, no final newline)."""
    doc = {"version": 2, "contentHash": content_hash, "source": source}
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")


def _scratch_folder() -> Path:
    """NuGet's scratch folder (NC ``NuGetEnvironment.GetFolderPath(NuGetFolderPath.Temp)``): ``NUGET_SCRATCH``, else
    ``<temp>/NuGetScratch<user name>`` on Linux (``/tmp`` is shared; NuGet makes it 0700) and ``<temp>/NuGetScratch``
    elsewhere, ``<temp>`` being ``TMPDIR`` or ``/tmp`` like .NET's ``Path.GetTempPath``."""
    configured = os.environ.get("NUGET_SCRATCH")
    if configured:
        return Path(configured)
    temp = Path(tempfile.gettempdir())
    if not sys.platform.startswith("linux"):
        return temp / "NuGetScratch"
    try:
        import pwd  # noqa: PLC0415 - Unix only

        user = pwd.getpwuid(os.geteuid()).pw_name  # .NET's Environment.UserName
    except (ImportError, KeyError):
        user = getpass.getuser()
    return temp / f"NuGetScratch{user}"


def nuget_lock_path(target_nupkg: Path) -> Path:
    """The lock file NuGet takes before extracting the package whose .nupkg will be ``target_nupkg``
    (NC ``ConcurrencyUtilities.ExecuteWithFileLockedAsync``: ``<NuGetScratch>/lock/`` + hex of the first 20
    bytes of SHA-256 over the upper-cased full path in UTF-32LE; checked against the oracle's lock files).
    ``NUGET_SCRATCH`` moves the scratch folder, as it does for NuGet."""
    full = str(target_nupkg.absolute())
    name = hashlib.sha256(full.upper().encode("utf-32-le")).digest()[:20].hex()
    return _scratch_folder() / "lock" / name


def _lock_fd(fd: int) -> None:
    """Block until ``fd`` is locked exclusively: ``flock`` on Unix (what .NET's ``FileShare.None`` takes there), a
    one-byte ``msvcrt.locking`` on Windows (not the same lock NuGet takes there: nuseal and NuGet are serialised
    by NuGet's completion marker only)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    import msvcrt  # noqa: PLC0415 - Windows only  # pragma: no cover

    while True:  # pragma: no cover - Windows
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            return
        except OSError:
            time.sleep(0.05)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (what .NET's ``FileShare.None`` takes on Unix), re-opened if another
    process replaced or removed the file while we waited."""
    try:
        if not path.parent.exists():
            scratch = path.parent.parent
            if not scratch.exists() and sys.platform.startswith("linux"):
                scratch.mkdir(parents=True, exist_ok=True)
                scratch.chmod(0o700)  # as NuGet does for its scratch folder on Linux
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RestoreError(f"cannot create NuGet's lock folder {path.parent}: {exc.strerror or exc}") from exc
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RestoreError(f"cannot open the package lock {path}: {exc.strerror or exc}") from exc
        try:
            _lock_fd(fd)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # closing releases the flock


@dataclass(frozen=True)
class _Planned:
    """One entry to extract: its record index, the relative path it becomes, and whether it is a directory."""

    index: int
    relpath: str
    directory: bool
    is_nuspec: bool = False


def _is_package_file(name: str) -> bool:
    """Whether NuGet extracts a file entry (NC ``PackageHelper.IsPackageFile`` with ``PackageSaveMode.Files``), as
    the oracle shows it on Linux: not a file named exactly ``[Content_Types].xml`` or ``.rels`` in any folder
    (case-sensitive: ``_RELS/.RELS`` and ``x.rels`` are extracted), not a name ending ``.psmdcp`` (case-sensitive),
    not a root-level ``.nuspec``/``.nupkg`` (any case); everything else, ``.signature.p7s`` included."""
    base = name.rsplit("/", 1)[-1]
    if base in ("[Content_Types].xml", ".rels") or name.endswith(".psmdcp"):
        return False
    return not ("/" not in name and name.lower().endswith((".nuspec", ".nupkg")))


def plan_extraction(archive: PackageArchive, package_id: str) -> list[_Planned]:
    """The entries NuGet extracts, in write order (nuspec first, then central-directory order), with the relative
    path each becomes.

    Raises:
        RestoreError: the archive has structure problems (nuseal's hardened view), has no single root nuspec,
            or an entry's unescaped name escapes the version folder, is absolute, or collides with another.
    """
    problems = archive.structure_problems
    if problems:
        raise RestoreError(f"the package archive is unsafe: {problems[0].message}")
    try:
        nuspec_name = find_nuspec_name(archive.names)
    except PackageFormatError as exc:
        raise RestoreError(exc.message) from exc
    planned: list[_Planned] = []
    nuspec_index = archive.names.index(nuspec_name)
    planned.append(_Planned(nuspec_index, nuspec_name, False, True))
    seen: set[str] = {nuspec_name}
    for index, name in enumerate(archive.names):
        if index == nuspec_index:
            continue
        directory = name.endswith("/")
        if not directory and not _is_package_file(name):
            continue
        rel = unquote(name).rstrip("/") if directory else unquote(name)
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in rel:
            raise RestoreError(f"entry {name!r} would be extracted outside the package folder ({rel!r})")
        if rel in seen and not directory:
            raise RestoreError(f"entry {name!r} is extracted to {rel!r}, which another entry also writes")
        seen.add(rel)
        planned.append(_Planned(index, rel, directory))
    return planned


@dataclass(frozen=True)
class InstallOutcome:
    """What :meth:`GlobalPackagesFolder.install` did.

    ``installed`` is ``True`` when this call extracted the package, ``False`` when a complete folder was already
    there (installed earlier, or by another process while this one waited for the lock); ``folder`` is the
    version folder; ``content_hash`` the NuGet content hash recorded in its ``.nupkg.metadata``; ``gate`` the
    gate's result when the gate ran (``None`` for an already installed package).
    """

    package_id: str
    version: str
    folder: Path
    installed: bool
    content_hash: str
    gate: GateResult | None = None


def _dos_mtime(date: int, time_: int) -> float | None:
    """A DOS date/time as a UTC timestamp (NuGet sets ``entry.LastWriteTime.DateTime`` as UTC); ``None`` when
    invalid."""
    try:
        year, month, day = 1980 + (date >> 9), (date >> 5) & 0xF, date & 0x1F
        hour, minute, second = time_ >> 11, (time_ >> 5) & 0x3F, (time_ & 0x1F) * 2
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
            return None
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except (OverflowError, ValueError):
        return None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _empty_folder(folder: Path) -> None:
    """Remove everything in ``folder`` (links are removed, not followed)."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class GlobalPackagesFolder:
    """A NuGet global-packages folder (``NUGET_PACKAGES``, ``~/.nuget/packages``, or nuget.config's
    ``globalPackagesFolder``). Paths are NuGet's lower-case ``VersionFolderPathResolver`` ones.

    ``crash_after`` is for tests only: the number of extracted files after which :meth:`install` kills its own
    process with SIGKILL (to prove a half-written folder is cleaned up the next time).
    """

    def __init__(self, root: Path, *, crash_after: int | None = None) -> None:
        self.root = Path(root)
        self._crash_after = crash_after

    # ------------------------------------------------------------------ paths
    def version_folder(self, package_id: str, version: NuGetVersion | str) -> Path:
        """``<root>/<id-lower>/<normalized-version-lower>``."""
        return self.root / package_id.lower() / _normalized(version)

    def nupkg_path(self, package_id: str, version: NuGetVersion | str) -> Path:
        """``<version folder>/<id-lower>.<version-lower>.nupkg``."""
        return self.version_folder(package_id, version) / f"{package_id.lower()}.{_normalized(version)}.nupkg"

    def metadata_path(self, package_id: str, version: NuGetVersion | str) -> Path:
        """``<version folder>/.nupkg.metadata``."""
        return self.version_folder(package_id, version) / METADATA_FILE

    # ------------------------------------------------------------------ queries
    def is_installed(self, package_id: str, version: NuGetVersion | str) -> bool:
        """Whether the package's ``.nupkg.metadata`` exists (NuGet's test: then it never extracts it again)."""
        return self.metadata_path(package_id, version).is_file()

    def installed_content_hash(self, package_id: str, version: NuGetVersion | str) -> str | None:
        """The ``contentHash`` of the package's ``.nupkg.metadata`` (compare it with the lock file's for NU1403),
        or ``None`` when the package is not installed or the file is unreadable."""
        try:
            doc = json.loads(self.metadata_path(package_id, version).read_bytes())
        except (OSError, ValueError):
            return None
        value = doc.get("contentHash") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None

    # ------------------------------------------------------------------ install
    def install(
        self,
        data: bytes,
        *,
        package_id: str,
        version: NuGetVersion | str,
        source: str,
        gate: GateSettings,
        now: datetime,
    ) -> InstallOutcome:
        """Gate then extract one downloaded package (``data``: the .nupkg bytes from ``source``); its signatures
        are judged at ``now`` (timezone-aware).

        An installed package (its ``.nupkg.metadata`` exists) is left alone and reported with ``installed=False``,
        without running the gate. Otherwise :func:`nuseal.client.gate.check` runs first; then, under the
        package's lock, a half-written version folder is emptied and the package is extracted in NuGet's order.
        Safe to call from several threads and processes at once for the same package.

        Raises:
            RestoreError: the gate refused the package (its NU code or rule id, the package and the source),
                the archive is unsafe to extract, or the folder cannot be written; nothing of the package is
                left on disk then (an id folder this call created is removed too).
        """
        ver = version if isinstance(version, NuGetVersion) else NuGetVersion.parse(version)
        folder = self.version_folder(package_id, ver)
        if self.is_installed(package_id, ver):
            return self._existing(package_id, ver, folder)
        result = check(data, package_id=package_id, version=ver, source=source, settings=gate, now=now)
        if result.refused:
            raise result.error()
        label = f"{package_id} {ver.normalized}"
        try:
            archive = PackageArchive.from_bytes(data, source=source)
            plan = plan_extraction(archive, package_id)
            content_hash = archive.content_hash()
        except RestoreError as exc:
            raise RestoreError(
                f"Package '{label}' from source '{source}': {exc.message}", package=label, source=source
            ) from exc
        except NusealError as exc:
            raise RestoreError(
                f"Package '{label}' from source '{source}': {exc.message}", code=exc.code, package=label, source=source
            ) from exc
        target = self.nupkg_path(package_id, ver)
        with _file_lock(nuget_lock_path(target)):
            if self.is_installed(package_id, ver):
                return self._existing(package_id, ver, folder, result)
            id_folder = folder.parent
            id_existed = id_folder.exists()
            try:
                self._extract(archive, plan, data, package_id, ver, source, content_hash)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    if folder.exists() and not (folder / METADATA_FILE).exists():
                        shutil.rmtree(folder)
                    if not id_existed:
                        id_folder.rmdir()
                if isinstance(exc, OSError):
                    raise RestoreError(
                        f"Package '{label}' from source '{source}': cannot extract to {folder}: {exc.strerror or exc}",
                        package=label,
                        source=source,
                    ) from exc
                raise
        return InstallOutcome(package_id, ver.normalized, folder, True, content_hash, result)

    def _existing(
        self, package_id: str, version: NuGetVersion, folder: Path, result: GateResult | None = None
    ) -> InstallOutcome:
        return InstallOutcome(
            package_id,
            version.normalized,
            folder,
            False,
            self.installed_content_hash(package_id, version) or "",
            result,
        )

    def _extract(
        self,
        archive: PackageArchive,
        plan: list[_Planned],
        data: bytes,
        package_id: str,
        version: NuGetVersion,
        source: str,
        content_hash: str,
    ) -> None:
        folder = self.version_folder(package_id, version)
        if folder.is_symlink():
            folder.unlink()
        if folder.exists():
            _empty_folder(folder)  # a crash left it without .nupkg.metadata: NuGet empties it first
        folder.mkdir(parents=True, exist_ok=True)
        id_lower = package_id.lower()
        ver_lower = _normalized(version)
        temp_nupkg = folder / _random_name()
        _write_new(temp_nupkg, data, _NUGET_FILE_MODE)
        now = time.time()
        records = archive.records
        written = 0
        for item in plan:
            dest = folder / item.relpath
            if item.directory:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            record = records[item.index]
            content = archive.read_record(record)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write_new(dest, content, _FILE_MODE)
            mtime = _dos_mtime(record.dos_date, record.dos_time)
            if mtime is not None and mtime <= now:
                os.utime(dest, (mtime, mtime), follow_symlinks=False)
            if item.is_nuspec:
                os.replace(dest, folder / f"{id_lower}.nuspec")
            written += 1
            if self._crash_after is not None and written >= self._crash_after:
                os.kill(os.getpid(), 9)
        sha512 = base64.b64encode(hashlib.sha512(data).digest())
        temp_sha = folder / _random_name()
        _write_new(temp_sha, sha512, _NUGET_FILE_MODE)
        temp_meta = folder / _random_name()
        _write_new(temp_meta, metadata_bytes(content_hash, source), _NUGET_FILE_MODE)
        os.replace(temp_nupkg, folder / f"{id_lower}.{ver_lower}.nupkg")
        os.replace(temp_sha, folder / f"{id_lower}.{ver_lower}.nupkg.sha512")
        os.replace(temp_meta, folder / METADATA_FILE)


def _normalized(version: NuGetVersion | str) -> str:
    ver = version if isinstance(version, NuGetVersion) else NuGetVersion.parse(version)
    return ver.normalized.lower()


def _random_name() -> str:
    """A random 8.3 name like .NET's ``Path.GetRandomFileName`` (``k3f1xueo.f3u``)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz012345"
    raw = "".join(secrets.choice(alphabet) for _ in range(11))
    return f"{raw[:8]}.{raw[8:]}"
