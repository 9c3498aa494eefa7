"""Scan results as documents: nuseal's JSON (schema ``nuseal-scan/1``, docs/scan.md) and SARIF 2.1.0.

SARIF (OASIS SARIF 2.1.0, as GitHub code scanning reads it): one run; ``tool.driver.rules`` holds every rule
that has a result (id, name, short/full description, help, ``defaultConfiguration.level``, and
``properties.security-severity`` as a string plus ``tags``); each result has ``ruleId``/``ruleIndex``,
``level``, ``message``, one location and ``partialFingerprints["nusealFinding/v1"]`` =
:meth:`Finding.fingerprint` (stable across runs and versions). Locations: ``nupkg://<id>/<version>/<path>``
for a finding in a .nupkg (the entry path percent-encoded as a URI path; NuGet's own ``%2B`` kept), the file
path for a finding in an extracted folder, the package's source when the finding has no entry path. Suppressed
findings are results with ``suppressions: [{kind: external}]``; stale baseline entries are
``toolExecutionNotifications``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from nuseal import __version__
from nuseal.scan.baseline import Suppression
from nuseal.scan.engine import ScanReport
from nuseal.scan.model import Finding, Rule, Severity
from nuseal.scan.rules import RuleSet

__all__ = ["JSON_SCHEMA_ID", "SARIF_SCHEMA", "finding_uri", "json_document", "sarif_document"]

JSON_SCHEMA_ID = "nuseal-scan/1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI = "https://github.com/nuseal/nuseal/blob/main/docs/scan.md"
_FINGERPRINT_KEY = "nusealFinding/v1"
_URI_SAFE = "/%!$&'()*+,;=:@-._~"


def finding_uri(finding: Finding, *, extracted: bool) -> str:
    """Where a finding is, as a URI (see the module docstring)."""
    pkg = finding.package
    path = finding.location.path
    if extracted or pkg.id is None:
        full = PurePath(pkg.source, path).as_posix() if path else PurePath(pkg.source).as_posix()
        return quote(full, safe=_URI_SAFE)
    base = f"nupkg://{quote(pkg.id, safe='')}/{quote(pkg.version or '', safe='')}/"
    return base + (quote(path, safe=_URI_SAFE) if path else "")


def _finding_json(f: Finding, rules: RuleSet) -> dict[str, Any]:
    rule = rules.get(f.rule_id)
    return {
        "rule": f.rule_id,
        "title": rule.title,
        "severity": f.severity.sarif_level,
        "securitySeverity": rule.security_severity,
        "message": f.message,
        "path": f.location.path,
        "line": f.location.line,
        "column": f.location.column,
        "evidence": f.evidence,
        "fileSha256": f.file_sha256,
        "fingerprint": f.fingerprint(),
    }


def json_document(
    reports: Sequence[ScanReport], rules: RuleSet, *, stale: Sequence[Suppression] = ()
) -> dict[str, Any]:
    """The ``nuseal-scan/1`` JSON document (docs/scan.md)."""
    counts = {s.sarif_level: 0 for s in Severity}
    suppressed = 0
    packages = []
    for r in reports:
        for f in r.findings:
            counts[f.severity.sarif_level] += 1
        suppressed += len(r.suppressed)
        packages.append(
            {
                "id": r.package.id,
                "version": r.package.version,
                "source": r.package.source,
                "findings": [_finding_json(f, rules) for f in r.findings],
                "suppressed": [_finding_json(f, rules) for f in r.suppressed],
                "dropped": r.dropped,
            }
        )
    return {
        "schema": JSON_SCHEMA_ID,
        "tool": {"name": "nuseal", "version": __version__},
        "packages": packages,
        "summary": {"packages": len(reports), "findings": counts, "suppressed": suppressed},
        "staleSuppressions": [s.to_json() for s in stale],
    }


def _rule_sarif(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(w[:1].upper() + w[1:] for w in rule.title.replace("-", " ").split() if w.isascii()),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": f"**{rule.title}**\n\n{rule.help}"},
        "defaultConfiguration": {"level": rule.severity.sarif_level},
        "properties": {
            "security-severity": f"{rule.security_severity:.1f}",
            "tags": ["security", "supply-chain", "nuget", rule.area or "scan"],
            "precision": "medium",
        },
    }


def _result_sarif(f: Finding, rule_index: int, *, extracted: bool, suppressed: bool) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": finding_uri(f, extracted=extracted)}}
    if f.location.line is not None:
        region: dict[str, Any] = {"startLine": f.location.line}
        if f.location.column is not None:
            region["startColumn"] = f.location.column
        if f.evidence:
            region["snippet"] = {"text": f.evidence}
        physical["region"] = region
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": f.severity.sarif_level,
        "message": {"text": f.message + (f"\nEvidence: {f.evidence}" if f.evidence else "")},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {_FINGERPRINT_KEY: f.fingerprint()},
        "properties": {
            "packageId": f.package.id,
            "packageVersion": f.package.version,
            "packageSource": f.package.source,
            **({"fileSha256": f.file_sha256} if f.file_sha256 else {}),
        },
    }
    if suppressed:
        result["suppressions"] = [{"kind": "external", "justification": "nuseal scan --baseline"}]
    return result


def sarif_document(
    reports: Sequence[ScanReport],
    rules: RuleSet,
    *,
    stale: Sequence[Suppression] = (),
    extracted_sources: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of ``reports`` (see the module docstring). ``extracted_sources`` names the package
    sources that are extracted folders (their locations are file paths)."""
    used: dict[str, int] = {}
    rule_list: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for r in reports:
        extracted = r.package.source in extracted_sources
        for f, suppressed in [*((f, False) for f in r.findings), *((f, True) for f in r.suppressed)]:
            if f.rule_id not in used:
                used[f.rule_id] = len(rule_list)
                rule_list.append(_rule_sarif(rules.get(f.rule_id)))
            results.append(_result_sarif(f, used[f.rule_id], extracted=extracted, suppressed=suppressed))
    notifications = [
        {
            "level": "warning",
            "message": {
                "text": f"baseline suppression matched nothing: {s.id} {s.version} {s.rule}"
                + (f" {s.path}" if s.path else "")
            },
        }
        for s in stale
    ]
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "nuseal",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": _INFO_URI,
                        "rules": rule_list,
                    }
                },
                "invocations": [invocation],
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
