"""Known-bad versions: the package id and version against OSV records loaded offline (``--osv DIR|ZIP``).

Reads OSV JSON records (schema: https://ossf.github.io/osv-schema/, 1.x) from a folder (recursively,
``*.json``) or a ``.zip`` of them (as OSV's ``NuGet/all.zip`` export or a checkout of
``ossf/malicious-packages``), keeps the ``affected[]`` entries whose ``package.ecosystem`` is ``NuGet``,
and indexes them by case-folded package id (NuGet ids are case-insensitive). Nothing is fetched.

A version is affected by an ``affected[]`` entry when it is listed in ``versions`` (compared as NuGet
versions: ``1.0`` equals ``1.0.0``, labels case-insensitive), or when a range of type ``ECOSYSTEM`` (or
``SEMVER``) covers it: events sorted by NuGet version order (``introduced: "0"`` first), then walked as the
OSV schema's evaluation pseudo-code does: ``introduced`` <= v turns affected on, ``fixed`` <= v or
``last_affected`` < v (or ``limit`` <= v) turns it off. Event versions that are not NuGet versions are
skipped (and counted in :attr:`OsvDatabase.problems`). Withdrawn records are ignored.

Findings (``rules/advisories.toml``): **NS6001** (error) for OpenSSF malicious-packages records
(``MAL-*``); **NS6002** (warning) for GitHub advisories (``GHSA-*``) and other vulnerability records,
lowered to a note when the advisory's severity is low (``database_specific.severity`` ``LOW``, or a CVSS
base score under 4.0 computed with the ``cvss`` library from ``severity[]``).
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuseal.errors import ConfigError, PackageFormatError
from nuseal.package.version import NuGetVersion
from nuseal.scan.model import Finding, Location, Severity

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext
    from nuseal.scan.package import ScanPackage
    from nuseal.scan.rules import RuleSet

__all__ = ["MAX_RECORD_SIZE", "Advisory", "OsvDatabase", "advisory_url", "analysers"]

log = logging.getLogger(__name__)

#: Largest OSV record read (bytes); real records are a few KB.
MAX_RECORD_SIZE = 4 << 20
#: Most records read from one folder or zip.
MAX_RECORDS = 2_000_000
_SEVERITY_WORDS = {"LOW": 2.0, "MODERATE": 5.0, "MEDIUM": 5.0, "HIGH": 8.0, "CRITICAL": 9.5}


@dataclass(frozen=True)
class Advisory:
    """One OSV record's ``affected[]`` entry for a NuGet package, ready to match versions."""

    id: str
    package: str
    summary: str
    aliases: tuple[str, ...]
    #: Explicit versions (parsed), and those that did not parse (compared case-insensitively as text).
    versions: frozenset[NuGetVersion]
    raw_versions: frozenset[str]
    #: Each range: events as ``(kind, version or None for "0")``, sorted by NuGet order.
    ranges: tuple[tuple[tuple[str, NuGetVersion | None], ...], ...]
    severity_label: str | None = None
    cvss_score: float | None = None
    fixed: tuple[str, ...] = ()
    #: Where a person reads the advisory (see :func:`advisory_url`), and the record's ``modified`` time (UTC;
    #: ``None`` when absent or not RFC 3339).
    url: str = ""
    modified: datetime | None = None

    @property
    def malicious(self) -> bool:
        """An OpenSSF malicious-packages record (``MAL-*``)."""
        return self.id.upper().startswith("MAL-")

    def affects(self, version: NuGetVersion) -> bool:
        """Whether ``version`` is listed or inside one of the ranges (see the module docstring)."""
        if version in self.versions:
            return True
        if self.raw_versions and version.normalized.casefold() in self.raw_versions:
            return True
        for events in self.ranges:
            affected = False
            for kind, at in events:
                if kind == "introduced":
                    if at is None or version >= at:
                        affected = True
                elif at is None:
                    continue
                elif version > at or (version == at and kind in {"fixed", "limit"}):
                    affected = False  # fixed/limit at or below v, or last_affected below v
            if affected:
                return True
        return False

    def describe(self) -> str:
        """``introduced 0, fixed 2.0.0``-style text of the ranges, or the listed versions."""
        parts = []
        for events in self.ranges:
            parts.append(", ".join(f"{k} {v.normalized if v else '0'}" for k, v in events))
        if self.versions or self.raw_versions:
            listed = sorted({v.normalized for v in self.versions} | set(self.raw_versions))
            parts.append("versions " + ", ".join(listed[:5]) + (" ..." if len(listed) > 5 else ""))
        return "; ".join(parts)


