"""``nuseal audit``: re-check what is already in a global-packages folder.

NuGet trusts a version folder for good once its ``.nupkg.metadata`` exists: nothing re-reads the files, and a
build step of one package can rewrite another package's ``build/*.targets`` there. The audit checks every
``<id>/<version>/`` folder again:

* ``NA1001`` the ``.nupkg`` no longer hashes to its ``.nupkg.sha512`` (the package was replaced);
* ``NA1002`` the ``.nupkg``'s content hash differs from ``.nupkg.metadata``'s ``contentHash``;
* ``NA1003`` / ``NA1004`` / ``NA1005`` a file was added / changed / removed after extraction: every file NuGet
  extracts (:func:`nuseal.client.globalpackages.plan_extraction`, the same rules as the install) is compared
  byte for byte with its entry in the ``.nupkg``, and every other file in the folder is reported (links and
  special files too);
* ``NA1006`` the ``.nupkg`` is missing or unreadable; ``NA1007`` the folder has no ``.nupkg.metadata`` (a
  crash during extraction: NuGet re-extracts it); ``NA1008`` ``.nupkg.metadata`` is unreadable;
* ``NA1009`` the nuspec names another id or version than the folder (a swapped package);
* ``NA2001`` the signature no longer verifies under the policy (:class:`~nuseal.client.gate.GateSettings`, the
  same as restore's gate; the NU code is in the message);
* the scan is rerun (``nuseal.scan``; over the files on disk when any differ from the .nupkg, else over the
  .nupkg's entries, which are then byte for byte what is on disk): findings at or above the gate's ``block_on``
  that the allow list does not cover are reported with their own rule ids.

Results are :class:`~nuseal.scan.engine.ScanReport` values (one per package, ``source`` = the version folder),
so the scan's text, JSON and SARIF writers render them; :data:`AUDIT_RULES` extends the scan's rule set with the
NA ids. ``NA1001``-``NA1007`` mark a folder as tampered: :func:`remove_package` (``--fix``) deletes such folders
so the next restore fetches them again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from nuseal._internal.workers import OrderedPool
from nuseal.client.gate import GateSettings
from nuseal.client.globalpackages import METADATA_FILE, plan_extraction
from nuseal.codes import Level
from nuseal.errors import NusealError, RestoreError, UsageError
from nuseal.package.archive import PackageArchive
from nuseal.scan.engine import ScanReport, scan_package
from nuseal.scan.model import Finding, Location, PackageRef, Rule, Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import RuleSet

__all__ = [
    "AUDIT_RULES",
    "MIN_FOLDERS_FOR_POOL",
    "TAMPER_RULES",
    "PackageAudit",
    "audit_folder",
    "audit_package",
    "audit_rules",
    "find_package_folders",
    "remove_package",
]


def _rule(rule_id: str, title: str, severity: Severity, score: float, help_text: str) -> Rule:
    return Rule(rule_id, title, severity, score, help_text, area="audit")


#: The audit's own rules (ids ``NA1xxx`` for the folder's integrity, ``NA2xxx`` for the signature).
AUDIT_RULES: tuple[Rule, ...] = (
    _rule(
        "NA1001",
        "Package file replaced",
        Severity.ERROR,
        9.0,
        "The .nupkg in the global-packages folder no longer hashes to its .nupkg.sha512: the package was replaced "
        "after it was installed. Remove the folder (nuseal audit --fix) and restore again.",
    ),
    _rule(
        "NA1002",
        "Content hash differs from .nupkg.metadata",
        Severity.ERROR,
        9.0,
        "The .nupkg's content hash differs from the contentHash NuGet recorded in .nupkg.metadata when it "
        "installed the package.",
    ),
    _rule(
        "NA1003",
        "File added after extraction",
        Severity.ERROR,
        8.0,
        "A file that is not in the .nupkg was added to the extracted package: MSBuild and NuGet read the folder, "
        "not the .nupkg, so the added file takes effect.",
    ),
    _rule(
        "NA1004",
        "File changed after extraction",
        Severity.ERROR,
        8.5,
        "An extracted file no longer equals its entry in the .nupkg: something rewrote it after the restore "
        "(for example another package's build step rewriting a .targets file).",
    ),
    _rule(
        "NA1005",
        "File removed after extraction",
        Severity.ERROR,
        6.0,
        "A file of the package is missing from the extracted folder.",
    ),
    _rule(
        "NA1006",
        "Package file missing or unreadable",
        Severity.ERROR,
        7.0,
        "The version folder has no readable .nupkg, so its files cannot be checked.",
    ),
    _rule(
        "NA1007",
        "Extraction not finished",
        Severity.WARNING,
        4.0,
        "The version folder has no .nupkg.metadata: an extraction was interrupted. NuGet empties and extracts "
        "it again on the next restore; nuseal audit --fix removes it now.",
    ),
    _rule(
        "NA1008",
        ".nupkg.metadata unreadable",
        Severity.ERROR,
        6.0,
        "The .nupkg.metadata file is not the JSON NuGet writes (version, contentHash, source).",
    ),
    _rule(
        "NA1009",
        "Another package in this folder",
        Severity.ERROR,
        8.5,
        "The .nupkg's nuspec names another package id or version than the folder it sits in: the folder's "
        "content was swapped for another (genuinely signed) package.",
    ),
    _rule(
        "NA2001",
        "Signature no longer verifies",
        Severity.ERROR,
        8.0,
        "The package's signature does not verify under the policy (signatureValidationMode, trustedSigners) "
        "the restore used; the NuGet code is in the message.",
    ),
)
#: Rules whose findings mean the folder's content is not what NuGet extracted (``--fix`` removes it).
TAMPER_RULES = frozenset({"NA1001", "NA1002", "NA1003", "NA1004", "NA1005", "NA1006", "NA1007", "NA1008", "NA1009"})


def audit_rules(rules: RuleSet) -> RuleSet:
    """``rules`` (the scan's) with :data:`AUDIT_RULES` added, for the report writers."""
    return RuleSet([*rules, *AUDIT_RULES])


@dataclass
class PackageAudit:
    """The audit of one version folder: its :class:`ScanReport` (``package.source`` is the folder path) and
    whether it is tampered (a finding of :data:`TAMPER_RULES`)."""

    folder: Path
    report: ScanReport
    tampered: bool = False
    fixed: bool = False
    seconds: float = 0.0


@dataclass
class _Collector:
    ref: PackageRef
    rules: dict[str, Rule]
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule_id: str, message: str, path: str | None = None, evidence: str = "") -> None:
        rule = self.rules[rule_id]
        self.findings.append(
            Finding(rule_id, rule.severity, message, self.ref, Location(path=path), evidence or (path or ""))
        )


