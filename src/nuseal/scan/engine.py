"""The scan engine: run every analyser over one :class:`~nuseal.scan.package.ScanPackage`.

An **analyser** is ``Callable[[ScanPackage, RuleSet], Iterable[Finding]]``: it reads the package through
the bounded view, never raises for bad content (if one does anyway, the engine reports NS9008 naming it and keeps
the other analysers' findings) (an unreadable entry becomes an NS9004 problem through
``pkg.read_problem``), and makes findings with ``rules.finding(rule_id, ...)`` so the severity is the rule's.

Analysers come from modules (imported lazily, so the engine works before every module exists):

* built in here: :mod:`nuseal.scan.powershell`, :mod:`nuseal.scan.msbuild`, :mod:`nuseal.scan.files`;
* identity and compiled-code analysers: :mod:`nuseal.scan.compiled`, :mod:`nuseal.scan.lookalike`,
  :mod:`nuseal.scan.osv`.

Each analyser module exposes ``analysers(context: ScanContext) -> Sequence[Analyser]``: called once per
:class:`Scanner` (not per package), so a module loads its data there (the popular-id list, the OSV
database) and returns closures; it returns ``()`` when the context gives it nothing to do. A module that
is not installed yet (``ModuleNotFoundError`` for that module itself) is skipped.

:class:`ScanContext` is plain data (picklable: ``--jobs`` workers rebuild their :class:`Scanner` from it):

* ``popular_ids`` -- extra popular package ids given directly (a feed's own ids); the look-alike analyser
  adds its built-in list;
* ``popular_id_files`` -- paths of user popular-id files (``--popular-ids``), read by the look-alike analyser;
* ``osv_path`` -- ``--osv DIR`` (a folder or zip of OSV JSON records), or ``None``;
* ``options`` -- free-form ``str -> str`` settings for analysers (documented by each module).

:func:`scan_package` returns a :class:`ScanReport`: the package's ref, its findings (sorted by severity,
then rule, path, line), and counters. Findings of disabled rules are dropped; identical findings (same
rule, path, line, evidence) are reported once.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

from nuseal.scan.model import Finding, Location, PackageRef, Severity
from nuseal.scan.package import PackageProblem, ScanPackage
from nuseal.scan.rules import RuleSet

__all__ = [
    "ANALYSER_MODULES",
    "Analyser",
    "ScanContext",
    "ScanReport",
    "Scanner",
    "scan_package",
]

Analyser = Callable[[ScanPackage, RuleSet], Iterable[Finding]]

#: Modules whose ``analysers(context)`` the engine runs, in this order.
ANALYSER_MODULES: tuple[str, ...] = (
    "nuseal.scan.files",
    "nuseal.scan.powershell",
    "nuseal.scan.msbuild",
    "nuseal.scan.compiled",
    "nuseal.scan.lookalike",
    "nuseal.scan.osv",
)
#: Most findings kept per package (the rest are counted in ``ScanReport.dropped``).
MAX_FINDINGS_PER_PACKAGE = 1000


@dataclass(frozen=True)
class ScanContext:
    """What identity analysers need beyond the package (see the module docstring)."""

    popular_ids: tuple[str, ...] = ()
    popular_id_files: tuple[str, ...] = ()
    osv_path: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str | None = None) -> str | None:
        """The value of option ``name``, or ``default``."""
        return dict(self.options).get(name, default)


@dataclass
class ScanReport:
    """The result of scanning one package."""

    package: PackageRef
    findings: list[Finding] = field(default_factory=list)
    #: Findings removed by a baseline (filled by :mod:`nuseal.scan.baseline`).
    suppressed: list[Finding] = field(default_factory=list)
    #: Findings not kept because the package passed :data:`MAX_FINDINGS_PER_PACKAGE`.
    dropped: int = 0
    entries: int = 0
    stored_size: int = 0
    seconds: float = 0.0

    @property
    def max_severity(self) -> Severity | None:
        """The highest severity among the findings, or ``None`` when there are none."""
        return max((f.severity for f in self.findings), default=None)


def _problem_finding(pkg: ScanPackage, rules: RuleSet, problem: PackageProblem) -> Finding:
    return rules.finding(
        problem.rule_id,
        problem.message,
        pkg.ref,
        location=Location(path=problem.path),
        evidence=problem.message,
    )


@cache
def _module_factory(name: str) -> Callable[[ScanContext], Sequence[Analyser]] | None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    factory = getattr(module, "analysers", None)
    return factory if callable(factory) else None


class Scanner:
    """The analysers for one context, built once and run over many packages.

    ``analysers`` replaces the module analysers (tests, or a caller that wants only some).
    """

    def __init__(
        self,
        rules: RuleSet,
        context: ScanContext | None = None,
        *,
        analysers: Sequence[Analyser] | None = None,
    ) -> None:
        self.rules = rules
        self.context = context or ScanContext()
        if analysers is None:
            found: list[Analyser] = []
            for name in ANALYSER_MODULES:
                factory = _module_factory(name)
                if factory is not None:
                    found.extend(factory(self.context))
            analysers = found
        self.analysers: tuple[Analyser, ...] = tuple(analysers)

    def scan(self, pkg: ScanPackage) -> ScanReport:
        """Run every analyser over ``pkg``; problems of the package view become NS9xxx findings."""
        start = time.perf_counter()
        rules = self.rules
        out: list[Finding] = []
        if pkg.nuspec is not None or pkg.paths:
            for analyser in self.analysers:
                try:
                    out.extend(analyser(pkg, rules))
                except Exception as exc:
                    name = getattr(analyser, "__module__", None) or repr(analyser)
                    pkg.problems.append(PackageProblem("NS9008", f"{name} failed: {type(exc).__name__}: {exc}"))
        out.extend(_problem_finding(pkg, rules, p) for p in pkg.problems)
        seen: set[tuple[str, str | None, int | None, str]] = set()
        kept: list[Finding] = []
        for f in out:
            if not rules.enabled(f.rule_id):
                continue
            key = (f.rule_id, f.location.path, f.location.line, f.evidence)
            if key in seen:
                continue
            seen.add(key)
            kept.append(f)
        kept.sort(key=lambda f: (-f.severity, f.rule_id, f.location.path or "", f.location.line or 0))
        dropped = max(0, len(kept) - MAX_FINDINGS_PER_PACKAGE)
        return ScanReport(
            package=pkg.ref,
            findings=kept[:MAX_FINDINGS_PER_PACKAGE],
            dropped=dropped,
            entries=len(pkg.paths),
            stored_size=pkg.stored_size,
            seconds=time.perf_counter() - start,
        )


_SCANNERS: dict[tuple[int, ScanContext], Scanner] = {}
_MAX_SCANNERS = 16


def scan_package(pkg: ScanPackage, rules: RuleSet, *, context: ScanContext | None = None) -> ScanReport:
    """Scan one package with every analyser module (a :class:`Scanner` is built once per rules and
    context and reused)."""
    ctx = context or ScanContext()
    key = (id(rules), ctx)
    scanner = _SCANNERS.get(key)
    if scanner is None or scanner.rules is not rules:
        if len(_SCANNERS) >= _MAX_SCANNERS:
            _SCANNERS.clear()
        scanner = Scanner(rules, ctx)
        _SCANNERS[key] = scanner
    return scanner.scan(pkg)
