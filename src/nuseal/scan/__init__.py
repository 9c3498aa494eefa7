"""nuseal.scan: the scan engine over a package's bytes (``../shared/DESIGN.md``).

Sans-I/O: analysers read a :class:`~nuseal.scan.package.ScanPackage` (bounded, never executing or loading
what it reads) and return :class:`~nuseal.scan.model.Finding` values; rules are data
(:mod:`nuseal.scan.rules`); :func:`~nuseal.scan.engine.scan_package` runs them all. Reading files, folders,
lock files and feeds lives in :mod:`nuseal.scan.sources` and the CLI.
"""

from nuseal.scan.engine import Analyser, ScanContext, Scanner, ScanReport, scan_package
from nuseal.scan.model import Finding, Location, PackageRef, Rule, Severity
from nuseal.scan.package import EntryReadError, PackageProblem, ScanPackage
from nuseal.scan.rules import RulesError, RuleSet, load_rules

__all__ = [
    "Analyser",
    "EntryReadError",
    "Finding",
    "Location",
    "PackageProblem",
    "PackageRef",
    "Rule",
    "RuleSet",
    "RulesError",
    "ScanContext",
    "ScanPackage",
    "ScanReport",
    "Scanner",
    "Severity",
    "load_rules",
    "scan_package",
]
