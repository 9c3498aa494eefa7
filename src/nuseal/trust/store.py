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
import shutil
import string
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
_PEM_BODY_BYTES = (string.ascii_letters + string.digits + "+/=" + string.whitespace).encode("ascii")


def _pem_bodies(data: bytes) -> Iterator[bytes]:
    """The bodies of the ``CERTIFICATE`` blocks: text between BEGIN and the next END made of base64 characters
    and white space only (a BEGIN followed by anything else is not a block; the search goes on after it)."""
    at = data.find(_PEM_BEGIN)
    while at >= 0:
        start = at + len(_PEM_BEGIN)
        end = data.find(_PEM_END, start)
        if end < 0:
            return
        body = data[start:end]
        if not body.translate(None, _PEM_BODY_BYTES):
            yield body
            at = data.find(_PEM_BEGIN, end + len(_PEM_END))
        else:
            at = data.find(_PEM_BEGIN, start)


class TrustStore:
    """An immutable set of trusted root certificates and a description of where they came from.

    ``source`` names the origin (a file path, "no trust store found ..."); ``path`` is the bundle file when
    there is one (NuGet names it in NU3042); ``skipped`` counts PEM blocks that could not be parsed.
    Certificates are de-duplicated by DER.

    A store read from PEM (:meth:`from_pem_bytes`) is indexed without parsing its certificates: each block's
    subject name is read from its DER (a few TLV headers), and a root is parsed (``cryptography``) only when a
    chain asks for the issuer it names, or when :attr:`certificates` is read. Microsoft's two bundles hold ~630
    roots and a chain needs a handful: loading them falls from ~0.1 s to a few milliseconds, which is what a
    ``nuseal verify`` run, and each worker it starts, used to pay before its first package. The index key is
    the subject's DER exactly as ``x509.Name.public_bytes`` gives it (what chain building compares): taken
    from the certificate's bytes when the name is one ``cryptography`` re-encodes unchanged (one attribute per
    RDN; PrintableString/IA5String of ASCII or UTF8String values), otherwise from a parse at load time.
    """

    __slots__ = ("_by_subject", "_der_set", "_ders", "_facts", "_failed", "_lock", "path", "skipped", "source")

    def __init__(
        self, certificates: Iterable[x509.Certificate], source: str, path: Path | None = None, skipped: int = 0
    ) -> None:
        unique: dict[bytes, CertificateFacts] = {}
        for cert in certificates:
            known = facts(cert)
            unique.setdefault(known.der, known)
        by_subject: dict[bytes, list[bytes]] = {}
        for known in unique.values():
            by_subject.setdefault(known.subject, []).append(known.der)
        self._init(tuple(unique), by_subject, dict(unique), source, path, skipped)

    def _init(
        self,
        ders: tuple[bytes, ...],
        by_subject: dict[bytes, list[bytes]],
        parsed: dict[bytes, CertificateFacts],
        source: str,
        path: Path | None,
        skipped: int,
    ) -> None:
        self._ders = ders
        self._der_set = frozenset(ders)
        self._by_subject: Mapping[bytes, tuple[bytes, ...]] = {k: tuple(v) for k, v in by_subject.items()}
        self._facts: dict[bytes, CertificateFacts] = parsed
        self._failed: set[bytes] = set()
        self._lock = threading.Lock()
        self.source = source
        self.path = path
        self.skipped = skipped

    def _known(self, encoded: bytes) -> CertificateFacts | None:
        """The parsed root with DER ``encoded`` (parsed now if it was not yet), or ``None`` if it does not parse."""
        known = self._facts.get(encoded)
        if known is None and encoded not in self._failed:
            with self._lock:
                known = self._facts.get(encoded)
                if known is None and encoded not in self._failed:
                    try:
                        known = self._facts[encoded] = facts(load_der_certificate(encoded))
                    except ValueError:
                        self._failed.add(encoded)
                        self.skipped += 1
        return known

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The roots, in bundle order (every one is parsed on first read; blocks that do not parse are dropped
        and counted in ``skipped``)."""
        return tuple(known.certificate for known in map(self._known, self._ders) if known is not None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrustStore):
            return NotImplemented
        return (self._ders, self.source, self.path) == (other._ders, other.source, other.path)

    def __hash__(self) -> int:
        return hash((self._ders, self.source, self.path))

    def __repr__(self) -> str:
        return f"TrustStore({len(self._ders)} certificates, source={self.source!r})"

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
        ders: dict[bytes, None] = {}
        by_subject: dict[bytes, list[bytes]] = {}
        parsed: dict[bytes, CertificateFacts] = {}
        blocks = skipped = 0
        for block in _pem_bodies(data):
            if blocks >= MAX_BUNDLE_CERTIFICATES:
                raise UsageError(f"trust bundle {source} holds more than {MAX_BUNDLE_CERTIFICATES} certificates")
            blocks += 1
            try:
                body = base64.b64decode(b"".join(block.split()), validate=True)
                subject = _subject_key(body)
                if subject is None:  # a name cryptography may re-encode differently: parse it now
                    known = parsed.get(body) or facts(load_der_certificate(body))
                    parsed[body], subject = known, known.subject
            except (binascii.Error, ValueError):
                skipped += 1
                continue
            if body not in ders:
                ders[body] = None
                by_subject.setdefault(subject, []).append(body)
        store = cls.__new__(cls)
        store._init(tuple(ders), by_subject, parsed, source, path, skipped)
        return store

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
        if not store._ders:
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
        return len(self._ders)

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and facts(cert).der in self._der_set

    def contains_der(self, encoded: bytes) -> bool:
        """Whether the certificate with DER ``encoded`` is one of the roots."""
        return encoded in self._der_set

    def _with_subject_bytes(self, subject: bytes) -> tuple[CertificateFacts, ...]:
        found = (self._known(encoded) for encoded in self._by_subject.get(subject, ()))
        return tuple(known for known in found if known is not None and known.subject == subject)

    def with_subject(self, subject: x509.Name) -> tuple[x509.Certificate, ...]:
        """The roots whose subject is ``subject`` (DER comparison)."""
        return tuple(known.certificate for known in self._with_subject_bytes(subject.public_bytes()))

    def issuer_candidates(self, cert: CertificateFacts) -> tuple[CertificateFacts, ...]:
        """The roots that may have issued ``cert``: subject DER equal to its issuer DER, and key identifiers
        that do not contradict (``facts_may_have_issued``), in store order. Looked up by the name bytes
        memoised in ``cert``; no name is encoded again; only these roots are parsed."""
        return tuple(known for known in self._with_subject_bytes(cert.issuer) if facts_may_have_issued(known, cert))


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, contents start, end)`` of the DER TLV at ``pos`` (low tag numbers, definite lengths)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag number")
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


_SEQUENCE, _SET, _UTF8, _PRINTABLE, _IA5 = 0x30, 0x31, 0x0C, 0x13, 0x16


def _subject_key(encoded: bytes) -> bytes | None:
    """The subject Name's DER read from a certificate's bytes (RFC 5280 §4.1: Certificate > TBSCertificate >
    [version], serialNumber, signature, issuer, validity, subject) when ``x509.Name.public_bytes`` gives the same
    bytes back; ``None`` when the name has a form it may not (several attributes in one RDN, other string types,
    non-ASCII Printable/IA5 bytes).

    Raises:
        ValueError: not the outline of a certificate.
    """
    tag, start, _ = _tlv(encoded, 0)
    tag_tbs, pos, _ = _tlv(encoded, start)
    if tag != _SEQUENCE or tag_tbs != _SEQUENCE:
        raise ValueError("not a certificate")
    tag, _, end = _tlv(encoded, pos)
    if tag == 0xA0:  # [0] version
        pos = end
    for _field in range(4):  # serialNumber, signature, issuer, validity
        pos = _tlv(encoded, pos)[2]
    tag, first, end = _tlv(encoded, pos)
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    name = encoded[pos:end]
    at = first
    while at < end:
        tag, rdn, rdn_end = _tlv(encoded, at)
        tag_atv, atv, atv_end = _tlv(encoded, rdn)
        if tag != _SET or tag_atv != _SEQUENCE or atv_end != rdn_end:
            return None
        value_tag, value, value_end = _tlv(encoded, _tlv(encoded, atv)[2])
        if value_end != atv_end:
            return None
        text = encoded[value:value_end]
        if value_tag in (_PRINTABLE, _IA5):
            if not text.isascii():
                return None
        elif value_tag == _UTF8:
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                return None
        else:
            return None
        at = rdn_end
    return name


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
