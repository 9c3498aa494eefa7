"""``nuseal revocation``: prepare the revocation cache (``prefetch``) so that a host without network can verify
with ``nuseal verify --revocation-mode cached``.

Exit codes: 0 every certificate's answer is cached; 1 some could not be fetched (their responder was unreachable
or gave no usable answer); 2 usage errors.
"""

from __future__ import annotations

import click

from nuseal.cli._clock import command_now
from nuseal.cli._exit import EXIT_FAILED, EXIT_OK
from nuseal.cli._inputs import resolve_packages, trust_root_options
from nuseal.codes import NuCode
from nuseal.trust import RevocationMode
from nuseal.trust.revocation_cache import DEFAULT_PACKAGE_TIMEOUT, RevocationStore, revocation_run
from nuseal.verify import VerificationPolicy
from nuseal.verify.parallel import VerifierSpec, verify_paths

__all__ = ["revocation_group"]


@click.group("revocation")
def revocation_group() -> None:
    """The revocation cache ($NUSEAL_CACHE/revocation, else ~/.cache/nuseal/revocation)."""


@revocation_group.command("prefetch")
@click.argument("packages", nargs=-1, required=True)
@trust_root_options
@click.option(
    "--revocation-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_PACKAGE_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Total time the OCSP/CRL requests of one package may take.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default as for nuseal verify).",
)
def prefetch_command(
    packages: tuple[str, ...],
    code_signing_roots: str | None,
    timestamping_roots: str | None,
    revocation_timeout: float,
    jobs: int | None,
) -> int:
    """Fetch and cache the OCSP responses and CRLs every certificate of PACKAGES (.nupkg files, folders or
    globs) needs: author, repository and timestamp chains. Answers already cached and fresh are not fetched
    again. Copy the cache folder to an offline host and verify there with --revocation-mode cached."""
    paths = [str(p) for p in resolve_packages(packages)]
    store = RevocationStore()
    before = store.entries()
    spec = VerifierSpec(
        VerificationPolicy.verify(revocation_mode=RevocationMode.ONLINE),
        code_signing_roots,
        timestamping_roots,
        online=True,
    )
    unknown = 0
    with revocation_run(online=True, package_timeout=revocation_timeout, store=store):
        for result in verify_paths(spec, paths, now=command_now(), jobs=jobs):
            missing = [i for i in result.issues if i.code in (NuCode.NU3018, NuCode.NU3028)]
            unknown += len(missing)
            for issue in missing:
                click.echo(f"{result.source}: {issue.message}", err=True)
    after = store.entries()
    click.echo(
        f"Prefetched revocation data for {len(paths)} package(s): {after} answer(s) cached in {store.directory} "
        f"({max(0, after - before)} new); {unknown} certificate chain(s) could not be checked."
    )
    return EXIT_FAILED if unknown else EXIT_OK
