"""``nuseal verify``: NuGet's ``dotnet nuget verify --all`` with NuGet's codes, plus folders, JSON and parallelism."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from nuseal.cli._clock import command_now
from nuseal.cli._exit import EXIT_FAILED, EXIT_OK
from nuseal.cli._inputs import resolve_packages, trust_root_options
from nuseal.codes import Issue, Level
from nuseal.errors import UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.trust import (
    RevocationMode,
    SignatureValidationMode,
    find_nuget_configs,
    load_nuget_config,
)
from nuseal.trust.revocation_cache import DEFAULT_PACKAGE_TIMEOUT, revocation_run
from nuseal.verify import (
    AllowListEntry,
    CertificateIdentity,
    Placement,
    RevocationStatus,
    SignaturePlacement,
    VerificationPolicy,
    VerificationResult,
    VerificationTarget,
)
from nuseal.verify.parallel import VerifierSpec, verify_paths
from nuseal.verify.policy import trusted_signer_entries

__all__ = ["verify_command"]


def _fingerprint_entries(values: tuple[str, ...]) -> tuple[AllowListEntry, ...]:
    entries = []
    for value in values:
        text = value.strip().replace(":", "")
        alg = HashAlgorithm.from_hex_fingerprint(text)
        if alg is None or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise UsageError(
                f"--certificate-fingerprint {value!r} is not a SHA-256, SHA-384 or SHA-512 hex fingerprint (NU3043)"
            )
        entries.append(
            AllowListEntry(
                fingerprint=text,
                hash_algorithm=alg,
                target=VerificationTarget.AUTHOR | VerificationTarget.REPOSITORY,
                placement=SignaturePlacement.PRIMARY_SIGNATURE,
            )
        )
    return tuple(entries)


def _identity(result: VerificationResult) -> str:
    if result.package_id and result.package_version:
        return f"{result.package_id}.{result.package_version}"
    return Path(result.source or "package").name


def _style(issue: Issue) -> str:
    text = str(issue)
    if issue.level is Level.ERROR:
        return click.style(text, fg="red")
    if issue.level is Level.WARNING:
        return click.style(text, fg="yellow")
    return text


def _print_text(result: VerificationResult, detailed: bool) -> None:
    click.echo(f"\nVerifying {_identity(result)}")
    click.echo(f"{result.source}\n")
    if detailed:
        for sig in result.signatures:
            label = "Primary signature" if sig.placement is Placement.PRIMARY else "Repository countersignature"
            click.echo(f"{label}: {sig.type}")
            click.echo(f"  Signer:  {sig.signer_subject}")
            click.echo(f"  Issuer:  {sig.signer_issuer}")
            for alg, fp in sig.fingerprints.items():
                click.echo(f"  {alg} fingerprint:  {fp}")
            if sig.not_before and sig.not_after:
                click.echo(f"  Valid from:  {sig.not_before:%Y-%m-%d %H:%M:%S}Z to {sig.not_after:%Y-%m-%d %H:%M:%S}Z")
            if sig.hash_algorithm:
                click.echo(f"  Package hash algorithm:  {sig.hash_algorithm}")
            if sig.v3_service_index_url:
                click.echo(f"  Service index:  {sig.v3_service_index_url}")
            if sig.package_owners is not None:
                click.echo(f"  Owners:  {', '.join(sig.package_owners)}")
            click.echo(f"  Status:  {_facts_text(sig.checked, sig.intact, sig.valid, sig.trusted, sig.revocation)}")
            for stamp in sig.timestamp_details:
                tsa = stamp.authority.subject if stamp.authority else None
                click.echo(f"  Timestamp:  {stamp.gen_time:%Y-%m-%d %H:%M:%S}Z by {tsa}")
                facts = _facts_text(stamp.checked, stamp.intact, stamp.valid, stamp.trusted, stamp.revocation)
                click.echo(f"    Status:  {facts}")
        if result.content_hash:
            click.echo(f"Content hash (SHA512):  {result.content_hash}")
    for issue in result.issues:
        if issue.level is not Level.INFO or detailed:
            click.echo(_style(issue))
    errors, warnings = len(result.errors), len(result.warnings)
    if errors or warnings:
        click.echo(f"Finished with {errors} errors and {warnings} warnings.")
    if result.valid and not errors:
        click.echo(click.style(f"Successfully verified package '{_identity(result)}'.", fg="green"))
    else:
        click.echo(click.style("Package signature validation failed.", fg="red"))


def _facts_text(checked: bool, intact: bool, valid: bool, trusted: bool, revocation: RevocationStatus) -> str:
    """``intact, valid, trusted; revocation good`` (nuseal.verify.result); a fact that does not hold is ``not ...``."""
    if not checked:
        return ("intact" if intact else "not intact") + "; not judged under this policy"
    words = [w if ok else f"not {w}" for w, ok in (("intact", intact), ("valid", valid), ("trusted", trusted))]
    return ", ".join(words) + f"; revocation {revocation.value}"


def _as_json(result: VerificationResult) -> dict[str, object]:
    return {
        "source": result.source,
        "package": {"id": result.package_id, "version": result.package_version},
        "policy": result.policy,
        "valid": result.valid,
        "signed": result.is_signed,
        "contentHash": result.content_hash,
        "issues": [_issue_json(i) for i in result.issues],
        "signatures": [
            {
                "placement": s.placement,
                "type": s.type,
                "subject": s.signer_subject,
                "issuer": s.signer_issuer,
                "fingerprints": s.fingerprints,
                "notBefore": s.not_before.isoformat() if s.not_before else None,
                "notAfter": s.not_after.isoformat() if s.not_after else None,
                "timestamps": [{"genTime": t.isoformat(), "authority": a} for t, a in s.timestamps],
                "hashAlgorithm": s.hash_algorithm,
                "v3ServiceIndexUrl": s.v3_service_index_url,
                "owners": list(s.package_owners) if s.package_owners is not None else None,
                "kind": s.kind.value,
                "signer": _identity_json(s.signer),
                "intact": s.intact,
                "valid": s.valid,
                "trusted": s.trusted,
                "checked": s.checked,
                "revocation": s.revocation.value,
                "issues": [_issue_json(i) for i in s.issues],
                "timestampDetails": [
                    {
                        "genTime": t.gen_time.isoformat(),
                        "authority": _identity_json(t.authority),
                        "intact": t.intact,
                        "valid": t.valid,
                        "trusted": t.trusted,
                        "checked": t.checked,
                        "revocation": t.revocation.value,
                        "issues": [_issue_json(i) for i in t.issues],
                    }
                    for t in s.timestamp_details
                ],
            }
            for s in result.signatures
        ],
        "structure": [{"code": p.code.value, "entry": p.entry, "message": p.message} for p in result.structure],
    }


def _issue_json(issue: Issue) -> dict[str, object]:
    return {"code": issue.code.value if issue.code else None, "level": issue.level.value, "message": issue.message}


def _identity_json(identity: CertificateIdentity | None) -> dict[str, object] | None:
    if identity is None:
        return None
    return {
        "subject": identity.subject,
        "issuer": identity.issuer,
        "sha256Fingerprint": identity.sha256_fingerprint,
        "serialNumber": format(identity.serial_number, "X"),
        "notBefore": identity.not_before.isoformat(),
        "notAfter": identity.not_after.isoformat(),
    }


@click.command("verify")
@click.argument("packages", nargs=-1, required=True)
@click.option("--all", "all_", is_flag=True, help="Run every verification (today: signatures). The default.")
@click.option("--signatures", is_flag=True, help="Verify package signatures (the only verification type).")
@click.option(
    "--certificate-fingerprint",
    "fingerprints",
    multiple=True,
    metavar="HEX",
    help="Require the primary signer certificate to have this SHA-256/384/512 fingerprint (repeatable).",
)
@click.option(
    "--configfile",
    type=click.Path(dir_okay=False),
    help="nuget.config with trustedSigners and "
    "signatureValidationMode (default: nuget.config files from here up, then the user's).",
)
@click.option(
    "--revocation-mode",
    type=click.Choice(["online", "offline", "cached"]),
    help="Check revocation over the network (reusing cached answers), not at all, or only from the revocation "
    "cache (default: NUGET_CERT_REVOCATION_MODE, else online).",
)
@click.option(
    "--revocation-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_PACKAGE_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Total time the OCSP/CRL requests of one package may take; a responder host that fails once is not "
    "asked again in this run.",
)
@trust_root_options
@click.option(
    "-v", "--verbosity", type=click.Choice(["quiet", "normal", "detailed"]), default="normal", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with every result.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes verifying at once, this one included (default: 1 below 16 packages, else the CPU count, at "
    "most one per 8 packages).",
)
def verify_command(
    packages: tuple[str, ...],
    all_: bool,
    signatures: bool,
    fingerprints: tuple[str, ...],
    configfile: str | None,
    revocation_mode: str | None,
    revocation_timeout: float,
    code_signing_roots: str | None,
    timestamping_roots: str | None,
    verbosity: str,
    as_json: bool,
    jobs: int | None,
) -> int:
    """Verify the signatures of PACKAGES (.nupkg files, folders or globs) as NuGet does.

    Exit code 0 when every package passes, 1 when any fails, 2 for usage errors.
    """
    del all_, signatures  # NuGet's only verification type is signatures; both flags select it.
    paths = resolve_packages(packages)
    if configfile:
        configs = [load_nuget_config(configfile)]
    else:
        configs = [load_nuget_config(p) for p in find_nuget_configs(Path.cwd())]
    trusted, config_issues = trusted_signer_entries(configs)
    require_mode = bool(configs) and configs[0].signature_validation_mode is SignatureValidationMode.REQUIRE
    cached_only = revocation_mode == "cached"
    mode = (
        RevocationMode.OFFLINE
        if cached_only
        else RevocationMode(revocation_mode)
        if revocation_mode
        else RevocationMode.from_env()
    )
    policy = VerificationPolicy.verify(
        trusted_signers=trusted,
        require_mode=require_mode,
        fingerprints=_fingerprint_entries(fingerprints),
        revocation_mode=mode,
    )
    online = mode is RevocationMode.ONLINE  # the CLI's decision to fetch revocation data (the library never does)
    spec = VerifierSpec(
        policy, code_signing_roots, timestamping_roots, as_json or verbosity == "detailed", online=online
    )
    for issue in config_issues:
        click.echo(_style(issue), err=True)
    for config in configs:
        for warning in config.warnings:
            click.echo(f"warning: {config.source}: {warning}", err=True)
    started = time.perf_counter()
    results: list[VerificationResult] = []
    # cached: offline as NuGet reports it, plus the answers kept on disk; online: the host view and the cache.
    with revocation_run(online=online, package_timeout=revocation_timeout, use_store=online or cached_only):
        for result in verify_paths(spec, [str(p) for p in paths], now=command_now(), jobs=jobs):
            results.append(result)
            if not as_json and verbosity != "quiet":
                _print_text(result, verbosity == "detailed")
    failed = [r for r in results if not r.valid or r.errors]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "results": [_as_json(r) for r in results],
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                },
                indent=2,
            )
        )
    elif len(results) > 1 or verbosity == "quiet":
        elapsed = time.perf_counter() - started
        warnings = sum(len(r.warnings) for r in results)
        for r in failed if verbosity == "quiet" else ():
            click.echo(f"FAILED {r.source}: " + "; ".join(str(i) for i in r.errors))
        click.echo(
            f"\nVerified {len(results)} packages: {len(results) - len(failed)} passed, {len(failed)} failed, "
            f"{warnings} warnings ({elapsed:.2f} s)."
        )
    return EXIT_FAILED if failed else EXIT_OK
