"""Files and their placement (rules NS3xxx): ``path:`` patterns of the ``files`` rules over every entry path.

Built-in: deceptive characters in names (NS3001), a package inside the package (NS3002), install-time
project transforms (NS3003). Executables and scripts in unexpected folders are :mod:`nuseal.scan.compiled`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from nuseal.scan.model import Finding, Location
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import RuleSet

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext

__all__ = ["analyse", "analysers"]


def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterable[Finding]:
    """One finding per (rule, entry) whose ``path:`` pattern matches the entry path."""
    patterns = rules.patterns("files", "path")
    if not patterns:
        return
    for path in pkg.content_paths():
        matched: set[str] = set()
        for pattern in patterns:
            if pattern.rule_id in matched or not pattern.regex.search(path):
                continue
            matched.add(pattern.rule_id)
            yield rules.finding(
                pattern.rule_id,
                f"{rules.get(pattern.rule_id).title}: {path}",
                pkg.ref,
                location=Location(path=path),
                evidence=path,
                file_sha256=pkg.sha256(path),
            )


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """Engine hook (:mod:`nuseal.scan.engine`)."""
    return (analyse,)
