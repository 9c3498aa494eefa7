"""The feed's ``VulnerabilityInfo/6.7.0`` resource and the OSV "known bad" lookup used by the mirror's ingestion.

Both come from the OSV records loaded offline with ``--osv DIR`` (OpenSSF malicious-packages and GitHub
advisories, ecosystem NuGet), read by the scan engine's loader (:class:`nuseal.scan.osv.OsvDatabase`).

**Format** (NuGet docs, ``docs/api/vulnerability-info.md``; NuGet.Client ``NuGet.Protocol/Resources/
VulnerabilityInfoResourceV3.cs``, ``Model/V3VulnerabilityIndexEntry.cs``, ``Model/VulnerabilityInfo.cs``):

- the *index* (the URL the service index gives for ``VulnerabilityInfo/6.7.0``) is a JSON array of 1 to 16
  ``{"@name", "@id", "@updated", "comment"}`` objects; ``@name`` is unique, 1-32 characters of
  ``[A-Za-z0-9_-]`` (NuGet uses it as its HTTP cache key), ``@id`` an absolute URL, ``@updated`` ISO 8601;
- each *data file* is a JSON object: lower-case package id (``ToLowerInvariant``) -> array of
  ``{"url", "severity", "versions"}``, severity 0 low, 1 moderate, 2 high, 3 critical, ``versions`` a NuGet
  version range string. NuGet reads every file of the index and uses their union; no file can remove or change
  an entry of another.

nuseal follows the documented partitioning: ``base`` holds the advisories whose OSV ``modified`` time is before
the first instant of the current month (UTC; so it changes about once a month), ``update`` the ones modified
since. ``@updated`` is, for NuGet, "a string that can be used to determine if a previously cached value is no
longer up-to-date" (``V3VulnerabilityIndexEntry.Updated``): the feed (:func:`write_documents`) sets it to the time
it last changed the file's bytes, kept across restarts while they stay the same; :meth:`VulnerabilityInfo.documents`
alone uses the latest ``modified`` among the file's advisories (the cut-off for an empty file), so the same OSV data
gives the same documents byte for byte.

**Ranges.** An OSV ``affected[]`` entry becomes one data-file item per interval: the events of each
``ECOSYSTEM``/``SEMVER`` range (sorted by NuGet version order, as :mod:`nuseal.scan.osv` keeps them) are walked as
the OSV schema's evaluation does, ``introduced`` opening an interval (``"0"``: no lower bound) and ``fixed`` /
``limit`` closing it exclusively, ``last_affected`` inclusively; an interval still open at the end has no upper
bound. ``introduced 0, fixed 13.0.1`` -> ``(, 13.0.1)``; ``introduced 1.0, last_affected 1.2`` ->
``[1.0.0, 1.2.0]``; ``introduced 0`` alone (a malicious package) -> ``(, )``. Each version of an explicit
``versions`` list that no interval covers becomes ``[v, v]``. Every string is NuGet's normalized form
(:attr:`VersionRange.normalized`) and is parsed back with :meth:`VersionRange.parse` to the same bounds before
it is written. Listed versions that are not NuGet versions cannot be written as a range (nor be any package's
version): they are left out and named in :attr:`VulnerabilityInfo.problems`.

**Severity**: GitHub's ``database_specific.severity`` (``LOW`` 0, ``MODERATE`` 1, ``HIGH`` 2, ``CRITICAL`` 3);
else the CVSS base score's qualitative rating (CVSS v3.1 specification, section 5: < 4.0 low, < 7.0 medium,
< 9.0 high, else critical); else moderate. Malicious records (``MAL-*``) are always critical. NuGet's audit
reports them as NU1901 (low) to NU1904 (critical).
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from nuseal.feed.protocol.documents import VULNERABILITY_INFO_PREFIX
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange
from nuseal.scan.osv import Advisory, OsvDatabase

if TYPE_CHECKING:
    from nuseal.feed.publish.submission import SetupHook, StageContext
    from nuseal.feed.store.storage import Storage

__all__ = [
    "BASE",
    "RESOURCE_TYPE",
    "UPDATE",
    "KnownBad",
    "VulnerabilityEntry",
    "VulnerabilityFile",
    "VulnerabilityInfo",
    "VulnerabilitySeverity",
    "nuget_ranges",
    "setup_hook",
    "severity_of",
    "write_documents",
]

log = logging.getLogger(__name__)

#: The service index ``@type`` (NuGet ``ServiceTypes.VulnerabilityInfo``).
RESOURCE_TYPE = "VulnerabilityInfo/6.7.0"
#: The two data files' ``@name`` values (NuGet docs' suggested partitioning).
BASE = "base"
UPDATE = "update"
#: NuGet's rule for ``@name`` (1-32 characters of ``[A-Za-z0-9_-]``).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_LABELS = {"LOW": 0, "MODERATE": 1, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}
#: Content type of the three documents.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class VulnerabilitySeverity(enum.IntEnum):
    """NuGet's ``PackageVulnerabilitySeverity`` values as the data files carry them."""

    LOW = 0
    MODERATE = 1
    HIGH = 2
    CRITICAL = 3