_AUDIT_BY_ID = {r.id: r for r in AUDIT_RULES}


def find_package_folders(root: Path) -> Iterator[Path]:
    """Every ``<root>/<id>/<version>/`` folder (sorted), complete or not; links are not followed."""
    try:
        ids = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError as exc:
        raise UsageError(f"{root}: no such global-packages folder") from exc
    except NotADirectoryError as exc:
        raise UsageError(f"{root} is not a folder") from exc
    for id_entry in ids:
        if not id_entry.is_dir(follow_symlinks=False) or id_entry.name.startswith("."):
            continue
        for ver_entry in sorted(os.scandir(id_entry.path), key=lambda e: e.name):
            if ver_entry.is_dir(follow_symlinks=False):
                yield Path(ver_entry.path)


def _walk(folder: Path) -> tuple[dict[str, os.stat_result], set[str]]:
    """Files (anything not a directory, by relative path with ``/``, lstat) and directories under ``folder``;
    links are listed as files, never followed."""
    files: dict[str, os.stat_result] = {}
    dirs: set[str] = set()
    pending = [("", str(folder))]
    while pending:
        prefix, path = pending.pop()
        with os.scandir(path) as it:
            for entry in it:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    dirs.add(rel)
                    pending.append((rel + "/", entry.path))
                else:
                    files[rel] = entry.stat(follow_symlinks=False)
    return files, dirs


#: Entries up to this size (bytes), and this much in all per package, are kept after the comparison for the scan.
_KEEP_ENTRY = 16 << 20
_KEEP_TOTAL = 128 << 20


def _cached_reader(inflated: dict[str, bytes], fallback: Callable[[str, int], bytes]) -> Callable[[str, int], bytes]:
    """A scan reader that serves the entries the comparison already inflated (same bytes, CRC-checked)."""

    def reader(path: str, limit: int) -> bytes:
        found = inflated.get(path)
        if found is not None and len(found) <= limit:
            return found
        return fallback(path, limit)

    return reader


def _read_metadata(path: Path) -> tuple[str, str] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    content_hash, source = doc.get("contentHash"), doc.get("source")
    if not isinstance(content_hash, str) or not isinstance(source, (str, type(None))):
        return None
    return content_hash, source or ""