@dataclass
class OsvDatabase:
    """OSV advisories for NuGet packages, indexed by case-folded id. Build with :meth:`load`."""

    by_id: dict[str, list[Advisory]] = field(default_factory=dict)
    #: Records read (all ecosystems) and problems met (unreadable file, bad version in an event).
    records: int = 0
    problems: list[str] = field(default_factory=list)
    #: The files (paths, or names inside the zip) skipped whole: not JSON, not an OSV record, or too large.
    unreadable: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str) -> OsvDatabase:
        """Read every ``*.json`` record under folder ``path``, or in zip file ``path``.

        Raises:
            ConfigError: ``path`` does not exist or is neither a folder nor a readable zip.
        """
        db = cls()
        root = Path(path)
        if root.is_dir():
            db._add_all(db._folder(root))
        elif root.is_file() and zipfile.is_zipfile(root):
            try:
                with zipfile.ZipFile(root) as zf:
                    db._add_all(db._zip(zf))
            except (OSError, zipfile.BadZipFile) as exc:
                raise ConfigError(f"--osv {path}: cannot read the zip: {exc}") from exc
        elif root.exists():
            raise ConfigError(f"--osv {path}: not a folder or a zip of OSV records")
        else:
            raise ConfigError(f"--osv {path}: no such file or folder")
        for problem in db.problems[:20]:
            log.warning("OSV: %s", problem)
        return db

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> OsvDatabase:
        """A database of already-parsed records (tests, callers holding the JSON)."""
        db = cls()
        db._add_all(("<memory>", r) for r in records)
        return db

    def _folder(self, root: Path) -> Iterator[tuple[str, Any]]:
        for file in sorted(root.rglob("*.json")):
            if not file.is_file() or file.is_symlink():
                continue
            if file.stat().st_size > MAX_RECORD_SIZE:
                self.problems.append(f"{file}: over {MAX_RECORD_SIZE} bytes, skipped")
                self.unreadable.append(str(file))
                continue
            yield str(file), file.read_bytes()

    def _zip(self, zf: zipfile.ZipFile) -> Iterator[tuple[str, Any]]:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.lower().endswith(".json"):
                continue
            if info.file_size > MAX_RECORD_SIZE:
                self.problems.append(f"{info.filename}: over {MAX_RECORD_SIZE} bytes, skipped")
                self.unreadable.append(info.filename)
                continue
            with zf.open(info) as fh:
                data = fh.read(MAX_RECORD_SIZE + 1)
            if len(data) > MAX_RECORD_SIZE:
                self.problems.append(f"{info.filename}: over {MAX_RECORD_SIZE} bytes, skipped")
                self.unreadable.append(info.filename)
                continue
            yield info.filename, data

    def _add_all(self, items: Iterable[tuple[str, Any]]) -> None:
        for name, raw in items:
            if self.records >= MAX_RECORDS:
                self.problems.append(f"more than {MAX_RECORDS} records; the rest skipped")
                return
            try:
                record = json.loads(raw) if isinstance(raw, bytes | str) else raw
            except (ValueError, UnicodeDecodeError) as exc:
                self.problems.append(f"{name}: not JSON ({exc})")
                self.unreadable.append(name)
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                self.problems.append(f"{name}: not an OSV record (no 'id')")
                self.unreadable.append(name)
                continue
            self.records += 1
            self._add(name, record)

    def _add(self, name: str, record: dict[str, Any]) -> None:
        if record.get("withdrawn"):
            return
        affected = record.get("affected")
        if not isinstance(affected, list):
            return
        label, score = _severity(record)
        url, modified = advisory_url(record), _timestamp(record.get("modified"))
        aliases = tuple(a for a in record.get("aliases") or () if isinstance(a, str))
        for entry in affected:
            if not isinstance(entry, dict):
                continue
            pkg = entry.get("package")
            if not isinstance(pkg, dict) or str(pkg.get("ecosystem", "")).casefold() != "nuget":
                continue
            pid = pkg.get("name")
            if not isinstance(pid, str) or not pid.strip():
                continue
            versions, raw_versions = set(), set()
            for v in entry.get("versions") or ():
                if not isinstance(v, str):
                    continue
                parsed = _version(v)
                if parsed is None:
                    raw_versions.add(v.strip().casefold())
                else:
                    versions.add(parsed)
            ranges, fixed = [], []
            for rng in entry.get("ranges") or ():
                if not isinstance(rng, dict) or str(rng.get("type", "")).upper() not in {"ECOSYSTEM", "SEMVER"}:
                    continue
                events: list[tuple[str, NuGetVersion | None]] = []
                for event in rng.get("events") or ():
                    if not isinstance(event, dict) or len(event) != 1:
                        continue
                    ((kind, value),) = event.items()
                    if kind not in {"introduced", "fixed", "last_affected", "limit"} or not isinstance(value, str):
                        continue
                    if kind == "introduced" and value.strip() == "0":
                        events.append((kind, None))
                        continue
                    parsed = _version(value)
                    if parsed is None:
                        self.problems.append(f"{name}: {record['id']}: {kind} {value!r} is not a NuGet version")
                        continue
                    events.append((kind, parsed))
                    if kind == "fixed":
                        fixed.append(parsed.normalized)
                events.sort(key=_event_key)
                if events:
                    ranges.append(tuple(events))
            advisory = Advisory(
                id=record["id"],
                package=pid.strip(),
                summary=str(record.get("summary") or record.get("details") or "")[:300],
                aliases=aliases,
                versions=frozenset(versions),
                raw_versions=frozenset(raw_versions),
                ranges=tuple(ranges),
                severity_label=label,
                cvss_score=score,
                fixed=tuple(fixed),
                url=url,
                modified=modified,
            )
            self.by_id.setdefault(pid.strip().casefold(), []).append(advisory)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_id.values())

    def match(self, package_id: str, version: NuGetVersion | str) -> list[Advisory]:
        """The advisories affecting ``package_id`` (any case) at ``version``; ``[]`` for an unparsable version."""
        candidates = self.by_id.get(package_id.strip().casefold())
        if not candidates:
            return []
        v = _version(version) if isinstance(version, str) else version
        if v is None:
            return []
        return [a for a in candidates if a.affects(v)]


