"""``nuseal sign`` and ``nuseal repo-sign``: sign packages anywhere, byte-compatible with NuGet."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from nuseal.cli._exit import EXIT_OK
from nuseal.cli._inputs import resolve_packages
from nuseal.errors import UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.signing import FileSigner, Signer, SigningTrust, SignResult, repository_sign_package, sign_package
from nuseal.trust import CertificatePurpose, RevocationFetcher, RevocationMode, TrustStore

__all__ = ["SigningOptions", "repo_sign_command", "sign_command", "signing_options", "write_atomically"]

_F = TypeVar("_F", bound=Callable[..., Any])
_ALGS = click.Choice(["SHA256", "SHA384", "SHA512"], case_sensitive=False)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder and an atomic rename: readers see
    the old file or the whole new one, never a half-written package."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _signer(
    path: str | None,
    password: str | None,
    key_path: str | None,
    pkcs11: tuple[str | None, ...],
    cleanup: contextlib.ExitStack,
) -> Signer:
    """The signer the options name; a PKCS#11 session is closed by ``cleanup``."""
    module, token, key, pin = pkcs11
    if module:
        if not (token and key):
            raise UsageError("--pkcs11-module needs --pkcs11-token and --pkcs11-key")
        if key_path:
            raise UsageError("--certificate-key-path cannot be used with --pkcs11-module (the key is in the token)")
        from nuseal.signing.pkcs11 import Pkcs11Signer  # noqa: PLC0415 - loads the PKCS#11 library

        return cleanup.enter_context(
            Pkcs11Signer(module, token_label=token, key_label=key, pin=pin, certificate_chain=path,
                         pin_source="--pkcs11-pin or NUSEAL_PKCS11_PIN")
        )
    if token or key:
        raise UsageError("--pkcs11-token and --pkcs11-key need --pkcs11-module")
    if path is None:
        raise UsageError("--certificate-path is required (unless the certificate is in a PKCS#11 token)")
    if key_path:
        return FileSigner.from_pem(path, key_path, password=password)
    if path.lower().endswith((".pem", ".crt", ".cer")):
        raise UsageError("a PEM certificate needs --certificate-key-path")
    return FileSigner.from_pfx(path, password)


def _trust(code_signing: str | None, timestamping: str | None, revocation_mode: str) -> SigningTrust:
    """Strict trust in the given bundles (NuGet trusts only its store); without them the .NET SDK's stores on
    this machine plus the self-signed roots supplied with the certificate or the TSA's token."""
    mode = RevocationMode(revocation_mode.lower())
    fetcher = _online_fetcher() if mode is RevocationMode.ONLINE else None  # the CLI's decision to fetch
    if not (code_signing or timestamping):
        return SigningTrust.discover(revocation_mode=mode, fetcher=fetcher)
    signing_roots = (
        TrustStore.from_pem_file(code_signing) if code_signing else TrustStore.discover(CertificatePurpose.CODE_SIGNING)
    )
    stamping_bundle = timestamping or code_signing
    stamping_roots = (
        TrustStore.from_pem_file(stamping_bundle)
        if stamping_bundle
        else TrustStore.discover(CertificatePurpose.TIMESTAMPING)
    )
    return SigningTrust(signing_roots, stamping_roots, revocation_mode=mode, fetcher=fetcher)


def _online_fetcher() -> RevocationFetcher:
    from nuseal.trust.online import HttpRevocationFetcher  # noqa: PLC0415 - the HTTP client only when signing online

    return HttpRevocationFetcher()


def _output(source: Path, output: str | None, overwrite: bool) -> Path:
    target = Path(output) / source.name if output else source
    if target != source and target.exists() and not overwrite:
        raise UsageError(f"{target} exists; use --overwrite")
    return target


def _report(source: Path, target: Path, result: SignResult) -> None:
    for warning in result.warnings:
        click.echo(click.style(str(warning), fg="yellow"), err=True)
    click.echo(f"Signed {source} -> {target}")


@dataclass(frozen=True)
class SigningOptions:
    """The options ``sign`` and ``repo-sign`` share (:func:`signing_options`), turned into a signer and a trust."""

    certificate_path: str | None
    certificate_password: str | None
    certificate_key_path: str | None
    timestamper: str | None
    hash_algorithm: str
    timestamp_hash_algorithm: str
    output: str | None
    pkcs11_module: str | None
    pkcs11_token: str | None
    pkcs11_key: str | None
    pkcs11_pin: str | None
    trust_bundle: str | None
    timestamp_trust_bundle: str | None
    revocation_mode: str

    def signer(self, cleanup: contextlib.ExitStack) -> Signer:
        """The signer the options name; a PKCS#11 session is closed by ``cleanup``.

        Raises:
            UsageError: contradictory or missing key options, an unreadable certificate or key.
        """
        pkcs11 = (self.pkcs11_module, self.pkcs11_token, self.pkcs11_key, self.pkcs11_pin)
        return _signer(self.certificate_path, self.certificate_password, self.certificate_key_path, pkcs11, cleanup)

    def trust(self) -> SigningTrust:
        """The trust the chains are checked against (online revocation unless ``--revocation-mode offline``)."""
        return _trust(self.trust_bundle, self.timestamp_trust_bundle, self.revocation_mode)

    @property
    def hashes(self) -> tuple[HashAlgorithm, HashAlgorithm]:
        """``(signature hash algorithm, timestamp imprint algorithm)``."""
        return HashAlgorithm.parse(self.hash_algorithm), HashAlgorithm.parse(self.timestamp_hash_algorithm)


