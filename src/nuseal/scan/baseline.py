"""Suppressions: findings a reviewer has accepted, kept in a baseline file (``nuseal scan --baseline FILE``).

The file is JSON::

    {
      "version": 1,
      "suppressions": [
        {"id": "Fody", "version": "*", "rule": "NS2601",
         "sha256": "9f2c...",            # optional: the file's SHA-256 (Finding.file_sha256)
         "path": "build/net452/Fody.targets",   # optional: the entry path
         "reason": "reviewed 2026-12-01: Fody's weaver task"}
      ]
    }

A suppression matches a finding when the package id is equal (case-insensitive), the version is ``*`` or equal to
the normalized version (case-insensitive), the rule is equal, and -- when given -- ``sha256`` equals the finding's
file hash and ``path`` its entry path. Keying on the file hash means a suppression stops matching when the file
changes, so a new payload in the same file is reported again. A suppression that matched nothing in a run is
*stale* and is reported (it is either obsolete or the package it was written for changed).

:func:`baseline_for` writes the baseline that suppresses a run's findings (``--write-baseline FILE``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nuseal.errors import ConfigError
from nuseal.scan.engine import ScanReport
from nuseal.scan.model import Finding

__all__ = ["Suppression", "apply_baseline", "baseline_for", "parse_baseline"]


@dataclass(frozen=True, slots=True)
class Suppression:
    """One accepted finding shape (see the module docstring)."""

    id: str
    version: str
    rule: str
    sha256: str | None = None
    path: str | None = None
    reason: str = ""

    def matches(self, finding: Finding) -> bool:
        pkg = finding.package
        if finding.rule_id != self.rule or (pkg.id or "").casefold() != self.id.casefold():
            return False
        if self.version != "*" and (pkg.version or "").lower() != self.version.lower():
            return False
        if self.sha256 is not None and (finding.file_sha256 or "").lower() != self.sha256.lower():
            return False
        return self.path is None or finding.location.path == self.path

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "version": self.version, "rule": self.rule}
        if self.sha256:
            out["sha256"] = self.sha256
        if self.path:
            out["path"] = self.path
        if self.reason:
            out["reason"] = self.reason
        return out


def parse_baseline(data: bytes, *, label: str = "baseline") -> list[Suppression]:
    """Read a baseline document.

    Raises:
        ConfigError: not JSON, not the shape above, a missing or non-string field (names the entry).
    """
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{label} is not JSON: {exc}") from exc
    items = doc.get("suppressions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{label}: expected an object with a 'suppressions' array")
    out: list[Suppression] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{label}: suppression #{i + 1} is not an object")
        for key in ("id", "version", "rule"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ConfigError(f"{label}: suppression #{i + 1} needs a string '{key}'")
        for key in ("sha256", "path", "reason"):
            if key in item and item[key] is not None and not isinstance(item[key], str):
                raise ConfigError(f"{label}: suppression #{i + 1}: '{key}' must be a string")
        out.append(
            Suppression(
                id=item["id"],
                version=item["version"],
                rule=item["rule"],
                sha256=item.get("sha256") or None,
                path=item.get("path") or None,
                reason=item.get("reason") or "",
            )
        )
    return out


def apply_baseline(reports: Iterable[ScanReport], suppressions: Sequence[Suppression]) -> list[Suppression]:
    """Move matching findings of each report to ``report.suppressed``; return the stale suppressions
    (those that matched nothing), in file order."""
    used: set[int] = set()
    for report in reports:
        kept: list[Finding] = []
        for finding in report.findings:
            hit = next((i for i, s in enumerate(suppressions) if s.matches(finding)), None)
            if hit is None:
                kept.append(finding)
            else:
                used.add(hit)
                report.suppressed.append(finding)
        report.findings = kept
    return [s for i, s in enumerate(suppressions) if i not in used]


def baseline_for(reports: Iterable[ScanReport], *, reason: str = "") -> dict[str, Any]:
    """A baseline document suppressing every finding of ``reports`` (exact version, file hash and path)."""
    seen: set[tuple[Any, ...]] = set()
    out: list[dict[str, Any]] = []
    for report in reports:
        for f in [*report.findings, *report.suppressed]:
            if f.package.id is None:
                continue
            s = Suppression(f.package.id, f.package.version or "*", f.rule_id, f.file_sha256, f.location.path, reason)
            key = (s.id.lower(), s.version, s.rule, s.sha256, s.path)
            if key not in seen:
                seen.add(key)
                out.append(s.to_json())
    return {"version": 1, "suppressions": out}