def audit_package(folder: Path, settings: GateSettings, *, now: datetime) -> PackageAudit:
    """Audit one version folder ``<root>/<id>/<version>`` (see the module docstring), judging its signatures at
    ``now`` (timezone-aware). Never raises for a damaged folder: every problem is a finding."""
    started = time.perf_counter()
    id_lower, ver_lower = folder.parent.name, folder.name
    ref = PackageRef(id_lower, ver_lower, str(folder))
    out = _Collector(ref, _AUDIT_BY_ID)
    files, _dirs = _walk(folder)
    report = ScanReport(package=ref)

    def finish() -> PackageAudit:
        report.findings = sorted(
            out.findings, key=lambda f: (-f.severity, f.rule_id, f.location.path or "", f.location.line or 0)
        )
        tampered = any(f.rule_id in TAMPER_RULES for f in report.findings)
        seconds = time.perf_counter() - started
        report.seconds = seconds
        return PackageAudit(folder, report, tampered, seconds=seconds)

    meta_path = folder / METADATA_FILE
    if METADATA_FILE not in files:
        out.add("NA1007", f"{folder} has no {METADATA_FILE}: its extraction did not finish", None, str(folder))
        return finish()
    metadata = _read_metadata(meta_path)
    if metadata is None:
        out.add("NA1008", f"{meta_path} is not NuGet's .nupkg.metadata JSON", METADATA_FILE)
    nupkg_name = f"{id_lower}.{ver_lower}.nupkg"
    sha_name = nupkg_name + ".sha512"
    own = {METADATA_FILE, nupkg_name, sha_name}
    try:
        data = (folder / nupkg_name).read_bytes()
        archive = PackageArchive.from_bytes(data, source=str(folder / nupkg_name))
    except (OSError, NusealError) as exc:
        message = exc.message if isinstance(exc, NusealError) else (exc.strerror or str(exc))
        out.add("NA1006", f"{nupkg_name} cannot be read: {message}", nupkg_name)
        return finish()
    # 1. the .nupkg against its .sha512 and .nupkg.metadata
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    try:
        recorded = (folder / sha_name).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        recorded = None
    if recorded != digest:
        out.add(
            "NA1001",
            f"{nupkg_name} hashes to {digest[:16]}... but {sha_name} says {(recorded or 'nothing')[:16]}...: "
            "the package file was replaced",
            nupkg_name,
        )
    try:
        content_hash = archive.content_hash()
    except NusealError as exc:
        content_hash = None
        out.add("NA1006", f"{nupkg_name}: {exc.message}", nupkg_name)
    if metadata is not None and content_hash is not None and metadata[0] != content_hash:
        out.add(
            "NA1002",
            f"{nupkg_name}'s content hash {content_hash[:16]}... differs from {METADATA_FILE}'s {metadata[0][:16]}...",
            METADATA_FILE,
        )
    try:
        spec = archive.nuspec()
        if spec.id.lower() != id_lower or spec.version.normalized.lower() != ver_lower:
            out.add(
                "NA1009",
                f"{nupkg_name} is {spec.id} {spec.version.normalized}, not the package of folder "
                f"{id_lower}/{ver_lower}",
                nupkg_name,
            )
    except NusealError as exc:
        out.add("NA1006", f"{nupkg_name}: its nuspec cannot be read: {exc.message}", nupkg_name)
    # 2. every extracted file against its entry
    try:
        plan = plan_extraction(archive, id_lower)
    except RestoreError as exc:
        out.add("NA1006", f"{nupkg_name} cannot be extracted: {exc.message}", nupkg_name)
        return finish()
    expected: dict[str, int] = {}
    for item in plan:
        if item.directory:
            continue
        rel = f"{id_lower}.nuspec" if item.is_nuspec else item.relpath
        expected[rel] = item.index
    records = archive.records
    inflated: dict[str, bytes] = {}  # entries already inflated and compared, handed to the scan
    kept = 0
    for rel in sorted(set(files) - set(expected) - own):
        kind = "" if stat.S_ISREG(files[rel].st_mode) else " (a link or special file)"
        out.add("NA1003", f"{rel} is not in {nupkg_name}: it was added after extraction{kind}", rel)
    for rel, index in sorted(expected.items()):
        st = files.get(rel)
        if st is None:
            out.add("NA1005", f"{rel} of {nupkg_name} is missing from the folder", rel)
            continue
        if not stat.S_ISREG(st.st_mode):
            out.add("NA1004", f"{rel} is no longer a regular file (a link or special file)", rel)
            continue
        record = records[index]
        if st.st_size != record.uncompressed_size:
            out.add("NA1004", f"{rel} is {st.st_size} bytes, its entry in {nupkg_name} {record.uncompressed_size}", rel)
            continue
        try:
            entry = archive.read_record(record)
            with open(folder / rel, "rb") as fh:
                current = fh.read(record.uncompressed_size + 1)
        except (OSError, NusealError) as exc:
            out.add("NA1004", f"{rel} cannot be compared with its entry: {exc}", rel)
            continue
        if current != entry:
            out.add("NA1004", f"{rel} differs from its entry in {nupkg_name}: it was changed after extraction", rel)
        elif len(entry) <= _KEEP_ENTRY and kept + len(entry) <= _KEEP_TOTAL:
            inflated[record.name.replace("\\", "/")] = entry
            kept += len(entry)
    # 3. the signature under the policy
    source = metadata[1] if metadata else ""
    result = settings.verifier_for(source).verify(archive, now=now)
    if not result.valid:
        errors = [i for i in result.issues if i.level is Level.ERROR] or list(result.issues)
        first = errors[0] if errors else None
        text = (f"{first.code.value}: " if first and first.code else "") + (first.message if first else "invalid")
        out.add("NA2001", f"the signature does not verify under the '{result.policy}' policy: {text}", nupkg_name)
    # 4. the scan: over the files on disk when they differ from the .nupkg, else over the .nupkg (same content)
    if settings.scan:
        changed = any(f.rule_id in TAMPER_RULES for f in out.findings)
        if changed:
            pkg = ScanPackage.from_folder(folder, source=str(folder))
        else:
            pkg = ScanPackage.from_bytes(data, source=str(folder))
            pkg.reader = _cached_reader(inflated, pkg.reader)
        scanned = scan_package(pkg, settings.scan_rules(), context=settings.scan_context)
        if scanned.package.id:
            out.ref = PackageRef(scanned.package.id, scanned.package.version, str(folder))
            report.package = out.ref
            out.findings = [
                Finding(f.rule_id, f.severity, f.message, out.ref, f.location, f.evidence, f.file_sha256)
                for f in out.findings
            ]
        for f in scanned.findings:
            if f.rule_id in ("NS9002",) and not changed:
                continue  # ZIP packaging details of the .nupkg, not of what is on disk
            if f.severity >= settings.block_on and settings.allow.allows(f.package.id or id_lower, f.rule_id) is None:
                out.findings.append(
                    Finding(f.rule_id, f.severity, f.message, out.ref, f.location, f.evidence, f.file_sha256)
                )
        report.entries = scanned.entries
        report.stored_size = scanned.stored_size
    return finish()


