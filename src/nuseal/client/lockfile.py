"""``packages.lock.json``: NuGet's lock file, read and written byte-for-byte as NuGet writes it (format version 1).

Source: NuGet.Client ``src/NuGet.Core/NuGet.ProjectModel/ProjectLockFile/{PackagesLockFileFormat,
PackagesLockFileBuilder,PackagesLockFileUtilities,LockFileDependency}.cs``; checked against the lock file the
.NET SDK 3.1 writes (``tests/client/test_lockfile_dotnet.py``).

Layout: ``{"version": 1, "dependencies": {<target>: {<id>: {"type", "requested"?, "resolved", "contentHash",
"dependencies"?}}}}``. ``<target>`` is the framework's ``NuGetFramework.ToString()`` (``.NETCoreApp,Version=v3.1``,
``.NETStandard,Version=v2.0``, ``net6.0`` for .NET 5+). Packages in a target: ``Direct`` first, then
``Transitive``, then ``Project``, then ``CentralTransitive``, each by id (ordinal, case-insensitive); a package's
``dependencies`` by id (ordinal), each range in NuGet's legacy short form (``1.0.0`` for ``[1.0.0, )``);
``requested`` is the normalized range, ``resolved`` the normalized version, ``contentHash`` the package's NuGet
content hash (the ``.nupkg.metadata`` ``contentHash``: SHA-512 of the package without its signature, base64).
Text: two-space indentation, ``"name": value``, ``\\n`` line ends, no final newline; non-ASCII written as is.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError, RestoreError
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange

__all__ = [
    "LOCK_FILE_NAME",
    "DependencyType",
    "LockFile",
    "LockTarget",
    "LockedPackage",
    "legacy_short",
    "load_lock_file",
    "parse_lock_file",
    "render_lock_file",
    "write_lock_file",
]

LOCK_FILE_NAME = "packages.lock.json"
MAX_LOCK_FILE_BYTES = 64 << 20


class DependencyType(enum.Enum):
    """``PackageDependencyType`` in its enum order (the order NuGet sorts by)."""

    DIRECT = "Direct"
    TRANSITIVE = "Transitive"
    PROJECT = "Project"
    CENTRAL_TRANSITIVE = "CentralTransitive"

    @property
    def rank(self) -> int:
        return list(DependencyType).index(self)


@dataclass(frozen=True)
class LockedPackage:
    """One entry of a target. ``dependencies`` maps id to the range as written (legacy short form)."""

    id: str
    type: DependencyType
    resolved: NuGetVersion | None
    requested: VersionRange | None = None
    content_hash: str | None = None
    dependencies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LockTarget:
    """``framework`` is the lock file key (``.NETCoreApp,Version=v3.1``), ``runtime`` the ``/rid`` part if any."""

    framework: str
    packages: tuple[LockedPackage, ...]
    runtime: str | None = None

    @property
    def name(self) -> str:
        return self.framework + (f"/{self.runtime}" if self.runtime else "")

    def get(self, package_id: str) -> LockedPackage | None:
        lowered = package_id.lower()
        return next((p for p in self.packages if p.id.lower() == lowered), None)


@dataclass(frozen=True)
class LockFile:
    version: int
    targets: tuple[LockTarget, ...]
    path: Path | None = None

    def target(self, framework_key: str) -> LockTarget | None:
        return next((t for t in self.targets if t.name == framework_key), None)


def legacy_short(vr: VersionRange) -> str:
    """NuGet's ``VersionRange.ToLegacyShortString()``: the bare minimum version for ``[x, )``, else the bracketed
    normalized form without the space (``[1.0.0, 2.0.0)`` is ``[1.0.0, 2.0.0)``)."""
    if vr.min_version is not None and vr.is_min_inclusive and vr.max_version is None:
        return vr.min_version.normalized
    lo = "[" if vr.min_version is not None and vr.is_min_inclusive else "("
    hi = "]" if vr.max_version is not None and vr.is_max_inclusive else ")"
    if vr.min_version is not None and vr.max_version is not None and vr.min_version == vr.max_version and lo == "[":
        return f"[{vr.min_version.normalized}]"
    low = vr.min_version.normalized if vr.min_version is not None else ""
    high = vr.max_version.normalized if vr.max_version is not None else ""
    return f"{lo}{low}, {high}{hi}"


def _sort_key(p: LockedPackage) -> tuple[int, str]:
    return (p.type.rank, p.id.lower())


def _dump(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}  {json.dumps(k, ensure_ascii=False)}: {_dump(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    return json.dumps(value, ensure_ascii=False)


def render_lock_file(lock: LockFile) -> str:
    """The lock file text exactly as NuGet writes it (see the module docstring for the rules)."""
    targets: dict[str, Any] = {}
    for target in lock.targets:
        entries: dict[str, Any] = {}
        for pkg in sorted(target.packages, key=_sort_key):
            entry: dict[str, Any] = {"type": pkg.type.value}
            if pkg.requested is not None:
                entry["requested"] = pkg.requested.normalized
            if pkg.resolved is not None:
                entry["resolved"] = pkg.resolved.normalized
            if pkg.content_hash is not None:
                entry["contentHash"] = pkg.content_hash
            if pkg.dependencies:
                entry["dependencies"] = {k: pkg.dependencies[k] for k in sorted(pkg.dependencies)}
            entries[pkg.id] = entry
        targets[target.name] = entries
    return _dump({"version": lock.version, "dependencies": targets}, 0)


def write_lock_file(lock: LockFile, path: str | os.PathLike[str]) -> bool:
    """Write ``lock`` to ``path`` atomically, only when its text changed (NuGet leaves an unchanged file alone).

    Returns whether the file was written.

    Raises:
        RestoreError: the file cannot be written.
    """
    target = Path(path)
    text = render_lock_file(lock).encode()
    try:
        if target.is_file() and target.read_bytes() == text:
            return False
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise RestoreError(f"cannot write the lock file {target}: {exc.strerror or exc}") from exc
    return True


def _bad(where: str, what: str) -> RestoreError:
    return RestoreError(f"{where}: {what}", code=NuCode.NU1004)


def parse_lock_file(data: bytes, *, where: str = LOCK_FILE_NAME) -> LockFile:
    """Parse a lock file (versions 1 and 2; version 3's alias layout is refused with a clear message).

    Raises:
        RestoreError: not JSON, an unknown version, a bad entry (NU1004: NuGet treats an unreadable lock file as
            out of date, which locked mode reports as NU1004).
    """
    if len(data) > MAX_LOCK_FILE_BYTES:
        raise _bad(where, f"larger than {MAX_LOCK_FILE_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(where, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad(where, "not a JSON object")
    version = doc.get("version")
    if version not in (1, 2):
        raise _bad(where, f"lock file version {version!r} is not supported (1 or 2)")
    deps = doc.get("dependencies")
    if not isinstance(deps, dict):
        raise _bad(where, "no 'dependencies' object")
    targets: list[LockTarget] = []
    for name, body in deps.items():
        if not isinstance(body, dict):
            raise _bad(where, f"target {name!r} is not an object")
        framework, _, runtime = str(name).partition("/")
        packages: list[LockedPackage] = []
        for package_id, entry in body.items():
            packages.append(_entry(where, str(name), str(package_id), entry))
        targets.append(LockTarget(framework, tuple(packages), runtime or None))
    return LockFile(int(version), tuple(targets))


def _entry(where: str, target: str, package_id: str, entry: object) -> LockedPackage:
    label = f"{target}: {package_id}"
    if not isinstance(entry, dict):
        raise _bad(where, f"{label} is not an object")
    try:
        kind = DependencyType(entry.get("type", ""))
    except ValueError:
        raise _bad(where, f"{label} has an unknown type {entry.get('type')!r}") from None
    try:
        resolved = NuGetVersion.parse(entry["resolved"]) if entry.get("resolved") else None
        requested = VersionRange.parse(entry["requested"]) if entry.get("requested") else None
    except (PackageFormatError, TypeError):
        raise _bad(where, f"{label} has an invalid version or range") from None
    if resolved is None and kind is not DependencyType.PROJECT:
        raise _bad(where, f"{label} has no 'resolved' version")
    content_hash = entry.get("contentHash")
    if content_hash is not None and not isinstance(content_hash, str):
        raise _bad(where, f"{label} has a bad contentHash")
    dependencies = entry.get("dependencies") or {}
    if not isinstance(dependencies, dict) or not all(isinstance(v, str) for v in dependencies.values()):
        raise _bad(where, f"{label} has bad dependencies")
    return LockedPackage(package_id, kind, resolved, requested, content_hash, dict(dependencies))


def load_lock_file(path: str | os.PathLike[str]) -> LockFile:
    """Read and parse a lock file.

    Raises:
        RestoreError: unreadable or invalid (see :func:`parse_lock_file`).
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise RestoreError(f"cannot read the lock file {file}: {exc.strerror or exc}") from exc
    lock = parse_lock_file(data, where=str(file))
    return LockFile(lock.version, lock.targets, file)


def direct_mismatches(
    target: LockTarget | None, framework_key: str, references: Sequence[tuple[str, VersionRange]]
) -> list[str]:
    """Why the lock file no longer matches the project for one framework (``PackagesLockFileUtilities
    .IsLockFileStillValid``): the target is missing, a direct reference was added, removed or its requested range
    changed. Empty when it matches."""
    if target is None:
        return [f"the lock file has no target for {framework_key}"]
    problems: list[str] = []
    locked = {p.id.lower(): p for p in target.packages if p.type is DependencyType.DIRECT}
    wanted = {pid.lower(): (pid, vr) for pid, vr in references}
    for lowered, (pid, vr) in wanted.items():
        entry = locked.get(lowered)
        if entry is None:
            problems.append(f"{pid} {vr.normalized} is referenced but not locked as a direct dependency")
        elif entry.requested is None or entry.requested.normalized != vr.normalized:
            shown = entry.requested.normalized if entry.requested else "nothing"
            problems.append(f"{pid}: the project requests {vr.normalized}, the lock file {shown}")
    for lowered, entry in locked.items():
        if lowered not in wanted:
            problems.append(f"{entry.id} is locked as a direct dependency but no longer referenced")
    return problems
