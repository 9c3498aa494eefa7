"""``nuseal restore``: restore a project's packages into NuGet's global-packages folder, verifying and scanning each
one before it is extracted.

Thin over :mod:`nuseal.client.restore`. Exit codes: 0 restored; 1 the restore failed (a package refused by the gate,
nothing resolves, a conflict, the lock file no longer matches, a source failed); 2 usage or input errors (bad option,
unreadable project or nuget.config). Every error is one line with its NU code (or scan rule), package and source
(NU1102/NU1103 then list NuGet's line per source).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nuseal.cli._clock import command_now
from nuseal.cli._exit import EXIT_FAILED, EXIT_OK
from nuseal.client.feedclient import HttpSettings, default_cache_dir
from nuseal.client.restore import RestoreOptions, RestoreResult, restore
from nuseal.errors import RestoreError
from nuseal.scan.model import Severity
from nuseal.trust import RevocationMode
from nuseal.trust.revocation_cache import revocation_run

__all__ = ["restore_command"]


def _error_line(exc: RestoreError) -> str:
    tag = exc.code.value if exc.code else (exc.rule_id or "error")
    first, newline, rest = exc.message.partition("\n")  # NU1102/NU1103: NuGet's per-source lines follow
    parts = [f"error {tag}: {first}"]
    if exc.package and exc.package not in exc.message:
        parts.append(f"[package {exc.package}]")
    if exc.source and exc.source not in exc.message:
        parts.append(f"[source {exc.source}]")
    return " ".join(parts) + newline + rest


def _document(result: RestoreResult, warnings: list[str]) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "globalPackagesFolder": str(result.global_packages_folder),
        "projects": result.projects,
        "packages": [
            {
                "id": p.id,
                "version": p.version,
                "source": p.source,
                "installed": p.installed,
                "contentHash": p.content_hash,
                "folder": str(p.folder) if p.folder else None,
            }
            for p in result.packages
        ],
        "lockFiles": [str(p) for p in result.lock_files],
        "warnings": [{"code": w.code.value, "message": w.message, "package": w.package} for w in result.warnings]
        + [{"code": None, "message": w, "package": None} for w in warnings],
        "errors": [
            {
                "code": e.code.value if e.code else None,
                "rule": e.rule_id,
                "message": e.message,
                "package": e.package,
                "source": e.source,
            }
            for e in result.errors
        ],
    }


@click.command("restore")
@click.argument("path", required=False, type=click.Path(path_type=Path), default=Path("."))
@click.option("--configfile", type=click.Path(path_type=Path), help="Use only this nuget.config.")
@click.option(
    "--packages",
    type=click.Path(path_type=Path),
    help="Global-packages folder (default: NUGET_PACKAGES, nuget.config's globalPackagesFolder, ~/.nuget/packages).",
)
@click.option("--use-lock-file", is_flag=True, help="Write packages.lock.json (as RestorePackagesWithLockFile).")
@click.option("--locked-mode", is_flag=True, help="Restore exactly the lock file's versions; fail (NU1004) if stale.")
@click.option(
    "--block-on",
    type=click.Choice(["error", "warning"], case_sensitive=False),
    default="error",
    show_default=True,
    help="Scan findings at or above this level refuse the package (unless nuseal.toml allows them).",
)
@click.option("--source", "sources", multiple=True, help="Use these sources instead of nuget.config's (repeatable).")
@click.option("--timeout", type=float, default=100.0, show_default=True, help="Seconds for one HTTP request.")
@click.option("--no-http-cache", is_flag=True, help="Do not use or fill the HTTP cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
def restore_command(
    path: Path,
    configfile: Path | None,
    packages: Path | None,
    use_lock_file: bool,
    locked_mode: bool,
    block_on: str,
    sources: tuple[str, ...],
    timeout: float,
    no_http_cache: bool,
    as_json: bool,
) -> int:
    """Restore PATH (a project, a .sln, packages.config, packages.lock.json, or a folder holding one) into the
    global-packages folder; every package is verified (signatureValidationMode, trustedSigners) and scanned before
    it is extracted."""
    if timeout <= 0:
        raise click.BadParameter("must be positive", param_hint="--timeout")
    options = RestoreOptions(
        path=path,
        config_file=configfile,
        packages=packages,
        use_lock_file=use_lock_file,
        locked_mode=locked_mode,
        block_on=Severity.parse(block_on),
        sources=sources,
        http=HttpSettings(timeout=timeout, cache_dir=None if no_http_cache else default_cache_dir()),
    )
    online = RevocationMode.from_env() is RevocationMode.ONLINE  # NuGet's setting; the CLI then fetches
    err = Console(stderr=True)
    show_progress = not as_json and sys.stderr.isatty()
    if show_progress:
        columns = (
            TextColumn("[bold]restore"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("packages {task.fields[downloaded]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("restore", total=None, downloaded="")
            downloaded = 0

            def hook(event: str, n: int) -> None:
                nonlocal downloaded
                if event == "total":
                    bar.update(task, total=n)
                elif event == "done":
                    bar.advance(task, n)
                elif event == "bytes":
                    downloaded += n
                    bar.update(task, downloaded=f"{downloaded / 1e6:.1f} MB downloaded")

            with revocation_run(online=online, use_store=online):
                result, warnings = restore(options, now=command_now(), progress=hook)
    else:
        with revocation_run(online=online, use_store=online):  # host view + cache (+ the HTTP fetcher when online)
            result, warnings = restore(options, now=command_now())
    if as_json:
        click.echo(json.dumps(_document(result, warnings), indent=2))
        return EXIT_OK if result.ok else EXIT_FAILED
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    for d in result.warnings:
        click.echo(f"warning {d.code.value}: {d.message}", err=True)
    for e in result.errors:
        click.echo(_error_line(e), err=True)
    installed = sum(1 for p in result.packages if p.installed)
    if result.ok:
        click.echo(
            f"Restored {len(result.packages)} package(s) into {result.global_packages_folder} "
            f"({installed} extracted, {len(result.packages) - installed} already there)"
            + (f"; wrote {', '.join(str(p) for p in result.lock_files)}" if result.lock_files else "")
        )
        return EXIT_OK
    click.echo(f"Restore failed: {len(result.errors)} error(s); nothing of a refused package was extracted.", err=True)
    return EXIT_FAILED
