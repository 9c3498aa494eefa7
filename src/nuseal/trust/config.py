"""nuget.config: ``signatureValidationMode`` and ``trustedSigners``, and NuGet's merge of trusted certificates.

Sources: NuGet.Configuration ``Settings/Items/{TrustedSignerItem,AuthorItem,RepositoryItem,CertificateItem,
OwnersItem}.cs`` and ``SettingFactory.cs`` (element names, required attributes); ``SettingsUtility
.GetSignatureValidationMode``; NuGet.Packaging ``TrustedSignersProvider.GetAllowListEntries`` (merge, NU3040);
DOCS ``docs/reference/nuget-config-file.md#trustedsigners-section``; ``../shared/NUGET-SIGNING.md`` §4.4-§4.5.

Case rules, as NuGet has them: element and attribute names are case-sensitive; the ``signatureValidationMode``
key, its value, ``hashAlgorithm`` and ``allowUntrustedRoot`` values are not. Fingerprints are kept as written:
NuGet matches them case-insensitively against the signer but compares them case-sensitively (with its
upper-case hex) for ``allowUntrustedRoot``, and merges entries by the exact ``hashAlgorithm-fingerprint`` text.
"""

from __future__ import annotations

import enum
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import ConfigError, UsageError
from nuseal.hashalg import HashAlgorithm

__all__ = [
    "CONFIG_FILE_NAMES",
    "MAX_CONFIG_BYTES",
    "MAX_TRUSTED_SIGNERS",
    "NuGetConfig",
    "SignatureValidationMode",
    "SignerKind",
    "TrustedCertificateEntry",
    "TrustedSigner",
    "TrustedSignerCertificate",
    "default_user_config",
    "find_nuget_configs",
    "load_nuget_config",
    "merge_trusted_certificates",
    "parse_nuget_config",
]

#: Largest nuget.config read (bytes).
MAX_CONFIG_BYTES = 1 << 20
#: The file names NuGet looks for in each folder, in its order (the first one present is used).
CONFIG_FILE_NAMES = ("nuget.config", "NuGet.config", "NuGet.Config")
#: Most trustedSigners entries (authors + repositories) and most certificates per entry.
MAX_TRUSTED_SIGNERS = 1000


class SignatureValidationMode(enum.StrEnum):
    """``<config><add key="signatureValidationMode" .../>``: restore's policy (default ``accept``)."""

    ACCEPT = "accept"
    REQUIRE = "require"


class SignerKind(enum.StrEnum):
    """The ``trustedSigners`` element a signer came from."""

    AUTHOR = "author"
    REPOSITORY = "repository"


@dataclass(frozen=True, slots=True)
class TrustedSignerCertificate:
    """``<certificate fingerprint=".." hashAlgorithm=".." allowUntrustedRoot=".."/>``.

    ``fingerprint`` is the text as written (trimmed); compare with :attr:`normalized_fingerprint` for matching.
    """

    fingerprint: str
    hash_algorithm: HashAlgorithm
    allow_untrusted_root: bool = False

    @property
    def normalized_fingerprint(self) -> str:
        """Upper-case fingerprint (NuGet matches signer certificates with ``OrdinalIgnoreCase``)."""
        return self.fingerprint.upper()

    @property
    def grants_untrusted_root(self) -> bool:
        """Whether NuGet will honour ``allowUntrustedRoot``: only if set and the fingerprint is written in
        upper case, since ``IsUntrustedRootAllowed`` compares it ordinally with NuGet's upper-case hex."""
        return self.allow_untrusted_root and self.fingerprint == self.fingerprint.upper()


@dataclass(frozen=True, slots=True)
class TrustedSigner:
    """An ``<author>`` or ``<repository>`` entry. ``service_index`` and ``owners`` are for repositories."""

    name: str
    kind: SignerKind
    certificates: tuple[TrustedSignerCertificate, ...]
    service_index: str | None = None
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NuGetConfig:
    """What nuseal reads from one nuget.config. ``warnings`` lists accepted-but-suspect content."""

    trusted_signers: tuple[TrustedSigner, ...] = ()
    signature_validation_mode: SignatureValidationMode = SignatureValidationMode.ACCEPT
    warnings: tuple[str, ...] = ()
    source: str | None = None


@dataclass(frozen=True, slots=True)
class TrustedCertificateEntry:
    """One merged allow-list entry (NuGet's ``TrustedSignerAllowListEntry``).

    ``author``: some ``<author>`` lists it (placement primary signature); ``repository``: some ``<repository>``
    lists it (placement any). ``owners`` is the union of the repositories' owners, ``None`` when only authors
    list it. ``names`` are the trusted signers that list it, in file order.
    """

    fingerprint: str
    hash_algorithm: HashAlgorithm
    allow_untrusted_root: bool
    author: bool
    repository: bool
    owners: tuple[str, ...] | None
    names: tuple[str, ...]


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def _required(element: Element, attribute: str, where: str) -> str:
    value = element.get(attribute)
    if value is None or not value.strip():
        raise ConfigError(
            f"Unable to parse config file because: Missing required attribute '{attribute}' in element "
            f"'{_local(element.tag)}' ({where})."
        )
    return value.strip()


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigError(f"{where}: allowUntrustedRoot must be 'true' or 'false', not {value!r}")


