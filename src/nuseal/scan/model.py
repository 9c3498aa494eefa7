"""The scan engine's result types: findings, their severity and where they were seen.

Every analyser of :mod:`nuseal.scan` (PowerShell, MSBuild, compiled code, look-alike ids, known-bad
versions) returns :class:`Finding` values; the command, the restore gate and the feed's ingestion read
them and never match message text. Severities follow SARIF 2.1.0's ``level`` (``note`` / ``warning`` /
``error``) plus GitHub code scanning's ``security-severity`` (a number from 0.0 to 10.0 in the rule's
``properties``; GitHub maps >= 9.0 to critical, >= 7.0 high, >= 4.0 medium, else low).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

__all__ = ["Finding", "Location", "PackageRef", "Rule", "Severity"]


class Severity(enum.IntEnum):
    """A finding's level, ordered so that ``severity >= fail_on`` decides the exit code.

    Values are SARIF 2.1.0 ``result.level`` names (§3.27.10) through :attr:`sarif_level`.
    """

    NOTE = 1
    WARNING = 2
    ERROR = 3

    @property
    def sarif_level(self) -> str:
        """The SARIF ``level`` string: ``"note"``, ``"warning"`` or ``"error"``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"note"``/``"warning"``/``"error"`` (any case) to a severity; raises ``ValueError`` otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (expected note, warning or error)") from None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the rules file: a stable id (``NS1001``...), what it finds and why it matters.

    ``security_severity`` is GitHub code scanning's number (0.0-10.0) for this rule.
    """

    id: str
    title: str
    severity: Severity
    security_severity: float
    help: str
    #: Which analyser reads the ``patterns`` (``"powershell"``, ``"msbuild"``, ``"files"``...; the rules
    #: file's ``area``); the syntax of a pattern is the analyser's (see :mod:`nuseal.scan.rules`).
    area: str = ""
    patterns: tuple[str, ...] = ()
    #: ``False`` when a user rules file turned the rule off: its findings are dropped.
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class PackageRef:
    """The package a finding belongs to: its id and normalized version as the nuspec gives them
    (``None`` when the nuspec could not be read), and where it was read from (file or folder path, or URL)."""

    id: str | None
    version: str | None
    source: str


@dataclass(frozen=True, slots=True)
class Location:
    """Where inside a package: the entry path as stored in the archive (forward slashes), and the
    1-based ``line`` and ``column`` when the finding is in text (``None`` for a whole file or the id)."""

    path: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the scan saw.

    ``rule_id`` names a :class:`Rule`; ``severity`` is normally the rule's, but an analyser may raise or
    lower it for one finding (a download cradle that is also executed). ``evidence`` is the exact
    snippet (bounded, at most 200 characters, control characters escaped) a reviewer reads to judge it.
    ``file_sha256`` is the hex SHA-256 of the file the finding is in (``None`` for package-level
    findings), used by suppressions so that a suppression stops matching when the file changes.
    """

    rule_id: str
    severity: Severity
    message: str
    package: PackageRef
    location: Location = field(default_factory=Location)
    evidence: str = ""
    file_sha256: str | None = None

    def fingerprint(self) -> str:
        """A fingerprint stable across runs and machines (SARIF ``partialFingerprints``): the rule, the
        package id (case-folded), the entry path and the evidence; not the version, line or source path,
        so that a finding carried into a new version keeps its fingerprint."""
        parts = [
            self.rule_id,
            (self.package.id or "").casefold(),
            self.location.path or "",
            self.evidence,
        ]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]
