"""Feed configuration: where data lives, which database, the public base URL, limits.

A :class:`FeedConfig` is immutable and serializable to JSON so several uvicorn worker processes can each
rebuild the same configuration from the environment (:data:`CONFIG_ENV_VAR`); nothing else is shared
between workers but the database and the storage folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from nuseal.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_MAX_PACKAGE_SIZE",
    "DEFAULT_PORT",
    "PFX_PASSWORD_ENV_VAR",
    "PKCS11_PIN_ENV_VAR",
    "FeedConfig",
    "IngestConfig",
    "SigningConfig",
    "UpstreamConfig",
]

#: Environment variable through which ``nuseal serve`` hands its configuration to worker processes.
CONFIG_ENV_VAR = "NUSEAL_FEED_CONFIG"
DEFAULT_PORT = 5000
#: nuget.org's upload limit is 250 MB; the embedded default is the same.
DEFAULT_MAX_PACKAGE_SIZE = 250 * 1000 * 1000
#: Longest base URL accepted (it is embedded in every document).
MAX_BASE_URL_LENGTH = 512
#: The repository PFX password and PKCS#11 PIN come from the environment, never from the JSON configuration.
PFX_PASSWORD_ENV_VAR = "NUSEAL_REPOSITORY_PFX_PASSWORD"  # noqa: S105 - a variable name, not a password
PKCS11_PIN_ENV_VAR = "NUSEAL_REPOSITORY_PKCS11_PIN"
#: Default period of the background revalidation task (seconds); 0 turns it off.
DEFAULT_REVALIDATE_SECONDS = 3600.0
_ADVERTISE_CHOICES = ("auto", "always", "never")


@dataclass(frozen=True)
class SigningConfig:
    """Signature enforcement and repository signing (issue 5; ``docs/feed.md`` "Signing").

    Attributes:
        enabled: check author signatures with the nuget.org submission rules and repository-sign every accepted
            package. Off: packages are stored as pushed (the issue-4 behaviour).
        require_author_signature: refuse unsigned pushes even when no owner registered a certificate.
        trust_bundle: PEM roots trusted for author and repository signing certificates; ``None``: the .NET SDK's
            store on this machine (``TrustStore.discover``), plus the dev root when the dev PKI is in use.
        timestamp_trust_bundle: PEM roots for timestamp authorities; ``None``: as ``trust_bundle``'s default.
        repository_pfx: the repository-signing key and chain (PKCS#12; password in
            :data:`PFX_PASSWORD_ENV_VAR`). With neither this nor PKCS#11, the dev PKI in ``DATA/devpki`` is
            created and used, with its TSA, OCSP and CRL served by ``nuseal serve``.
        repository_pkcs11_module / _token / _key / repository_certificate_chain: a PKCS#11 key (PIN in
            :data:`PKCS11_PIN_ENV_VAR`) and, optionally, its PEM certificate chain (leaf first); without one the
            certificate is read from the token (the key's label, else its ``CKA_ID``).
        timestamper_url: the RFC 3161 TSA for repository signatures (default: the dev TSA with the dev PKI).
        repository_index_url: the ``nuget-v3-service-index-url`` written into repository signatures. NuGet
            requires an absolute https URL there, so the default is the feed's own service index URL with
            ``https`` as its scheme (the same URL when the base URL is already https).
        revalidate_seconds: period of the background revocation recheck (0: only ``nuseal admin revalidate``).
        advertise_repository_signatures: list ``RepositorySignatures/5.0.0`` in the service index ``always``,
            ``never``, or ``auto`` = only when the base URL is https. NuGet clients before 6.x throw on a
            resource or certificate ``contentUrl`` that is not https (NuGet.Client
            ``RepositorySignatureResourceProvider``, ``RepositorySignatureResource``), which would break every
            restore from a plain-http feed.
        listed_repository_certificates: files (PEM or DER) of other repositories' signing certificates that
            ``RepositorySignatures/5.0.0`` lists too, after the feed's own: for a feed that serves packages another
            repository signed, unchanged (a copy of nuget.org, whose packages carry nuget.org's repository
            signature). With these the resource is written and listed even with signing off (then only these,
            ``allRepositorySigned`` false: the feed does not enforce it).
    """

    enabled: bool = False
    require_author_signature: bool = False
    trust_bundle: str | None = None
    timestamp_trust_bundle: str | None = None
    repository_pfx: str | None = None
    repository_pkcs11_module: str | None = None
    repository_pkcs11_token: str | None = None
    repository_pkcs11_key: str | None = None
    repository_certificate_chain: str | None = None
    timestamper_url: str | None = None
    repository_index_url: str | None = None
    revalidate_seconds: float = DEFAULT_REVALIDATE_SECONDS
    advertise_repository_signatures: str = "auto"
    listed_repository_certificates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "listed_repository_certificates", tuple(self.listed_repository_certificates))
        if self.advertise_repository_signatures not in _ADVERTISE_CHOICES:
            raise ConfigError(f"advertise_repository_signatures must be one of {', '.join(_ADVERTISE_CHOICES)}")
        if self.revalidate_seconds < 0:
            raise ConfigError("the revalidation period cannot be negative")
        if self.repository_pfx and self.repository_pkcs11_module:
            raise ConfigError("configure the repository key as a PFX or as PKCS#11, not both")
        if self.repository_pkcs11_module and not (self.repository_pkcs11_token and self.repository_pkcs11_key):
            raise ConfigError("a PKCS#11 repository key needs its token label and key label")
        if self.repository_certificate_chain and not self.repository_pkcs11_module:
            raise ConfigError("a repository certificate chain is only used with a PKCS#11 repository key")
        if self.repository_index_url is not None and not self.repository_index_url.startswith("https://"):
            raise ConfigError("the repository service index URL must be an absolute https URL (NuGet's rule)")

    @property
    def uses_dev_pki(self) -> bool:
        """No production key configured: the dev PKI signs (and, without a TSA URL, timestamps)."""
        return self.enabled and not self.repository_pfx and not self.repository_pkcs11_module


_HOLD_SEVERITIES = ("note", "warning", "error", "never")
_AUTHOR_POLICIES = ("none", "any", "allow-list")


@dataclass(frozen=True)
class IngestConfig:
    """The ingestion checks every pushed and mirrored package passes (issue 16; :mod:`nuseal.feed.mirror.checks`).

    Attributes:
        hold_severity: scan findings at or above this (``note``, ``warning``, ``error``; ``never``) hold the version in
            quarantine (``--hold-severity``).
        block_rules: scan rule ids or globs (``NS1110``, ``NS2*``) whose findings refuse a push with 400
            (``--block-rule``, repeatable).
        author_policy: for upstream packages, ``none`` (no author signature required), ``any`` (a valid author
            signature with a trusted chain), ``allow-list`` (and by a certificate in ``trusted_signers``)
            (``--author-policy``).
        trusted_signers: SHA-256 fingerprints (hex) of the author certificates the allow list accepts
            (``--trusted-signer``).
        min_release_age_seconds: upstream versions younger than this are left out until old enough
            (``--min-release-age``; 0: no cooldown).
        osv_path: OSV records (folder or zip) for the known-bad check (``--osv``).
        osv_refresh_seconds: how often each serving process looks for changes under ``osv_path`` and takes them
            (``--osv-refresh``; :mod:`nuseal.feed.mirror.osv_refresh`; 0: read once at start).
        popular_id_files: extra popular-id lists for the look-alike check (``--popular-ids``).
        rules_files: scan rules files (``--rules``).
        revocation_mode: ``online`` or ``offline`` revocation checks when verifying upstream signatures.
        release_check_seconds: how often held versions whose cooldown ended are released (0: never by itself).
        push_signer_continuity: also hold *pushed* versions whose author signer changed or that lost their signature
            (``--push-signer-continuity``; upstream packages always get this check). Off by default: on a signing
            feed the owners' registered certificates decide pushes, and an unsigned push after signed ones is
            accepted with a warning, as on nuget.org.
    """

    hold_severity: str = "error"
    block_rules: tuple[str, ...] = ()
    author_policy: str = "none"
    trusted_signers: tuple[str, ...] = ()
    min_release_age_seconds: float = 0.0
    osv_path: str | None = None
    osv_refresh_seconds: float = 3600.0
    popular_id_files: tuple[str, ...] = ()
    rules_files: tuple[str, ...] = ()
    revocation_mode: str = "online"
    release_check_seconds: float = 60.0
    push_signer_continuity: bool = False

    def __post_init__(self) -> None:
        for name in ("block_rules", "trusted_signers", "popular_id_files", "rules_files"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.hold_severity not in _HOLD_SEVERITIES:
            raise ConfigError(f"the hold severity must be one of {', '.join(_HOLD_SEVERITIES)}")
        if self.author_policy not in _AUTHOR_POLICIES:
            raise ConfigError(f"the author policy must be one of {', '.join(_AUTHOR_POLICIES)}")
        if self.author_policy == "allow-list" and not self.trusted_signers:
            raise ConfigError("the allow-list author policy needs at least one --trusted-signer fingerprint")
        if self.min_release_age_seconds < 0 or self.release_check_seconds < 0:
            raise ConfigError("the minimum release age and the release check period cannot be negative")
        if self.osv_refresh_seconds < 0:
            raise ConfigError("the OSV refresh period (--osv-refresh) cannot be negative")
        if self.revocation_mode not in ("online", "offline"):
            raise ConfigError("the revocation mode must be online or offline")


@dataclass(frozen=True)
class UpstreamConfig:
    """One upstream V3 source of the read-through mirror (issue 16; ``nuseal serve --upstream``), as
    :class:`nuseal.feed.mirror.upstream.UpstreamSource` reads it (which validates it): ``name``, ``url`` (its
    service index), ``patterns`` (``packageSourceMapping`` id patterns), ``allow_insecure_connections`` (plain http
    accepted)."""

    name: str
    url: str
    patterns: tuple[str, ...] = ("*",)
    allow_insecure_connections: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))


@dataclass(frozen=True)
class FeedConfig:
    """Everything a feed process needs.

    Attributes:
        data_dir: root folder; holds ``feed.db`` (SQLite default), ``storage/`` (the documents and packages
            served as static files) and ``staging/`` (uploads in flight).
        base_url: public URL prefix, no trailing slash (``http://127.0.0.1:5000``). Documents embed it.
        database_url: SQLAlchemy URL; ``None`` means ``sqlite:///<data_dir>/feed.db``.
        max_package_size: upload cap in bytes (413 above it).
        download_flush_seconds: how often buffered download counts are written to the database.
        signing: signature enforcement and repository signing (:class:`SigningConfig`).
        ingest: the ingestion checks and quarantine (:class:`IngestConfig`).
        storage_url: where packages and documents are stored: ``None`` for ``<data_dir>/storage``, or
            ``s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]`` for an S3-compatible bucket
            (:mod:`nuseal.feed.store.s3`). The database, staging and pending entries stay in ``data_dir``.
        upstreams: the read-through mirror's upstream sources, in order (:class:`UpstreamConfig`; empty: no mirror).
        upstream_metadata_ttl: seconds an upstream's version lists and registrations are kept before asking again.
    """

    data_dir: Path
    base_url: str
    database_url: str | None = None
    max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE
    download_flush_seconds: float = 5.0
    signing: SigningConfig = field(default_factory=SigningConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    storage_url: str | None = None
    upstreams: tuple[UpstreamConfig, ...] = ()
    upstream_metadata_ttl: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstreams", tuple(self.upstreams))
        if self.upstream_metadata_ttl < 0:
            raise ConfigError("the upstream metadata TTL cannot be negative")
        if self.storage_url is not None and not self.storage_url.startswith("s3://"):
            raise ConfigError(f"the storage URL {self.storage_url!r} must be an s3:// URL (or none: the data folder)")
        if not self.base_url.startswith(("http://", "https://")) or len(self.base_url) > MAX_BASE_URL_LENGTH:
            raise ConfigError(
                f"the base URL {self.base_url!r} must be an http(s) URL of at most {MAX_BASE_URL_LENGTH} characters"
            )
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.max_package_size <= 0:
            raise ConfigError("the package size cap must be positive")
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'feed.db'}"

    @property
    def devpki_dir(self) -> Path:
        """Where the dev PKI lives when no repository key is configured."""
        return self.data_dir / "devpki"

    @property
    def repository_index_url(self) -> str:
        """The V3 service index URL written into repository signatures (always https, see :class:`SigningConfig`)."""
        if self.signing.repository_index_url:
            return self.signing.repository_index_url
        parts = urlsplit(f"{self.base_url}/v3/index.json")
        return urlunsplit(("https", *parts[1:]))

    @property
    def advertises_repository_signatures(self) -> bool:
        mode = self.signing.advertise_repository_signatures
        written = self.signing.enabled or bool(self.signing.listed_repository_certificates)
        return written and (mode == "always" or (mode == "auto" and self.base_url.startswith("https://")))

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def with_base_url(self, base_url: str) -> FeedConfig:
        return replace(self, base_url=base_url)

    def to_json(self) -> str:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeedConfig:
        """Rebuild a configuration written by :meth:`to_json`.

        Raises:
            ConfigError: not valid JSON or missing fields.
        """
        try:
            d = json.loads(text)
            d["data_dir"] = Path(d["data_dir"])
            d["signing"] = SigningConfig(**d.get("signing", {}))
            d["ingest"] = IngestConfig(**d.get("ingest", {}))
            d["upstreams"] = tuple(UpstreamConfig(**u) for u in d.get("upstreams", ()))
            return cls(**d)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"invalid feed configuration: {exc}") from exc

    @classmethod
    def from_env(cls) -> FeedConfig:
        """The configuration a ``nuseal serve`` parent process put in :data:`CONFIG_ENV_VAR`.

        Raises:
            ConfigError: the variable is missing or invalid.
        """
        text = os.environ.get(CONFIG_ENV_VAR)
        if not text:
            raise ConfigError(f"{CONFIG_ENV_VAR} is not set; start the feed with `nuseal serve`")
        return cls.from_json(text)