def _parse_certificate(element: Element, where: str, warnings: list[str]) -> TrustedSignerCertificate:
    fingerprint = _required(element, "fingerprint", where)
    algorithm_text = _required(element, "hashAlgorithm", where)
    try:
        algorithm = HashAlgorithm.parse(algorithm_text)
    except UsageError:
        raise ConfigError(
            f"{where}: unsupported hashAlgorithm {algorithm_text!r} (use SHA256, SHA384 or SHA512)"
        ) from None
    if algorithm_text.strip().upper() not in ("SHA256", "SHA384", "SHA512"):
        raise ConfigError(f"{where}: unsupported hashAlgorithm {algorithm_text!r} (use SHA256, SHA384 or SHA512)")
    allow = element.get("allowUntrustedRoot")
    allow_untrusted_root = _parse_bool(allow, where) if allow is not None else False
    if len(fingerprint) != algorithm.digest_size * 2 or any(c not in string.hexdigits for c in fingerprint):
        warnings.append(
            f"{where}: fingerprint {fingerprint!r} is not a {algorithm.nuget_name} hex fingerprint and can never match"
        )
    if allow_untrusted_root and fingerprint != fingerprint.upper():
        warnings.append(
            f"{where}: allowUntrustedRoot is ignored by NuGet because fingerprint {fingerprint!r} is not upper case"
        )
    return TrustedSignerCertificate(fingerprint, algorithm, allow_untrusted_root)


def _parse_signer(element: Element, kind: SignerKind, source: str, warnings: list[str]) -> TrustedSigner:
    where = f"{source}: <{kind.value}>"
    name = _required(element, "name", where)
    where = f"{source}: <{kind.value} name={name!r}>"
    service_index = _required(element, "serviceIndex", where) if kind is SignerKind.REPOSITORY else None
    certificates: list[TrustedSignerCertificate] = []
    owners: list[str] = []
    for child in element:
        tag = _local(child.tag)
        if tag == "certificate":
            if len(certificates) >= MAX_TRUSTED_SIGNERS:
                raise ConfigError(f"{where}: more than {MAX_TRUSTED_SIGNERS} certificates")
            certificates.append(_parse_certificate(child, f"{where} <certificate>", warnings))
        elif tag == "owners" and kind is SignerKind.REPOSITORY:
            owners.extend(o.strip() for o in (child.text or "").split(";") if o.strip())
    if not certificates:
        raise ConfigError(f"{where}: a trusted signer entry must have at least one certificate entry")
    return TrustedSigner(name, kind, tuple(certificates), service_index, tuple(owners))