def severity_of(advisory: Advisory) -> VulnerabilitySeverity:
    """The severity written for ``advisory`` (see the module docstring for the order of sources)."""
    if advisory.malicious:
        return VulnerabilitySeverity.CRITICAL
    if advisory.severity_label in _LABELS:
        return VulnerabilitySeverity(_LABELS[advisory.severity_label])
    score = advisory.cvss_score
    if score is not None:
        if score < 4.0:
            return VulnerabilitySeverity.LOW
        if score < 7.0:
            return VulnerabilitySeverity.MODERATE
        if score < 9.0:
            return VulnerabilitySeverity.HIGH
        return VulnerabilitySeverity.CRITICAL
    return VulnerabilitySeverity.MODERATE


def nuget_ranges(advisory: Advisory) -> list[VersionRange]:
    """The NuGet version ranges covering exactly the versions ``advisory`` affects (those it can name).

    Intervals from the OSV ranges first, in version order, then ``[v, v]`` for each listed version no interval
    covers (in version order). Unparsable listed versions (``advisory.raw_versions``) are not included.
    """
    out: list[VersionRange] = []
    for events in advisory.ranges:
        out.extend(_intervals(events))
    for version in sorted(advisory.versions):
        if not any(r.satisfies(version) for r in out):
            out.append(VersionRange(version, True, version, True))
    return out


def _intervals(events: tuple[tuple[str, NuGetVersion | None], ...]) -> list[VersionRange]:
    """One OSV range's events (sorted) as maximal NuGet ranges, with the OSV evaluation's exact semantics.

    The event versions cut the version line into points and the open stretches between them. At a point ``X``
    the events at ``X`` apply in order, ``introduced`` setting "affected" and ``fixed``/``limit`` clearing it
    (``last_affected X`` still includes ``X``); just above ``X``, ``last_affected`` clears it too. Consecutive
    affected pieces are joined into one range (``introduced 1.0, last_affected 1.2`` -> ``[1.0, 1.2]``).
    """
    state = any(kind == "introduced" and at is None for kind, at in events)  # introduced "0": from the start
    groups: list[tuple[NuGetVersion, list[str]]] = []
    for kind, at in events:
        if at is None:
            continue
        if groups and groups[-1][0] == at:
            groups[-1][1].append(kind)
        else:
            groups.append((at, [kind]))
    # Pieces in order: (low bound version or None, low inclusive, affected) for "the stretch before the first point",
    # then for each point X: the point itself and the stretch above it.
    pieces: list[tuple[NuGetVersion | None, bool, bool]] = [(None, False, state)]
    for at, kinds in groups:
        at_point = above = state
        for kind in kinds:
            if kind == "introduced":
                at_point = above = True
            elif kind in ("fixed", "limit"):
                at_point = above = False
            elif kind == "last_affected":
                above = False
        pieces += [(at, True, at_point), (at, False, above)]
        state = above
    out: list[VersionRange] = []
    low: tuple[NuGetVersion | None, bool] | None = None
    for i, (at, inclusive, affected) in enumerate(pieces):
        if affected and low is None:
            low = (at, inclusive)
        elif not affected and low is not None:
            # Closing at a point X: up to X exclusive; closing at the stretch above X: up to X inclusive.
            end = pieces[i][0]
            assert end is not None  # only the first piece has no version, and it cannot close a range
            out.append(VersionRange(low[0], low[1], end, not inclusive))
            low = None
    if low is not None:
        out.append(VersionRange(low[0], low[1], None, False))
    return out


class KnownBad(NamedTuple):
    """What the OSV data says about one package version: ``(malicious, vulnerable)`` advisories."""

    malicious: tuple[Advisory, ...]
    vulnerable: tuple[Advisory, ...]

    def __bool__(self) -> bool:
        return bool(self.malicious or self.vulnerable)


@dataclass(frozen=True)
class VulnerabilityEntry:
    """One item of a data file's per-id array."""

    url: str
    versions: str
    severity: VulnerabilitySeverity

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "severity": int(self.severity), "versions": self.versions}


