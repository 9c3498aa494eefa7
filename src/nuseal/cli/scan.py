"""``nuseal scan``: find the code a package runs at install and build time, look-alike ids and known-bad versions.

Thin over :mod:`nuseal.scan` (engine, sources, baseline, report). Exit codes: 0 nothing at or above ``--fail-on``,
1 findings at or above it, 2 usage errors or unreadable input (one line each).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nuseal.cli._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from nuseal.errors import UsageError
from nuseal.scan.baseline import Suppression, apply_baseline, baseline_for, parse_baseline
from nuseal.scan.engine import ScanContext, Scanner, ScanReport
from nuseal.scan.model import Finding, Location, PackageRef, Severity
from nuseal.scan.parallel import LoadFailure, ScanSpec, scan_sources
from nuseal.scan.report import json_document, sarif_document
from nuseal.scan.rules import RuleSet, load_rules
from nuseal.scan.sources import Missing, PackageSource, expand_targets

__all__ = ["render_text", "scan_command"]

#: Show a progress bar from this many packages (on a terminal).
PROGRESS_FROM = 10


def _missing_report(item: Missing, rules: RuleSet) -> ScanReport:
    ref = PackageRef(item.id, item.version, item.lock_file)
    finding = rules.finding(
        "NS9006",
        f"{item.id} {item.version} is locked in {item.lock_file} but not in the global-packages folder "
        f"({item.expected}); it was not scanned",
        ref,
        location=Location(path=None),
        evidence=f"{item.id} {item.version}",
    )
    return ScanReport(package=ref, findings=[finding])


def _where(f: Finding) -> str:
    loc = f.location
    if loc.path is None:
        return ""
    return loc.path + (f":{loc.line}" if loc.line is not None else "")


def render_text(
    reports: Sequence[ScanReport], *, stale: Sequence[Suppression] = (), show_clean: bool = False, seconds: float = 0
) -> str:
    """The human report: each package with findings (most severe first), then a summary line."""
    lines: list[str] = []
    counts = dict.fromkeys(Severity, 0)
    suppressed = 0
    for r in reports:
        suppressed += len(r.suppressed)
        name = f"{r.package.id or '?'} {r.package.version or ''}".strip()
        if not r.findings:
            if show_clean:
                lines.append(f"{name}  ({r.package.source}): no findings")
            continue
        lines.append(f"{name}  ({r.package.source})")
        for f in r.findings:
            counts[f.severity] += 1
            where = _where(f)
            lines.append(f"  {f.severity.sarif_level:<7} {f.rule_id}  {where}".rstrip())
            lines.append(f"          {f.message}")
            if f.evidence and f.evidence not in (where, f.location.path):
                lines.append(f"          > {f.evidence}")
        if r.dropped:
            lines.append(f"  ... {r.dropped} more findings not shown")
        lines.append("")
    for s in stale:
        lines.append(
            f"stale suppression (matched nothing): {s.id} {s.version} {s.rule}" + (f" {s.path}" if s.path else "")
        )
    summary = (
        f"Scanned {len(reports)} package{'s' if len(reports) != 1 else ''}: "
        f"{counts[Severity.ERROR]} errors, {counts[Severity.WARNING]} warnings, {counts[Severity.NOTE]} notes"
    )
    if suppressed:
        summary += f", {suppressed} suppressed"
    if seconds:
        summary += f" ({seconds:.2f} s)"
    lines.append(summary + ".")
    return "\n".join(lines) + "\n"


def _write_output(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc


@click.command("scan")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
    help="Report format (json: docs/scan.md; sarif: SARIF 2.1.0 for GitHub code scanning).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
@click.option(
    "--fail-on", type=click.Choice(["note", "warning", "error"]), default="warning", show_default=True,
    help="Exit 1 when a finding has at least this severity.",
)
@click.option("--osv", "osv", type=click.Path(exists=True), help="OSV records (folder or zip) for known-bad versions.")
@click.option(
    "--popular-ids", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="More popular package ids (one per line) for look-alike detection; repeatable.",
)
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False), help="Suppressions (JSON, docs/scan.md).")
@click.option(
    "--write-baseline", type=click.Path(dir_okay=False),
    help="Write a baseline suppressing every finding of this run.",
)
@click.option(
    "--rules", "rules_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="User rules file (TOML): add rules, change severities; repeatable.",
)
@click.option(
    "--packages-folder", type=click.Path(file_okay=False),
    help="Global-packages folder for packages.lock.json targets (default: NUGET_PACKAGES, else ~/.nuget/packages).",
)
@click.option("--latest", is_flag=True, help="Feed targets: only the newest version of each id.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
              help="Processes scanning at once, this one included (default: 1 below 16 packages, else the CPU count).")
@click.option("--show-clean", is_flag=True, help="Text format: also list packages without findings.")
def scan_command(
    targets: tuple[str, ...],
    fmt: str,
    output: str | None,
    fail_on: str,
    osv: str | None,
    popular_ids: tuple[str, ...],
    baseline: str | None,
    write_baseline: str | None,
    rules_files: tuple[str, ...],
    packages_folder: str | None,
    latest: bool,
    jobs: int | None,
    show_clean: bool,
) -> int:
    """Scan TARGETS for install- and build-time code, look-alike ids and known-bad versions.

    TARGETS are .nupkg files, folders (extracted packages, e.g. a global-packages folder, are scanned as
    extracted), globs, packages.lock.json files, or a NuGet V3 feed's service index URL.

    Exit code 0 when nothing is at or above --fail-on, 1 when something is, 2 for usage errors or unreadable input.
    """
    started = time.perf_counter()
    rules = load_rules([Path(p) for p in rules_files])
    suppressions: list[Suppression] = []
    if baseline:
        try:
            data = Path(baseline).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {baseline}: {exc.strerror or exc}") from exc
        suppressions = parse_baseline(data, label=baseline)
    context = ScanContext(
        popular_id_files=tuple(str(Path(p).resolve()) for p in popular_ids),
        osv_path=str(Path(osv).resolve()) if osv else None,
    )
    items = expand_targets(targets, packages_folder=Path(packages_folder) if packages_folder else None, latest=latest)
    sources = [i for i in items if isinstance(i, PackageSource)]
    reports: list[ScanReport] = [_missing_report(i, rules) for i in items if isinstance(i, Missing)]
    failures: list[LoadFailure] = []
    spec = ScanSpec(rules_files=tuple(str(Path(p).resolve()) for p in rules_files), context=context)
    scanner = Scanner(rules, context) if (jobs or 1) == 1 or len(sources) < 16 else None
    console = Console(stderr=True)
    show_progress = len(sources) >= PROGRESS_FROM and console.is_terminal
    with Progress(
        TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not show_progress,
    ) as progress:
        task = progress.add_task("scan", total=len(sources))
        for result in scan_sources(spec, sources, jobs=jobs, scanner=scanner):
            if isinstance(result, LoadFailure):
                failures.append(result)
            else:
                reports.append(result)
            progress.advance(task)
    stale = apply_baseline(reports, suppressions) if suppressions else []
    extracted = frozenset(s.label for s in sources if s.kind == "folder")
    if fmt == "json":
        text = json.dumps(json_document(reports, rules, stale=stale), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "sarif":
        doc = sarif_document(reports, rules, stale=stale, extracted_sources=extracted)
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        text = render_text(reports, stale=stale, show_clean=show_clean, seconds=time.perf_counter() - started)
    _write_output(text, output)
    if write_baseline:
        _write_output(json.dumps(baseline_for(reports), indent=2, ensure_ascii=False) + "\n", write_baseline)
    for failure in failures:
        click.echo(f"error: {failure.message}", err=True)
    if failures:
        return EXIT_USAGE
    threshold = Severity.parse(fail_on)
    failed = any(f.severity >= threshold for r in reports for f in r.findings)
    if stale and fmt == "text" and output is None:
        sys.stdout.flush()
    return EXIT_FAILED if failed else EXIT_OK