def parse_nuget_config(data: bytes, *, source: str = "nuget.config") -> NuGetConfig:
    """Parse nuget.config bytes (``defusedxml``: no DTDs, no entities).

    ``signatureValidationMode``: the last ``<add>`` in ``<config>`` wins (``<clear/>`` resets); an unknown
    value means ``accept`` as in NuGet (``Enum.TryParse``), with a warning. ``trustedSigners``: ``<author>``,
    ``<repository>`` and ``<clear/>`` in order; other elements are ignored.

    Raises:
        ConfigError: not well-formed XML, too large, a missing ``name``/``serviceIndex``/``fingerprint``/
            ``hashAlgorithm``, a bad ``hashAlgorithm`` or ``allowUntrustedRoot``, an entry without certificates.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise ConfigError(f"{source} is not a valid XML configuration file: {exc}") from exc
    except (LookupError, ValueError) as exc:  # expat: an unknown or a multi-byte encoding declared
        raise ConfigError(f"{source} declares an encoding that cannot be read: {exc}") from exc
    if _local(root.tag) != "configuration":
        raise ConfigError(f"{source}: the root element must be <configuration>, not <{_local(root.tag)}>")
    warnings: list[str] = []
    mode_text: str | None = None
    signers: list[TrustedSigner] = []
    for section in root:
        tag = _local(section.tag)
        if tag == "config":
            for item in section:
                item_tag = _local(item.tag)
                if item_tag == "clear":
                    mode_text = None
                elif item_tag == "add" and (item.get("key") or "").strip().lower() == "signaturevalidationmode":
                    mode_text = (item.get("value") or "").strip()
        elif tag == "trustedSigners":
            for item in section:
                item_tag = _local(item.tag)
                if item_tag == "clear":
                    signers.clear()
                elif item_tag in ("author", "repository"):
                    if len(signers) >= MAX_TRUSTED_SIGNERS:
                        raise ConfigError(f"{source}: more than {MAX_TRUSTED_SIGNERS} trusted signers")
                    signers.append(_parse_signer(item, SignerKind(item_tag), source, warnings))
    mode = SignatureValidationMode.ACCEPT
    if mode_text:
        try:
            mode = SignatureValidationMode(mode_text.lower())
        except ValueError:
            warnings.append(
                f"{source}: signatureValidationMode {mode_text!r} is neither 'accept' nor 'require'; "
                "NuGet treats it as 'accept'"
            )
    return NuGetConfig(tuple(signers), mode, tuple(warnings), source)


def default_user_config() -> Path:
    """``~/.nuget/NuGet/NuGet.Config`` (NuGet on Linux and macOS; ``%APPDATA%\\NuGet\\NuGet.Config`` on Windows)."""
    appdata = os.environ.get("APPDATA") if os.name == "nt" else None
    if appdata:
        return Path(appdata) / "NuGet" / "NuGet.Config"
    return Path.home() / ".nuget" / "NuGet" / "NuGet.Config"


def _find_in_folder(folder: Path) -> Path | None:
    """The folder's config file: the first of :data:`CONFIG_FILE_NAMES` present, matched exactly (as on a
    case-sensitive file system, whatever this one is)."""
    try:
        names = {p.name: p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return None
    for name in CONFIG_FILE_NAMES:
        if name in names:
            return names[name]
    return None


def find_nuget_configs(start: str | os.PathLike[str], *, user_config: Path | None = None) -> list[Path]:
    """NuGet's configuration chain for ``start``, nearest first: the config file of ``start`` and of each parent
    folder up to the root, then the user's file (``user_config``, default :func:`default_user_config`) when it
    exists and is not already listed. Paths are resolved. Machine-wide files are not read.

    NuGet.Client ``NuGet.Configuration/Settings/Settings.cs`` (``LoadDefaultSettings``); one discovery for
    ``nuseal verify`` (trustedSigners, signatureValidationMode) and ``nuseal restore``/``audit``
    (:func:`nuseal.client.settings.load_settings`).
    """
    found: list[Path] = []
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        file = _find_in_folder(candidate)
        if file is not None:
            found.append(file)
    user = user_config if user_config is not None else default_user_config()
    if user.is_file() and user.resolve() not in found:
        found.append(user.resolve())
    return found


def load_nuget_config(path: str | os.PathLike[str]) -> NuGetConfig:
    """Read and parse a nuget.config file.

    Raises:
        UsageError: the file cannot be read.
        ConfigError: see :func:`parse_nuget_config`.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from exc
    return parse_nuget_config(data, source=str(file))


_NU3040 = (
    "There are two certificates with conflicting allowUntrustedRoot attributes in the computed settings. "
    "The allowUntrustedRoot attribute is going to be set to false. Certificate: {algorithm}-{fingerprint}"
)


@dataclass
class _Merging:
    cert: TrustedSignerCertificate
    allow: bool
    author: bool
    repository: bool
    owners: list[str] | None
    names: list[str]


def merge_trusted_certificates(
    signers: Iterable[TrustedSigner],
) -> tuple[list[TrustedCertificateEntry], list[Issue]]:
    """NuGet's ``TrustedSignersProvider.GetAllowListEntries``: one entry per ``hashAlgorithm-fingerprint``.

    Entries with the same key (exact text, as NuGet's dictionary is ordinal) are merged: targets and owners
    combined; when their ``allowUntrustedRoot`` differ, NU3040 is reported (warning) and ``False`` wins.

    Returns:
        The merged entries in first-seen order, and the NU3040 issues.
    """
    merged: dict[str, _Merging] = {}
    issues: list[Issue] = []
    for signer in signers:
        is_repository = signer.kind is SignerKind.REPOSITORY
        for cert in signer.certificates:
            key = f"{cert.hash_algorithm.nuget_name}-{cert.fingerprint}"
            entry = merged.get(key)
            if entry is None:
                owners = list(dict.fromkeys(signer.owners)) if is_repository else None
                merged[key] = _Merging(
                    cert, cert.allow_untrusted_root, not is_repository, is_repository, owners, [signer.name]
                )
                continue
            if entry.allow != cert.allow_untrusted_root:
                message = _NU3040.format(algorithm=cert.hash_algorithm.nuget_name, fingerprint=cert.fingerprint)
                issues.append(Issue(NuCode.NU3040, Level.WARNING, message))
                entry.allow = False
            entry.author = entry.author or not is_repository
            entry.repository = entry.repository or is_repository
            if is_repository:
                entry.owners = entry.owners or []
                entry.owners.extend(o for o in signer.owners if o not in entry.owners)
            if signer.name not in entry.names:
                entry.names.append(signer.name)
    result = [
        TrustedCertificateEntry(
            fingerprint=e.cert.fingerprint,
            hash_algorithm=e.cert.hash_algorithm,
            allow_untrusted_root=e.allow,
            author=e.author,
            repository=e.repository,
            owners=tuple(e.owners) if e.owners is not None else None,
            names=tuple(e.names),
        )
        for e in merged.values()
    ]
    return result, issues
