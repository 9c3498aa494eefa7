"""Rules as data: the scan's rule ids, titles, severities, help texts and patterns, read from TOML.

Built-in rules live in ``nuseal/scan/rules/*.toml`` (package data), one file per area:

============================  ========  ===========================================================
file                          ids       area
============================  ========  ===========================================================
``powershell.toml``           NS1xxx    PowerShell that NuGet runs (``tools/init.ps1``...)
``msbuild.toml``              NS2xxx    MSBuild that NuGet imports (``build/<id>.targets``...)
``files.toml``                NS3xxx    files and their placement in the package
``compiled.toml``             NS4xxx    compiled code (.NET assemblies, native PE)
``identity.toml``             NS5xxx    look-alike package ids
``advisories.toml``           NS6xxx    known-bad versions (OSV)
``scan.toml``                 NS9xxx    the scan itself (unreadable package, ZIP structure, limits)
============================  ========  ===========================================================

A rules file::

    area = "powershell"              # optional; default: the file name without ".toml"

    [[rules]]
    id = "NS1101"                    # unique across all built-in files
    title = "Download cradle"
    severity = "warning"             # note | warning | error (SARIF level)
    security-severity = 7.5          # GitHub code scanning's 0.0-10.0 number
    help = "Why it matters and what to do."
    patterns = ["command:^(iwr|invoke-webrequest)$"]   # optional; syntax defined by the area's analyser
    area = "powershell"              # optional per rule; overrides the file's area

A user rules file (``load_rules(extra=...)``, ``nuseal scan --rules FILE``) has the same shape. For an id
that already exists it may only change ``severity``, ``security-severity`` and ``enabled`` (``false``
turns the rule off), or add ``patterns`` (appended); any other id adds a new rule (``title``, ``severity``
and ``help`` required), which the area's analyser applies through its patterns.

Pattern syntax per area (each pattern is ``"<kind>:<Python regex>"``, matched case-insensitively with
``re.search``):

* ``powershell``: ``command:`` a command name (``iex``, ``Start-Process``, ``powershell.exe``);
  ``member:`` a method or property name after ``.`` or ``::``; ``type:`` a type name in ``[...]`` or given
  to ``New-Object``; ``parameter:`` a command parameter (``-enc``); ``string:`` the value of a string
  literal or bare argument; ``code:`` the script with comments blanked out (for multi-token shapes).
* ``msbuild``: ``code:`` inline task source (C#/VB) with comments blanked; ``command:`` an ``Exec``
  task's command line; ``property-function:`` the text of a property function ``$([Type]::Member(...))``.
* ``files``: ``path:`` an entry path (forward slashes).

Duplicate ids across built-in files raise :class:`RulesError`; so does an unknown key, a bad severity
or a regex that does not compile, naming the file and the rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from nuseal.errors import ConfigError
from nuseal.scan.model import Finding, Location, PackageRef, Rule, Severity

__all__ = [
    "MAX_EVIDENCE",
    "CompiledPattern",
    "RuleSet",
    "RulesError",
    "clip_evidence",
    "load_rules",
]

#: Longest evidence snippet kept in a finding (characters).
MAX_EVIDENCE = 200
_RULE_ID = re.compile(r"^[A-Z]{2,}[0-9]{3,5}$")
_KEYS = {"id", "title", "severity", "security-severity", "help", "patterns", "area", "enabled"}
_OVERRIDE_KEYS = {"id", "severity", "security-severity", "enabled", "patterns"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class RulesError(ConfigError):
    """A rules file is invalid (names the file and the rule)."""


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """One ``"<kind>:<regex>"`` pattern of a rule, compiled (case-insensitive)."""

    rule_id: str
    kind: str
    regex: re.Pattern[str]


def clip_evidence(text: str) -> str:
    """Evidence as findings keep it: whitespace runs collapsed, control and bidi characters escaped
    (``\\x1b``, ``\\u202e``), at most :data:`MAX_EVIDENCE` characters (``…`` marks a cut)."""
    text = " ".join(text.split())
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if len(text) > MAX_EVIDENCE:
        text = text[: MAX_EVIDENCE - 1] + "…"
    return text


class RuleSet:
    """The loaded rules: look-up by id, findings with the rule's severity, patterns per area.

    Immutable once built; safe to share between threads and to pickle into worker processes.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules: dict[str, Rule] = {}
        for rule in rules:
            self._rules[rule.id] = rule
        self._patterns: dict[str, tuple[CompiledPattern, ...]] = {}

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self._rules.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> Rule:
        """The rule ``rule_id``. Raises ``KeyError`` (naming the id) when there is none."""
        try:
            return self._rules[rule_id]
        except KeyError:
            raise KeyError(f"no scan rule {rule_id}") from None

    def enabled(self, rule_id: str) -> bool:
        """Whether findings of ``rule_id`` are kept (unknown ids: ``False``)."""
        rule = self._rules.get(rule_id)
        return rule is not None and rule.enabled

    def area(self, area: str) -> tuple[Rule, ...]:
        """The enabled rules of ``area`` (``"powershell"``...), by id."""
        return tuple(r for r in self if r.area == area and r.enabled)

    def patterns(self, area: str, kind: str | None = None) -> tuple[CompiledPattern, ...]:
        """The compiled patterns of the enabled rules of ``area``, optionally only those of ``kind``."""
        key = f"{area}\x00{kind or ''}"
        found = self._patterns.get(key)
        if found is None:
            found = tuple(
                p for r in self.area(area) for p in _compile(r) if kind is None or p.kind == kind
            )
            self._patterns[key] = found
        return found

    def finding(
        self,
        rule_id: str,
        message: str,
        package: PackageRef,
        *,
        location: Location | None = None,
        evidence: str = "",
        file_sha256: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        """A :class:`Finding` of ``rule_id`` with the rule's severity (or ``severity`` when an analyser raises
        or lowers it for this one finding); ``evidence`` is clipped by :func:`clip_evidence`.

        Raises:
            KeyError: no such rule (a programming error in an analyser, not bad input).
        """
        rule = self.get(rule_id)
        return Finding(
            rule_id=rule_id,
            severity=severity if severity is not None else rule.severity,
            message=message,
            package=package,
            location=location if location is not None else Location(),
            evidence=clip_evidence(evidence),
            file_sha256=file_sha256,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"rules": list(self._rules.values())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._rules = {r.id: r for r in state["rules"]}
        self._patterns = {}


def _compile(rule: Rule) -> list[CompiledPattern]:
    out: list[CompiledPattern] = []
    for text in rule.patterns:
        kind, _, regex = text.partition(":")
        out.append(CompiledPattern(rule.id, kind.strip().lower(), re.compile(regex, re.IGNORECASE)))
    return out


def _builtin_files() -> list[tuple[str, bytes]]:
    folder = resources.files("nuseal.scan").joinpath("rules")
    found = [(entry.name, entry.read_bytes()) for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return sorted(found)


def _parse_file(label: str, data: bytes | str) -> tuple[str | None, list[Mapping[str, Any]]]:
    try:
        doc = tomllib.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {label}: not valid TOML ({exc})") from exc
    unknown = set(doc) - {"area", "rules"}
    if unknown:
        raise RulesError(f"rules file {label}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    area = doc.get("area")
    if area is not None and not isinstance(area, str):
        raise RulesError(f"rules file {label}: 'area' must be a string")
    rules = doc.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RulesError(f"rules file {label}: 'rules' must be an array of tables ([[rules]])")
    return area, rules


def _severity(label: str, rid: str, value: object) -> Severity:
    if not isinstance(value, str):
        raise RulesError(f"rules file {label}, rule {rid}: severity must be note, warning or error")
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise RulesError(f"rules file {label}, rule {rid}: {exc}") from None


def _security_severity(label: str, rid: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 10.0:
        raise RulesError(f"rules file {label}, rule {rid}: security-severity must be a number from 0.0 to 10.0")
    return float(value)


def _patterns(label: str, rid: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise RulesError(f"rules file {label}, rule {rid}: patterns must be an array of strings")
    for p in value:
        kind, sep, regex = p.partition(":")
        if not sep or not kind.strip():
            raise RulesError(f"rules file {label}, rule {rid}: pattern {p!r} is not '<kind>:<regex>'")
        try:
            re.compile(regex, re.IGNORECASE)
        except re.error as exc:
            raise RulesError(f"rules file {label}, rule {rid}: pattern {p!r}: {exc}") from None
    return tuple(value)


def _new_rule(label: str, file_area: str, raw: Mapping[str, Any]) -> Rule:
    rid = str(raw.get("id", ""))
    unknown = set(raw) - _KEYS
    if unknown:
        raise RulesError(f"rules file {label}, rule {rid or '?'}: unknown key(s) {', '.join(sorted(unknown))}")
    if not _RULE_ID.match(rid):
        raise RulesError(f"rules file {label}: rule id {rid!r} is not like NS1234")
    for key in ("title", "help"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise RulesError(f"rules file {label}, rule {rid}: '{key}' is required")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulesError(f"rules file {label}, rule {rid}: enabled must be true or false")
    area = raw.get("area", file_area)
    if not isinstance(area, str):
        raise RulesError(f"rules file {label}, rule {rid}: area must be a string")
    return Rule(
        id=rid,
        title=raw["title"].strip(),
        severity=_severity(label, rid, raw.get("severity")),
        security_severity=_security_severity(label, rid, raw.get("security-severity", 5.0)),
        help=raw["help"].strip(),
        area=area,
        patterns=_patterns(label, rid, raw.get("patterns", [])),
        enabled=enabled,
    )


def _override(label: str, rule: Rule, raw: Mapping[str, Any]) -> Rule:
    unknown = set(raw) - _OVERRIDE_KEYS
    if unknown:
        raise RulesError(
            f"rules file {label}, rule {rule.id}: a built-in rule can only change severity, "
            f"security-severity, enabled or add patterns (not {', '.join(sorted(unknown))})"
        )
    changes: dict[str, Any] = {}
    if "severity" in raw:
        changes["severity"] = _severity(label, rule.id, raw["severity"])
    if "security-severity" in raw:
        changes["security_severity"] = _security_severity(label, rule.id, raw["security-severity"])
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise RulesError(f"rules file {label}, rule {rule.id}: enabled must be true or false")
        changes["enabled"] = raw["enabled"]
    if "patterns" in raw:
        changes["patterns"] = rule.patterns + _patterns(label, rule.id, raw["patterns"])
    return replace(rule, **changes)


@cache
def _builtin_rules() -> tuple[Rule, ...]:
    rules: dict[str, tuple[str, Rule]] = {}
    for name, data in _builtin_files():
        file_area, raws = _parse_file(name, data)
        for raw in raws:
            rule = _new_rule(name, file_area or name.removesuffix(".toml"), raw)
            if rule.id in rules:
                raise RulesError(f"rule {rule.id} is defined in both {rules[rule.id][0]} and {name}")
            rules[rule.id] = (name, rule)
    return tuple(r for _, r in rules.values())


def load_rules(extra: Sequence[Path] = ()) -> RuleSet:
    """The built-in rules, then each user rules file of ``extra`` in order (see the module docstring).

    Raises:
        RulesError: a file is not valid TOML or breaks the schema; a duplicate id across built-in files;
            a user file defines the same new id twice.
        UsageError-like ``RulesError``: a user file cannot be read.
    """
    rules = {r.id: r for r in _builtin_rules()}
    for path in extra:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RulesError(f"cannot read rules file {path}: {exc.strerror or exc}") from exc
        label = str(path)
        file_area, raws = _parse_file(label, data)
        added: set[str] = set()
        for raw in raws:
            rid = str(raw.get("id", ""))
            if rid in rules and rid not in added:
                rules[rid] = _override(label, rules[rid], raw)
            elif rid in added:
                raise RulesError(f"rules file {label}: rule {rid} is defined twice")
            else:
                rules[rid] = _new_rule(label, file_area or "", raw)
                added.add(rid)
    return RuleSet(rules.values())
