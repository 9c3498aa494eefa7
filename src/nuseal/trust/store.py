"""Trust stores: the root certificates a chain must end in, and where the .NET SDK finds them on Linux.

Source: NuGet.Client ``Signing/TrustStore/X509TrustStore.cs`` (``CreateX509ChainFactoryForDotNetSdk``),
``SystemCertificateBundleX509ChainFactory.cs`` (probe path), ``FallbackCertificateBundleX509ChainFactory.cs``
(``<sdk>/trustedroots/{codesignctl,timestampctl}.pem``), ``CertificateBundleX509ChainFactory.cs``
(``CustomRootTrust``: only the bundle is trusted, a root outside it -> UntrustedRoot + NU3042);
``../shared/NUGET-SIGNING.md`` §4.7.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from nuseal.errors import UsageError
from nuseal.trust.certificate import (
    CertificateFacts,
    CertificatePurpose,
    facts,
    facts_may_have_issued,
    load_der_certificate,
)

__all__ = [
    "CODE_SIGNING_BUNDLE_NAME",
    "DEFAULT_DOTNET_ROOTS",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_CERTIFICATES",
    "SYSTEM_CODE_SIGNING_BUNDLES",
    "TIMESTAMPING_BUNDLE_NAME",
    "TRUSTED_ROOTS_DIRECTORY",
    "TrustStore",
]

#: Largest PEM bundle read (bytes); Microsoft's lists are about 0.5 MB.
MAX_BUNDLE_BYTES = 16 << 20
#: Most certificates taken from one bundle.
MAX_BUNDLE_CERTIFICATES = 10_000
#: Linux system bundles for code signing, probed first (``SystemCertificateBundleX509ChainFactory.ProbePaths``).
SYSTEM_CODE_SIGNING_BUNDLES: tuple[Path, ...] = (Path("/etc/pki/ca-trust/extracted/pem/objsign-ca-bundle.pem"),)
#: Sub-directory of an SDK version directory holding the bundles (``FallbackCertificateBundleX509ChainFactory``).
TRUSTED_ROOTS_DIRECTORY = "trustedroots"
CODE_SIGNING_BUNDLE_NAME = "codesignctl.pem"
TIMESTAMPING_BUNDLE_NAME = "timestampctl.pem"
#: Where .NET installs itself on Linux when ``DOTNET_ROOT`` and ``PATH`` say nothing (``~`` is ``$HOME``).
DEFAULT_DOTNET_ROOTS: tuple[str, ...] = ("/usr/share/dotnet", "/usr/lib/dotnet", "/usr/lib64/dotnet", "~/.dotnet")

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")


@dataclass(frozen=True)
class TrustStore:
    """An immutable set of trusted root certificates and a description of where they came from.

    ``source`` names the origin (a file path, "no trust store found ..."); ``path`` is the bundle file when
    there is one (NuGet names it in NU3042); ``skipped`` counts PEM blocks that could not be parsed.
    Certificates are de-duplicated by DER.
    """

    certificates: tuple[x509.Certificate, ...]
    source: str
    path: Path | None = None
    skipped: int = 0
    _ders: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _by_subject: Mapping[bytes, tuple[CertificateFacts, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unique: dict[bytes, CertificateFacts] = {}
        for cert in self.certificates:
            known = facts(cert)
            unique.setdefault(known.der, known)
        by_subject: dict[bytes, list[CertificateFacts]] = {}
        for known in unique.values():
            by_subject.setdefault(known.subject, []).append(known)
        object.__setattr__(self, "certificates", tuple(known.certificate for known in unique.values()))
        object.__setattr__(self, "_ders", frozenset(unique))
        object.__setattr__(self, "_by_subject", {k: tuple(v) for k, v in by_subject.items()})

    # ------------------------------------------------------------------ constructors
    @classmethod
    def empty(cls, source: str = "empty trust store") -> TrustStore:
        """A store that trusts nothing: every chain ends in UntrustedRoot (NuGet's ``NoCertificateBundle``)."""
        return cls((), source)

    @classmethod
    def from_certificates(cls, certificates: Iterable[x509.Certificate], *, source: str = "certificates") -> TrustStore:
        """A store of the given roots."""
        return cls(tuple(certificates), source)

    @classmethod
    def from_pem_bytes(cls, data: bytes, *, source: str = "PEM bundle", path: Path | None = None) -> TrustStore:
        """Parse a PEM bundle (concatenated ``CERTIFICATE`` blocks; anything between blocks is ignored).

        Blocks that are not valid base64 DER certificates are skipped and counted in ``skipped``.

        Raises:
            UsageError: the bundle exceeds :data:`MAX_BUNDLE_BYTES` or :data:`MAX_BUNDLE_CERTIFICATES`.
        """
        if len(data) > MAX_BUNDLE_BYTES:
            raise UsageError(f"trust bundle {source} is larger than {MAX_BUNDLE_BYTES} bytes")
        certificates: list[x509.Certificate] = []
        skipped = 0
        for match in _PEM_BLOCK.finditer(data):
            if len(certificates) + skipped >= MAX_BUNDLE_CERTIFICATES:
                raise UsageError(f"trust bundle {source} holds more than {MAX_BUNDLE_CERTIFICATES} certificates")
            try:
                body = base64.b64decode(b"".join(match.group(1).split()), validate=True)
                certificates.append(load_der_certificate(body))
            except (binascii.Error, ValueError):
                skipped += 1
        return cls(tuple(certificates), source, path, skipped)

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Read a PEM bundle file (``source`` and ``path`` are the file's path).

        Raises:
            UsageError: the file cannot be read, is too large, or holds no certificate.
        """
        file = Path(path)
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_BUNDLE_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read trust bundle {file}: {exc.strerror or exc}") from exc
        store = cls.from_pem_bytes(data, source=str(file), path=file)
        if not store.certificates:
            raise UsageError(f"trust bundle {file} contains no readable certificate")
        return store

    @classmethod
    def discover(
        cls,
        purpose: CertificatePurpose,
        *,
        environ: Mapping[str, str] | None = None,
        dotnet_roots: Sequence[str | os.PathLike[str]] | None = None,
        system_bundles: Sequence[str | os.PathLike[str]] | None = None,
    ) -> TrustStore:
        """The store the .NET SDK on Linux would use for ``purpose`` (NUGET-SIGNING.md §4.7).

        Code signing: the first non-empty system bundle (:data:`SYSTEM_CODE_SIGNING_BUNDLES`), else the SDK's
        ``trustedroots/codesignctl.pem``. Timestamping: the SDK's ``trustedroots/timestampctl.pem``. SDKs are
        looked for under ``<root>/sdk/<version>/`` (highest version first) for each root in ``dotnet_roots``,
        by default ``$DOTNET_ROOT``, the directory of ``dotnet`` on ``$PATH`` (symlinks resolved), then
        :data:`DEFAULT_DOTNET_ROOTS`. Nothing found gives an empty store (every chain untrusted) whose
        ``source`` says what was searched. Unreadable or empty candidate files are passed over, as NuGet does.
        """
        env = os.environ if environ is None else environ
        searched: list[str] = []
        if purpose is CertificatePurpose.CODE_SIGNING:
            bundles = SYSTEM_CODE_SIGNING_BUNDLES if system_bundles is None else tuple(map(Path, system_bundles))
            for bundle in bundles:
                searched.append(str(bundle))
                found = _try_bundle(Path(bundle))
                if found is not None:
                    return found
        name = CODE_SIGNING_BUNDLE_NAME if purpose is CertificatePurpose.CODE_SIGNING else TIMESTAMPING_BUNDLE_NAME
        roots = _default_dotnet_roots(env) if dotnet_roots is None else [Path(r) for r in dotnet_roots]
        for root in roots:
            for sdk in _sdk_directories(root):
                candidate = sdk / TRUSTED_ROOTS_DIRECTORY / name
                searched.append(str(candidate))
                found = _try_bundle(candidate)
                if found is not None:
                    return found
        where = ", ".join(searched) if searched else "no .NET SDK directory"
        return cls.empty(f"no {purpose.name.lower().replace('_', ' ')} trust store found (searched: {where})")

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.certificates)

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and facts(cert).der in self._ders

    def contains_der(self, encoded: bytes) -> bool:
        """Whether the certificate with DER ``encoded`` is one of the roots."""
        return encoded in self._ders

    def with_subject(self, subject: x509.Name) -> tuple[x509.Certificate, ...]:
        """The roots whose subject is ``subject`` (DER comparison)."""
        return tuple(known.certificate for known in self._by_subject.get(subject.public_bytes(), ()))

    def issuer_candidates(self, cert: CertificateFacts) -> tuple[CertificateFacts, ...]:
        """The roots that may have issued ``cert``: subject DER equal to its issuer DER, and key identifiers
        that do not contradict (``facts_may_have_issued``), in store order. Looked up by the name bytes
        memoised in ``cert``; no name is encoded again."""
        return tuple(known for known in self._by_subject.get(cert.issuer, ()) if facts_may_have_issued(known, cert))


def _try_bundle(path: Path) -> TrustStore | None:
    try:
        if not path.is_file():
            return None
        return TrustStore.from_pem_file(path)
    except (UsageError, OSError):
        return None


def _version_key(name: str) -> tuple[tuple[int, ...], int, str]:
    release, _, prerelease = name.partition("-")
    numbers = tuple(int(part) if part.isdigit() else -1 for part in release.split("."))
    return numbers, 0 if prerelease else 1, prerelease


def _sdk_directories(root: Path) -> list[Path]:
    sdk_root = root.expanduser() / "sdk"
    try:
        versions = [entry for entry in sdk_root.iterdir() if entry.is_dir() and entry.name[:1].isdigit()]
    except OSError:
        return []
    return sorted(versions, key=lambda entry: _version_key(entry.name), reverse=True)


def _default_dotnet_roots(env: Mapping[str, str]) -> list[Path]:
    roots: list[Path] = []
    dotnet_root = env.get("DOTNET_ROOT")
    if dotnet_root:
        roots.append(Path(dotnet_root))
    executable = shutil.which("dotnet", path=env.get("PATH", ""))
    if executable:
        roots.append(Path(executable).resolve().parent)
    home = env.get("HOME")
    for default in DEFAULT_DOTNET_ROOTS:
        if default.startswith("~/") and home:
            roots.append(Path(home) / default[2:])
        else:
            roots.append(Path(default).expanduser())
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique
