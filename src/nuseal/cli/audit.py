"""``nuseal audit [FOLDER]``: re-check a global-packages folder (thin over :mod:`nuseal.client.audit`).

Exit codes: 0 nothing found, 1 any finding, 2 usage errors (no such folder, bad nuget.config or nuseal.toml).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nuseal.cli._clock import command_now
from nuseal.cli._exit import EXIT_FAILED, EXIT_OK
from nuseal.cli._inputs import trust_root_options
from nuseal.cli.scan import PROGRESS_FROM, render_text
from nuseal.client.audit import audit_folder, audit_rules
from nuseal.client.gate import ALLOW_LIST_FILE, GateSettings, client_policy, load_allow_list
from nuseal.client.settings import load_settings
from nuseal.errors import UsageError
from nuseal.scan.model import Severity
from nuseal.scan.report import json_document, sarif_document
from nuseal.scan.rules import load_rules
from nuseal.trust import NuGetConfig, RevocationMode, SignatureValidationMode
from nuseal.trust.revocation_cache import revocation_run

__all__ = ["audit_command"]


@click.command("audit")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option(
    "--packages",
    "packages",
    type=click.Path(file_okay=False),
    help="The global-packages folder (default: NUGET_PACKAGES, else nuget.config's globalPackagesFolder, "
    "else ~/.nuget/packages).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format (json: nuseal-scan/1 with the audit's NA rules; sarif: SARIF 2.1.0).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
@click.option("--fix", is_flag=True, help="Remove tampered package folders so the next restore fetches them again.")
@click.option(
    "--configfile",
    type=click.Path(dir_okay=False, exists=True),
    help="nuget.config with signatureValidationMode and trustedSigners (default: from here up, then the user's).",
)
@click.option(
    "--signature-validation-mode",
    "mode",
    type=click.Choice(["accept", "require"]),
    help="Override nuget.config's signatureValidationMode.",
)
@click.option(
    "--revocation-mode",
    type=click.Choice(["online", "offline"]),
    help="Check revocation over the network or not (default: NUGET_CERT_REVOCATION_MODE, else online).",
)
@trust_root_options
@click.option(
    "--block-on",
    type=click.Choice(["note", "warning", "error"]),
    default="error",
    show_default=True,
    help="Report scan findings at or above this severity.",
)
@click.option(
    "--allow-list",
    type=click.Path(dir_okay=False, exists=True),
    help=f"Scan allow list ({ALLOW_LIST_FILE}; default: {ALLOW_LIST_FILE} in the current folder if present).",
)
@click.option("--no-scan", is_flag=True, help="Do not rerun the scan.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes auditing at once, this one included (default: CPU count).",
)
def audit_command(
    folder: str | None,
    packages: str | None,
    fmt: str,
    output: str | None,
    fix: bool,
    configfile: str | None,
    mode: str | None,
    revocation_mode: str | None,
    code_signing_roots: str | None,
    timestamping_roots: str | None,
    block_on: str,
    allow_list: str | None,
    no_scan: bool,
    jobs: int | None,
) -> int:
    """Check every package in a global-packages folder: the .nupkg against its .sha512 and .nupkg.metadata,
    every extracted file against the .nupkg, the signature under the policy, and the scan.

    Exit code 0 when nothing is found, 1 on any finding, 2 for usage errors.
    """
    if folder and packages and Path(folder) != Path(packages):
        raise UsageError("give the global-packages folder once (FOLDER or --packages)")
    given = folder or packages
    nuget = load_settings(Path.cwd(), config_file=configfile)
    root = Path(given) if given else nuget.global_packages_folder
    if not root.is_dir():
        raise UsageError(f"{root}: no such global-packages folder")
    # the same policy restore uses (nuseal.client.restore.gate_settings): the merged nuget.config settings
    config = NuGetConfig(
        trusted_signers=nuget.trusted_signers, signature_validation_mode=nuget.signature_validation_mode
    )
    policy, issues = client_policy(
        [config],
        mode=SignatureValidationMode(mode) if mode else None,
        revocation_mode=RevocationMode(revocation_mode) if revocation_mode else None,
    )
    for issue in issues:
        click.echo(f"warning: {issue}", err=True)
    rules = load_rules()
    settings = GateSettings(
        policy=policy,
        block_on=Severity.parse(block_on),
        allow=load_allow_list(Path(allow_list) if allow_list else Path.cwd()),
        rules=rules,
        code_signing_roots=code_signing_roots,
        timestamping_roots=timestamping_roots,
        scan=not no_scan,
    )
    started = time.perf_counter()
    console = Console(stderr=True)
    with Progress(
        TextColumn("auditing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("audit", total=None)

        def progress(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bar.update(task, completed=done, total=total)

        online = policy.revocation_mode is RevocationMode.ONLINE  # the CLI asks for online revocation checks
        with revocation_run(online=online, use_store=online):  # host view + cache + the HTTP fetcher
            audits = audit_folder(root, settings, now=command_now(), fix=fix, progress=progress, jobs=jobs)
    reports = [a.report for a in audits]
    all_rules = audit_rules(rules)
    if fmt == "json":
        doc = json_document(reports, all_rules)
        doc["audit"] = {
            "folder": str(root),
            "policy": policy.name,
            "tampered": [str(a.folder) for a in audits if a.tampered],
            "removed": [str(a.folder) for a in audits if a.fixed],
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "sarif":
        sarif = sarif_document(reports, all_rules, extracted_sources=frozenset(r.package.source for r in reports))
        text = json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"
    else:
        body, _, summary = render_text(reports, seconds=time.perf_counter() - started).rstrip("\n").rpartition("\n")
        text = (body + "\n" if body else "") + summary.replace("Scanned", "Audited", 1) + "\n"
        removed = [a for a in audits if a.fixed]
        if removed:
            text += "".join(f"removed {a.folder} (tampered; the next restore fetches it again)\n" for a in removed)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    return EXIT_FAILED if any(r.findings for r in reports) else EXIT_OK