_SIGNING_OPTIONS = [
    click.argument("packages", nargs=-1, required=True),
    click.option("--certificate-path", type=click.Path(dir_okay=False, exists=True),
                 help="PFX/PKCS#12 file, or a PEM certificate (with its chain) plus --certificate-key-path; with "
                 "--pkcs11-module, the PEM certificate chain of the token's key (default: read from the token)."),
    click.option("--certificate-password", envvar="NUSEAL_CERTIFICATE_PASSWORD", help="Password of the PFX or key."),
    click.option("--certificate-key-path", type=click.Path(dir_okay=False, exists=True), help="PEM private key."),
    click.option("--timestamper", help="RFC 3161 timestamp server URL (without one: warning NU3002)."),
    click.option("--hash-algorithm", type=_ALGS, default="SHA256", show_default=True),
    click.option("--timestamp-hash-algorithm", type=_ALGS, default="SHA256", show_default=True),
    click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the signed packages "
                 "(default: sign in place)."),
    click.option("--pkcs11-module", type=click.Path(dir_okay=False, exists=True),
                 help="PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so); the key stays in the token."),
    click.option("--pkcs11-token", help="Token label."),
    click.option("--pkcs11-key", help="Private key label."),
    click.option("--pkcs11-pin", envvar="NUSEAL_PKCS11_PIN", help="User PIN (or NUSEAL_PKCS11_PIN)."),
    click.option("--trust-bundle", type=click.Path(dir_okay=False, exists=True),
                 help="PEM roots the signing certificate's chain must end in (strict, as NuGet with its store). "
                 "Default: the .NET SDK's code-signing roots plus a self-signed root supplied with the certificate."),
    click.option("--timestamp-trust-bundle", type=click.Path(dir_okay=False, exists=True),
                 help="PEM roots for the TSA's chain (default: --trust-bundle, else as above)."),
    click.option("--revocation-mode", type=click.Choice(["online", "offline"], case_sensitive=False),
                 default="online", show_default=True,
                 help="Check revocation of the chains before signing (NuGet: online); unknown status warns."),
]
_SIGNING_FIELDS = tuple(f.name for f in fields(SigningOptions))


def signing_options(command: _F) -> _F:
    """The PACKAGES argument and the key, timestamp, trust and output options ``sign`` and ``repo-sign`` share,
    given to the command as one ``signing: SigningOptions`` and ``packages`` (as :func:`trust_root_options` does
    for the roots of the verifying commands)."""

    @functools.wraps(command)
    def collected(**kwargs: Any) -> Any:
        signing = SigningOptions(**{name: kwargs.pop(name) for name in _SIGNING_FIELDS})
        return command(signing=signing, **kwargs)

    wrapped: Any = collected
    for decorator in reversed(_SIGNING_OPTIONS):
        wrapped = decorator(wrapped)
    return cast(_F, wrapped)


@click.command("sign")
@signing_options
@click.option("--overwrite", is_flag=True, help="Replace an existing signature / output file.")
def sign_command(packages: tuple[str, ...], signing: SigningOptions, overwrite: bool) -> int:
    """Author-sign PACKAGES (files, folders or globs) as NuGet's `sign` does, on any OS."""
    hash_algorithm, timestamp_hash_algorithm = signing.hashes
    with contextlib.ExitStack() as cleanup:
        signer = signing.signer(cleanup)
        trust = signing.trust()
        _sign_all(packages, signing.output, overwrite, lambda data: sign_package(
            data,
            signer,
            timestamper_url=signing.timestamper,
            now=datetime.now(UTC),
            hash_algorithm=hash_algorithm,
            timestamp_hash_algorithm=timestamp_hash_algorithm,
            overwrite=overwrite,
            trust=trust,
        ))
    return EXIT_OK


def _sign_all(
    packages: tuple[str, ...], output: str | None, overwrite: bool, sign: Callable[[bytes], SignResult]
) -> None:
    """Sign every package the arguments name, each written atomically before the next is read."""
    for source in resolve_packages(packages):
        target = _output(source, output, overwrite)
        result = sign(source.read_bytes())
        write_atomically(target, result.data)
        _report(source, target, result)


@click.command("repo-sign")
@signing_options
@click.option("--v3-service-index-url", required=True, help="The repository's https service index URL.")
@click.option("--package-owners", default="", help="Comma-separated owners recorded in the signature.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def repo_sign_command(
    packages: tuple[str, ...],
    signing: SigningOptions,
    v3_service_index_url: str,
    package_owners: str,
    overwrite: bool,
) -> int:
    """Repository-sign PACKAGES: a repository primary signature on unsigned packages, a repository
    countersignature on author-signed ones."""
    owners = [o.strip() for o in package_owners.split(",") if o.strip()]
    hash_algorithm, timestamp_hash_algorithm = signing.hashes
    with contextlib.ExitStack() as cleanup:
        signer = signing.signer(cleanup)
        trust = signing.trust()
        _sign_all(packages, signing.output, overwrite, lambda data: repository_sign_package(
            data,
            signer,
            v3_service_index_url=v3_service_index_url,
            owners=owners or None,
            timestamper_url=signing.timestamper,
            now=datetime.now(UTC),
            hash_algorithm=hash_algorithm,
            timestamp_hash_algorithm=timestamp_hash_algorithm,
            trust=trust,
        ))
    return EXIT_OK