def _event_key(event: tuple[str, NuGetVersion | None]) -> tuple[int] | tuple[int, NuGetVersion]:
    at = event[1]
    return (0,) if at is None else (1, at)  # introduced "0" first, then NuGet version order (stable sort)


def _version(text: str) -> NuGetVersion | None:
    try:
        return NuGetVersion.parse(text)
    except PackageFormatError:
        return None


def advisory_url(record: dict[str, Any]) -> str:
    """The page a person reads for OSV ``record``: ``https://github.com/advisories/<id>`` for a GitHub advisory
    (``GHSA-*``, the form nuget.org's ``advisoryUrl`` uses), else the record's first ``ADVISORY`` reference,
    else ``https://osv.dev/vulnerability/<id>`` (OpenSSF malicious-packages records are published there)."""
    rid = str(record.get("id", "")).strip()
    if rid.upper().startswith("GHSA-"):
        return f"https://github.com/advisories/{rid}"
    for ref in record.get("references") or ():
        if isinstance(ref, dict) and str(ref.get("type", "")).upper() == "ADVISORY":
            url = ref.get("url")
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
    return f"https://osv.dev/vulnerability/{rid}"


def _timestamp(value: object) -> datetime | None:
    """An OSV RFC 3339 time (``2024-08-13T05:16:59Z``) as an aware UTC datetime, or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _severity(record: dict[str, Any]) -> tuple[str | None, float | None]:
    """The advisory's severity word (``database_specific.severity``) and CVSS base score, when given."""
    label = None
    specific = record.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        label = specific["severity"].strip().upper() or None
    score = None
    for item in record.get("severity") or ():
        if not isinstance(item, dict) or not isinstance(item.get("score"), str):
            continue
        score = _cvss(str(item.get("type", "")), item["score"])
        if score is not None:
            break
    return label, score


def _cvss(kind: str, vector: str) -> float | None:
    from cvss import CVSS2, CVSS3, CVSS4  # noqa: PLC0415 - only records with a CVSS vector need it
    from cvss.exceptions import CVSSError  # noqa: PLC0415

    calculators = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}
    calc = calculators.get(kind.upper())
    if calc is None:
        return None
    try:
        return float(calc(vector).base_score)
    except (CVSSError, ValueError, KeyError, IndexError):
        return None


def _level(advisory: Advisory, rule_severity: Severity) -> Severity:
    if advisory.malicious:
        return rule_severity
    if advisory.severity_label == "LOW" or (
        advisory.severity_label is None and advisory.cvss_score is not None and advisory.cvss_score < 4.0
    ):
        return Severity.NOTE
    return rule_severity


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """The engine's entry point: one analyser when ``context.osv_path`` is set, else none.

    Raises:
        ConfigError: the OSV path cannot be read (see :meth:`OsvDatabase.load`).
    """
    if not context.osv_path:
        return ()
    db = OsvDatabase.load(context.osv_path)

    def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterator[Finding]:
        if not pkg.ref.id or not pkg.ref.version:
            return
        for adv in db.match(pkg.ref.id, pkg.ref.version):
            rule_id = "NS6001" if adv.malicious else "NS6002"
            if not rules.enabled(rule_id):
                continue
            rule = rules.get(rule_id)
            severity = _level(adv, rule.severity)
            detail = adv.severity_label or (f"CVSS {adv.cvss_score:.1f}" if adv.cvss_score is not None else None)
            fix = f"; fixed in {', '.join(adv.fixed)}" if adv.fixed and not adv.malicious else ""
            yield rules.finding(
                rule_id,
                f"{rule.title}: {adv.id} ({detail or 'severity not given'}) affects {pkg.ref.id} "
                f"{pkg.ref.version}: {adv.summary or 'no summary'}{fix}",
                pkg.ref,
                location=Location(path=_nuspec_path(pkg)),
                evidence=f"{adv.id} {adv.package}: {adv.describe()}",
                severity=severity if severity != rule.severity else None,
            )

    return (analyse,)


def _nuspec_path(pkg: ScanPackage) -> str | None:
    for path in pkg.paths:
        if "/" not in path and path.lower().endswith(".nuspec"):
            return path
    return None
