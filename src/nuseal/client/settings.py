"""nuget.config as restore reads it: the file hierarchy, package sources, source mapping, credentials, the
global-packages folder, and the signing policy (``signatureValidationMode``, ``trustedSigners``).

Sources of the rules: NuGet.Client ``NuGet.Configuration/Settings/Settings.cs`` (``LoadDefaultSettings``: every
``NuGet.Config``/``nuget.config``/``NuGet.config`` from the project folder up to the root, closest first, then the
user file ``~/.nuget/NuGet/NuGet.Config``; with ``--configfile`` only that file), ``PackageSourceProvider.cs``
(``<packageSources>`` with ``<clear/>``, ``<disabledPackageSources>``, ``protocolVersion``),
``PackageSourceMapping.cs`` / ``PackageSourceMappingSourceItem.cs`` (the longest matching pattern wins, ``*`` is a
trailing wildcard), ``PackageSourceCredential.cs`` (``Username``, ``ClearTextPassword``, ``Password`` (DPAPI,
Windows only), ``ValidAuthenticationTypes``; source names with spaces written as ``_x0020_``) and
``SettingsUtility.GetGlobalPackagesFolder`` (``NUGET_PACKAGES`` first, then ``globalPackagesFolder`` relative to the
file that set it, then ``~/.nuget/packages``); DOCS ``docs/reference/nuget-config-file.md``.

Merge order as NuGet has it: files are applied from the farthest (the user file) to the closest, so a closer
file's value for a key replaces a farther one's, and ``<clear/>`` in a file drops what the farther files added.
The signing part (``signatureValidationMode``, ``trustedSigners``) is parsed per file by
:func:`nuseal.trust.config.parse_nuget_config` (the reader ``nuseal verify`` uses) and merged the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from nuseal.errors import ConfigError, UsageError
from nuseal.trust.config import (
    MAX_CONFIG_BYTES,
    SignatureValidationMode,
    TrustedSigner,
    default_user_config,
    find_nuget_configs,
    parse_nuget_config,
)

__all__ = [
    "NUGET_ORG",
    "NuGetSettings",
    "PackageSource",
    "SourceCredential",
    "check_mapping_pattern",
    "load_settings",
    "mapped_source_names",
]

#: The source NuGet writes into a new user file.
NUGET_ORG = "https://api.nuget.org/v3/index.json"
_ENV = re.compile(r"%([^%]+)%")


@dataclass(frozen=True, slots=True)
class SourceCredential:
    """``<packageSourceCredentials>`` for one source (passwords after ``%VAR%`` expansion)."""

    username: str
    password: str
    valid_authentication_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageSource:
    """One ``<packageSources><add key=NAME value=URL-or-folder/>``. ``is_local`` for a folder source."""

    name: str
    url: str
    enabled: bool = True
    protocol_version: int = 3
    credential: SourceCredential | None = None
    allow_insecure_connections: bool = False

    @property
    def is_local(self) -> bool:
        return not re.match(r"(?i)^https?://", self.url)


@dataclass(frozen=True)
class NuGetSettings:
    """The merged settings for one project folder.

    ``sources`` are the enabled and disabled sources in NuGet's order; :attr:`enabled_sources` the ones restore
    uses. ``source_mapping`` maps a source name to its package id patterns (empty: no mapping configured).
    ``config_files`` lists the files read, closest first.
    """

    sources: tuple[PackageSource, ...]
    global_packages_folder: Path
    signature_validation_mode: SignatureValidationMode = SignatureValidationMode.ACCEPT
    trusted_signers: tuple[TrustedSigner, ...] = ()
    source_mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    config_files: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def enabled_sources(self) -> tuple[PackageSource, ...]:
        return tuple(s for s in self.sources if s.enabled)

    def sources_for(self, package_id: str) -> tuple[PackageSource, ...]:
        """The enabled sources ``package_id`` may come from under ``packageSourceMapping`` (NuGet's
        ``PackageSourceMapping.GetConfiguredPackageSources``: the longest matching pattern decides; an exact id
        beats every prefix; no mapping configured means every enabled source)."""
        if not self.source_mapping:
            return self.enabled_sources
        keep = {n.lower() for n in mapped_source_names(self.source_mapping, package_id)}
        return tuple(s for s in self.enabled_sources if s.name.lower() in keep)


def mapped_source_names(mapping: Mapping[str, Sequence[str]], package_id: str) -> tuple[str, ...]:
    """The source names whose ``packageSourceMapping`` patterns match ``package_id`` best, in ``mapping``'s order
    (empty: no pattern matches). NuGet's rule (``PackageSourceMapping.GetConfiguredPackageSources``, docs
    "Package Source Mapping"): ids compare case-insensitively; a pattern is an exact id or a prefix ending in
    ``*`` (``*`` alone matches every id); an exact id beats every prefix, a longer prefix beats a shorter one,
    and every source with the winning pattern is kept. Also used for the feed's upstream sources
    (:mod:`nuseal.feed.mirror.upstream`)."""
    best = -1
    names: list[str] = []
    lowered = package_id.lower()
    for name, patterns in mapping.items():
        for pattern in patterns:
            p = pattern.lower()
            if p.endswith("*"):
                score = len(p) - 1 if lowered.startswith(p[:-1]) else -1
            else:
                score = 10_000 if lowered == p else -1
            if score < 0:
                continue
            if score > best:
                best, names = score, [name]
            elif score == best and name not in names:
                names.append(name)
    return tuple(names)


def check_mapping_pattern(pattern: str) -> str:
    """``pattern`` stripped, if it is a valid ``packageSourceMapping`` pattern (non-empty, ``*`` only at the end).

    Raises:
        ConfigError: naming the pattern and the rule it breaks.
    """
    text = pattern.strip()
    if not text:
        raise ConfigError("an empty package id pattern")
    if "*" in text[:-1]:
        raise ConfigError(f"pattern {text!r}: '*' may only end a pattern")
    return text


def _expand(text: str, environ: Mapping[str, str]) -> str:
    """``Environment.ExpandEnvironmentVariables``: ``%NAME%`` replaced when set, left as written otherwise."""
    return _ENV.sub(lambda m: environ.get(m.group(1), m.group(0)), text)


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def _read(path: Path) -> tuple[bytes, Element]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise ConfigError(f"{path} is not a valid XML configuration file: {exc}") from exc
    except (LookupError, ValueError) as exc:
        raise ConfigError(f"{path} declares an encoding that cannot be read: {exc}") from exc
    if _local(root.tag) != "configuration":
        raise ConfigError(f"{path}: the root element must be <configuration>, not <{_local(root.tag)}>")
    return data, root


def _adds(section: Element) -> list[tuple[str, str, Element] | None]:
    """``<add key value/>`` items in order; ``None`` stands for ``<clear/>``."""
    out: list[tuple[str, str, Element] | None] = []
    for item in section:
        tag = _local(item.tag)
        if tag == "clear":
            out.append(None)
        elif tag == "add":
            key = (item.get("key") or "").strip()
            if key:
                out.append((key, (item.get("value") or "").strip(), item))
    return out


@dataclass
class _Merge:
    sources: dict[str, tuple[str, str, int, bool]] = field(default_factory=dict)  # lower name -> (name, url, pv, ins)
    disabled: dict[str, bool] = field(default_factory=dict)
    credentials: dict[str, SourceCredential] = field(default_factory=dict)
    mapping: dict[str, tuple[str, ...]] = field(default_factory=dict)
    gpf: Path | None = None
    mode: SignatureValidationMode | None = None
    signers: list[TrustedSigner] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _source_url(value: str, config: Path) -> str:
    if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", value):
        return value
    path = Path(value.replace("\\", "/"))
    return str(path if path.is_absolute() else (config.parent / path).resolve())


def _apply(path: Path, merge: _Merge, environ: Mapping[str, str]) -> None:
    data, root = _read(path)
    trust = parse_nuget_config(data, source=str(path))
    merge.warnings.extend(trust.warnings)
    for section in root:
        tag = _local(section.tag)
        if tag == "packageSources":
            for entry in _adds(section):
                if entry is None:
                    merge.sources.clear()
                    continue
                key, value, item = entry
                if not value:
                    raise ConfigError(f"{path}: package source {key!r} has no value (URL or folder)")
                pv_text = (item.get("protocolVersion") or "").strip()
                if pv_text and pv_text not in ("2", "3"):
                    raise ConfigError(f"{path}: package source {key!r} has protocolVersion {pv_text!r} (2 or 3)")
                pv = 3 if value.lower().endswith(".json") else int(pv_text or "2")
                insecure = (item.get("allowInsecureConnections") or "").strip().lower() == "true"
                merge.sources.pop(key.lower(), None)
                merge.sources[key.lower()] = (key, _source_url(value, path), pv, insecure)
        elif tag == "disabledPackageSources":
            for entry in _adds(section):
                if entry is None:
                    merge.disabled.clear()
                else:
                    merge.disabled[entry[0].lower()] = entry[1].lower() == "true"
        elif tag == "packageSourceCredentials":
            for item in section:
                name = _local(item.tag).replace("_x0020_", " ")
                values = {k.lower(): v for k, v, _ in (e for e in _adds(item) if e is not None)}
                if "password" in values and "cleartextpassword" not in values:
                    raise ConfigError(
                        f"{path}: the credentials of source {name!r} use an encrypted 'Password', which only NuGet on "
                        "Windows can decrypt; use 'ClearTextPassword' (it may name an environment variable: %VAR%)"
                    )
                types = tuple(t.strip() for t in values.get("validauthenticationtypes", "").split(",") if t.strip())
                merge.credentials[name.lower()] = SourceCredential(
                    _expand(values.get("username", ""), environ),
                    _expand(values.get("cleartextpassword", ""), environ),
                    types,
                )
        elif tag == "packageSourceMapping":
            for item in section:
                item_tag = _local(item.tag)
                if item_tag == "clear":
                    merge.mapping.clear()
                elif item_tag == "packageSource":
                    key = (item.get("key") or "").strip()
                    if not key:
                        raise ConfigError(f"{path}: a <packageSource> in <packageSourceMapping> has no key")
                    patterns = tuple((p.get("pattern") or "").strip() for p in item if _local(p.tag) == "package")
                    if not patterns or not all(patterns):
                        raise ConfigError(f"{path}: <packageSource key={key!r}> needs <package pattern=...> entries")
                    for pattern in patterns:
                        try:
                            check_mapping_pattern(pattern)
                        except ConfigError as exc:
                            raise ConfigError(f"{path}: {exc.message}") from None
                    merge.mapping[key] = patterns
        elif tag == "config":
            for entry in _adds(section):
                if entry is None:
                    merge.gpf = None
                elif entry[0].lower() == "globalpackagesfolder" and entry[1]:
                    folder = Path(_expand(entry[1], environ))
                    merge.gpf = folder if folder.is_absolute() else (path.parent / folder).resolve()
    mode_set = any(
        _local(s.tag) == "config" and any(e is None or e[0].lower() == "signaturevalidationmode" for e in _adds(s))
        for s in root
    )
    if mode_set:
        merge.mode = trust.signature_validation_mode
    if any(_local(s.tag) == "trustedSigners" for s in root):
        cleared = any(_local(s.tag) == "trustedSigners" and any(_local(i.tag) == "clear" for i in s) for s in root)
        if cleared:
            merge.signers.clear()
        names = {t.name.lower() for t in trust.trusted_signers}
        merge.signers = [s for s in merge.signers if s.name.lower() not in names] + list(trust.trusted_signers)


def load_settings(
    project_folder: str | os.PathLike[str],
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    extra_sources: Sequence[str] = (),
) -> NuGetSettings:
    """Read the nuget.config files that apply to ``project_folder`` and merge them as NuGet does.

    ``config_file`` (``--configfile``) replaces the hierarchy with that one file. ``extra_sources`` (``--source``)
    replace the configured sources, as ``dotnet restore --source`` does (credentials and mapping still apply by
    name). Without any config file NuGet creates a user file listing nuget.org; nuseal does not write one but
    uses nuget.org the same way.

    Raises:
        UsageError: ``config_file`` does not exist or a file cannot be read.
        ConfigError: a file is not valid (bad XML, an encrypted password, a bad mapping pattern, ...), naming it.
    """
    env = os.environ if environ is None else environ
    if config_file is not None:
        chosen = Path(config_file)
        if not chosen.is_file():
            raise UsageError(f"the config file {chosen} does not exist")
        files = [chosen.resolve()]
    else:
        files = find_nuget_configs(project_folder)  # nuseal.trust.config: the one discovery verify uses too
    merge = _Merge()
    if config_file is None and not any(p == default_user_config().resolve() for p in files):
        merge.sources["nuget.org"] = ("nuget.org", NUGET_ORG, 3, False)
    for file in reversed(files):  # farthest first: closer files override
        _apply(file, merge, env)
    gpf_env = env.get("NUGET_PACKAGES")
    if gpf_env:
        gpf = Path(gpf_env)
    elif merge.gpf is not None:
        gpf = merge.gpf
    else:
        gpf = Path.home() / ".nuget" / "packages"
    if extra_sources:
        items: list[tuple[str, str, int, bool]] = []
        by_url = {v[1].rstrip("/").lower(): v for v in merge.sources.values()}
        for s in extra_sources:
            url = s if re.match(r"(?i)^https?://", s) else str(Path(s).resolve())
            known = by_url.get(url.rstrip("/").lower())
            items.append(known if known else (url, url, 3, False))
        merge.sources = {v[0].lower(): v for v in items}
        merge.disabled = {}
    sources = tuple(
        PackageSource(
            name=name,
            url=url,
            enabled=not merge.disabled.get(name.lower(), False),
            protocol_version=pv,
            credential=merge.credentials.get(name.lower()),
            allow_insecure_connections=insecure,
        )
        for name, url, pv, insecure in merge.sources.values()
    )
    for key in merge.mapping:
        if key.lower() not in merge.sources:
            merge.warnings.append(f"packageSourceMapping names source {key!r}, which is not a package source")
    return NuGetSettings(
        sources=sources,
        global_packages_folder=gpf,
        signature_validation_mode=merge.mode or SignatureValidationMode.ACCEPT,
        trusted_signers=tuple(merge.signers),
        source_mapping=dict(merge.mapping),
        config_files=tuple(files),
        warnings=tuple(merge.warnings),
    )
