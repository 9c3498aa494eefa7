"""Global-packages folders compared with what NuGet's own ``PackageExtractor`` writes (``../shared/tools/nuget-oracle``
``extract``, NuGet.Packaging 6.14.3), for ``test_globalpackages_oracle`` and ``test_restore_vectors``.

- :data:`SCRIPT`: the oracle's ``run-oracle.sh``; :data:`CODESIGN`, :data:`TIMESTAMP`: nuget.org's code-signing and
  timestamping roots (``../shared/trust``), the trust both installs are given.
- :class:`Tree`: a version folder as both sides describe it (files with size, SHA-256 and mode; the extracted
  entries' mtimes to the second; directories; the ``.nupkg.metadata`` text and the ``.sha512`` file).
- :func:`oracle_tree`: the :class:`Tree` of the oracle's ``extract`` JSON; :func:`our_tree`: the :class:`Tree` of a
  version folder on disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared"
SCRIPT = SHARED / "tools" / "nuget-oracle" / "run-oracle.sh"
CODESIGN = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP = SHARED / "trust" / "timestampctl.pem"


@dataclass(frozen=True)
class Tree:
    """A version folder as both sides describe it."""

    files: dict[str, tuple[int, str, str]]  # path -> (size, sha256, mode)
    mtimes: dict[str, str]  # extracted entries only: path -> ISO second (UTC)
    directories: frozenset[str]
    metadata: str
    sha512: str


_NUGET_FILES = (".nupkg.metadata",)


def _is_nuget_own(path: str) -> bool:
    return path in _NUGET_FILES or (path.endswith((".nupkg", ".nupkg.sha512")) and "/" not in path)


def oracle_tree(doc: dict[str, Any]) -> Tree:
    files = {f["path"]: (f["size"], f["sha256"], f["mode"]) for f in doc["files"]}
    mtimes = {f["path"]: f["mtime"][:19] for f in doc["files"] if not _is_nuget_own(f["path"])}
    return Tree(files, mtimes, frozenset(doc["directories"]), doc["nupkgMetadataText"], doc["sha512File"])


def our_tree(folder: Path) -> Tree:
    files: dict[str, tuple[int, str, str]] = {}
    mtimes: dict[str, str] = {}
    dirs: set[str] = set()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        st = path.lstat()
        if path.is_dir():
            dirs.add(rel)
            continue
        files[rel] = (st.st_size, hashlib.sha256(path.read_bytes()).hexdigest(), f"{st.st_mode & 0o777:o}")
        if not _is_nuget_own(rel):
            mtimes[rel] = datetime.fromtimestamp(int(st.st_mtime), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    sha = next(p for p in folder.iterdir() if p.name.endswith(".nupkg.sha512")).read_text()
    return Tree(files, mtimes, frozenset(dirs), (folder / ".nupkg.metadata").read_text(), sha)