@dataclass(frozen=True)
class VulnerabilityFile:
    """One data file: its index ``@name``, ``@updated`` and ``comment``, and lower-case id -> entries."""

    name: str
    updated: datetime
    comment: str
    packages: Mapping[str, tuple[VulnerabilityEntry, ...]]

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {pid: [e.to_json() for e in entries] for pid, entries in self.packages.items()}

    def content(self) -> bytes:
        """The file's bytes (UTF-8 JSON; ids sorted; entries by advisory URL, then in version order)."""
        return _dump(self.to_json())


class VulnerabilityInfo:
    """The ``VulnerabilityInfo`` documents and the known-bad lookup over one loaded OSV database.

    ``as_of`` (aware datetime) places the ``base``/``update`` cut-off at the first instant of its month (UTC);
    ``base_before`` sets the cut-off itself. Nothing here reads the clock, the network or the disk, except
    :meth:`load`, which reads the OSV folder.
    """

    def __init__(self, db: OsvDatabase, *, as_of: datetime, base_before: datetime | None = None) -> None:
        if as_of.tzinfo is None or (base_before is not None and base_before.tzinfo is None):
            raise ValueError("as_of and base_before must be timezone-aware datetimes")
        self.db = db
        moment = as_of.astimezone(UTC)
        self.base_before = (
            base_before.astimezone(UTC)
            if base_before is not None
            else moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        )
        #: Advisory parts that could not be written as NuGet ranges (listed versions that are not NuGet versions).
        self.problems: list[str] = []
        base: dict[str, dict[VulnerabilityEntry, None]] = {}
        update: dict[str, dict[VulnerabilityEntry, None]] = {}
        base_times: list[datetime] = []
        update_times: list[datetime] = []
        base_ids: set[str] = set()
        update_ids: set[str] = set()
        for advisories in db.by_id.values():
            for advisory in advisories:
                entries = self._entries(advisory)
                if not entries:
                    continue
                in_update = advisory.modified is not None and advisory.modified >= self.base_before
                target, times, ids = (update, update_times, update_ids) if in_update else (base, base_times, base_ids)
                target.setdefault(advisory.package.lower(), {}).update(dict.fromkeys(entries))
                ids.add(advisory.id)
                if advisory.modified is not None:
                    times.append(advisory.modified)
        cut = _iso(self.base_before)
        self.files: tuple[VulnerabilityFile, ...] = (
            _file(BASE, base, base_times, self.base_before, f"{len(base_ids)} OSV advisories modified before {cut}"),
            _file(
                UPDATE, update, update_times, self.base_before, f"{len(update_ids)} OSV advisories modified since {cut}"
            ),
        )

    @classmethod
    def load(cls, path: Path | str, *, as_of: datetime) -> VulnerabilityInfo:
        """Read the OSV records under folder (or zip) ``path`` and build the documents.

        Raises:
            ConfigError: ``path`` cannot be read (names the ``--osv`` argument).
        """
        return cls(OsvDatabase.load(path), as_of=as_of)

    def _entries(self, advisory: Advisory) -> list[VulnerabilityEntry]:
        severity = severity_of(advisory)
        entries = []
        for rng in nuget_ranges(advisory):
            text = rng.normalized
            back = VersionRange.try_parse(text, allow_floating=False)
            if back is None or _bounds(back) != _bounds(rng):
                self.problems.append(f"{advisory.id} {advisory.package}: range {text!r} does not parse back")
                continue
            entries.append(VulnerabilityEntry(advisory.url, text, severity))
        for raw in sorted(advisory.raw_versions):
            self.problems.append(
                f"{advisory.id} {advisory.package}: version {raw!r} is not a NuGet version; "
                "left out of VulnerabilityInfo"
            )
        return entries

    def known_bad(self, package_id: str, version: NuGetVersion | str) -> KnownBad:
        """The advisories affecting ``package_id`` (any case) at ``version``, split into malicious (``MAL-*``:
        refuse the version) and vulnerable (serve it, listed in VulnerabilityInfo); one per advisory id.

        An unparsable version string matches nothing (ingestion has parsed the version before asking).
        """
        malicious: dict[str, Advisory] = {}
        vulnerable: dict[str, Advisory] = {}
        for advisory in self.db.match(package_id, version):
            (malicious if advisory.malicious else vulnerable).setdefault(advisory.id, advisory)
        return KnownBad(tuple(malicious.values()), tuple(vulnerable.values()))

    def entries(self, package_id: str) -> tuple[VulnerabilityEntry, ...]:
        """Every data-file entry for ``package_id`` (any case), from both files."""
        key = package_id.lower()
        return tuple(e for f in self.files for e in f.packages.get(key, ()))

    def index(self, base_url: str, *, updated: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """The index document: one entry per data file, ``@id`` = ``base_url`` + ``<name>.json``; ``updated`` gives
        ``@updated`` values by file name (default: the latest ``modified`` of the file's advisories).

        Raises:
            ValueError: ``base_url`` is not an absolute http(s) URL ending in ``/`` (NuGet requires absolute
                ``@id`` values).
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or not base_url.endswith("/"):
            raise ValueError(f"the VulnerabilityInfo base URL {base_url!r} must be an absolute http(s) URL ending in /")
        out = []
        for f in self.files:
            if not _NAME.fullmatch(f.name):  # pragma: no cover - both names are constants
                raise ValueError(f"{f.name!r} is not a valid vulnerability file name")
            out.append(
                {
                    "@name": f.name,
                    "@id": f"{base_url}{f.name}.json",
                    "@updated": (updated or {}).get(f.name) or _iso(f.updated),
                    "comment": f.comment,
                }
            )
        return out

    def documents(self, base_url: str, *, updated: Mapping[str, str] | None = None) -> dict[str, bytes]:
        """``{"index.json": ..., "base.json": ..., "update.json": ...}``: the bytes to serve under ``base_url``.

        Raises:
            ValueError: as :meth:`index`.
        """
        docs = {"index.json": _dump(self.index(base_url, updated=updated))}
        for f in self.files:
            docs[f"{f.name}.json"] = f.content()
        return docs


def _file(
    name: str,
    packages: dict[str, dict[VulnerabilityEntry, None]],
    times: Iterable[datetime],
    cut: datetime,
    comment: str,
) -> VulnerabilityFile:
    ordered = {pid: tuple(sorted(packages[pid], key=lambda e: e.url)) for pid in sorted(packages)}
    return VulnerabilityFile(name, max(times, default=cut), f"{comment}, {len(ordered)} package ids", ordered)


def _bounds(r: VersionRange) -> tuple[object, ...]:
    return (r.min_version, r.is_min_inclusive, r.max_version, r.is_max_inclusive)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dump(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------- serving
def write_documents(storage: Storage, folder_url: str, info: VulnerabilityInfo | None, *, now: datetime) -> list[str]:
    """Store the documents of ``info`` under :data:`VULNERABILITY_INFO_PREFIX`, where the feed serves them as static
    files (``folder_url`` is that folder's public URL, ending in ``/``); ``None`` removes them.

    A data file whose bytes are unchanged keeps the ``@updated`` the stored index gives it, and is not rewritten (its
    ETag stays); a new or changed one gets ``now`` (aware). Data files are written before the index that names them,
    durably. Returns the keys written.

    Raises:
        ValueError: ``folder_url`` is not absolute (see :meth:`VulnerabilityInfo.index`).
    """
    if info is None:
        for key in storage.list_keys(VULNERABILITY_INFO_PREFIX):
            storage.delete(key)
        return []
    index_key = f"{VULNERABILITY_INFO_PREFIX}index.json"
    previous = _previous_updated(storage.read_bytes(index_key))
    updated: dict[str, str] = {}
    written = []
    for f in info.files:
        key, content = f"{VULNERABILITY_INFO_PREFIX}{f.name}.json", f.content()
        if storage.read_bytes(key) == content and f.name in previous:
            updated[f.name] = previous[f.name]
            continue
        storage.put_bytes(key, content, durable=True)
        written.append(key)
        updated[f.name] = _iso(now)
    index = _dump(info.index(folder_url, updated=updated))
    if storage.read_bytes(index_key) != index:
        storage.put_bytes(index_key, index, durable=True)
        written.append(index_key)
    return written


def _previous_updated(index: bytes | None) -> dict[str, str]:
    """``@name`` -> ``@updated`` of a stored index (``{}`` when absent or not one nuseal wrote)."""
    try:
        entries = json.loads(index) if index else []
    except ValueError:
        return {}
    if not isinstance(entries, list):
        return {}
    return {
        e["@name"]: e["@updated"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("@name"), str) and isinstance(e.get("@updated"), str)
    }


def setup_hook(osv_path: str | Path | None) -> SetupHook:
    """The feed's setup hook for ``--osv``: at each start, load the OSV records (as of the feed's clock) and write
    the ``VulnerabilityInfo/6.7.0`` documents the service index lists (:func:`write_documents`); without
    ``osv_path``, remove the documents an earlier start wrote.

    The hook raises ``ConfigError`` when the OSV folder cannot be read (the feed does not start).
    """

    def refresh(context: StageContext) -> None:
        info = VulnerabilityInfo.load(osv_path, as_of=context.clock()) if osv_path is not None else None
        for problem in info.problems[:20] if info is not None else ():
            log.warning("VulnerabilityInfo: %s", problem)
        write_documents(context.storage, context.urls.vulnerability_info, info, now=context.clock())

    return refresh