def remove_package(folder: Path) -> None:
    """Delete a version folder (and its id folder when that is then empty), as ``--fix`` does.

    Raises:
        UsageError: the folder cannot be removed (permissions).
    """
    try:
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder)
        parent = folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    except OSError as exc:
        raise UsageError(f"cannot remove {folder}: {exc.strerror or exc}") from exc


def _audit_one(settings: GateSettings, now: datetime, folder: Path) -> PackageAudit:
    return audit_package(folder, settings, now=now)


def _spawned(settings: GateSettings) -> Callable[[datetime, Path], PackageAudit]:
    """A spawned worker's work function (no ``fork`` on this platform): the settings, pickled."""
    return partial(_audit_one, settings)


#: Below this many folders :func:`audit_folder` stays in this process (a pool costs more than it saves).
MIN_FOLDERS_FOR_POOL = 16


def audit_folder(
    root: Path,
    settings: GateSettings,
    *,
    now: datetime,
    fix: bool = False,
    progress: Callable[[int, int], None] | None = None,
    folders: Sequence[Path] | None = None,
    jobs: int | None = None,
) -> list[PackageAudit]:
    """Audit every version folder under ``root`` (or the given ``folders``), signatures judged at ``now``
    (timezone-aware); results in folder order;
    ``progress(done, total)`` after each. With ``fix``, tampered folders are removed (``PackageAudit.fixed``).
    ``jobs`` processes, this one included (default: the CPU count from :data:`MIN_FOLDERS_FOR_POOL` folders, else
    this one alone); workers are forked where the platform allows, inheriting the loaded trust stores and rules.

    Raises:
        UsageError: ``root`` does not exist or is not a folder, or a tampered folder cannot be removed.
    """
    todo = list(folders) if folders is not None else list(find_package_folders(root))
    workers = jobs if jobs is not None else (os.cpu_count() or 1) if len(todo) >= MIN_FOLDERS_FOR_POOL else 1
    workers = max(1, min(workers, len(todo)))
    results: Iterator[PackageAudit]
    pool: OrderedPool[Path, PackageAudit] | None = None
    if workers > 1:
        settings.scan_rules()  # load once, before the fork
        settings.verifier_for("")
        # jobs processes: this one and jobs-1 workers (nuseal._internal.workers, the engine verify and scan
        # share); forked where the platform allows, even with the progress bar's thread running, as before.
        work = partial(_audit_one, settings)
        pool = OrderedPool(workers, work, setup=(_spawned, (settings,)), fork_with_threads=True)
        results = pool.map(todo, now, max_chunk=max(1, min(8, len(todo) // (workers * 4))))
    else:
        results = (audit_package(folder, settings, now=now) for folder in todo)
    out: list[PackageAudit] = []
    try:
        for n, audit in enumerate(results, start=1):
            if fix and audit.tampered:
                remove_package(audit.folder)
                audit.fixed = True
            out.append(audit)
            if progress is not None:
                progress(n, len(todo))
    finally:
        if pool is not None:
            pool.terminate()
    return out
