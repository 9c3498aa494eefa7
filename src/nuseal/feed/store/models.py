"""The feed's metadata database: SQLAlchemy 2 typed models.

The schema is created and changed only by the Alembic migrations in ``nuseal/feed/store/migrations``; the
test suite checks that these models and the migrations agree.

Tables: ``users``, ``api_keys`` (hashes only), ``registrations`` (one row per package id, lower-cased
key; its row lock serializes publishing of one id), ``owners``, ``packages`` (one row per id+version),
``feed_settings`` (key/value, e.g. the base URL the stored documents were written for).

Signing (issue 5, migration 0002): TOTP columns on ``users``; ``certificates`` (every certificate the feed
knows: registered by users, or met in a signature it accepted or made, keyed by the SHA-256 of its DER, with
its last revocation status); ``user_certificates`` (registrations); ``package_signatures`` (the author and
repository signatures of each published version); ``audit_log``; ``web_sessions`` (hashed cookies).

Ingestion (issue 16, migration 0005): ``ingest_holds`` (quarantined and refused versions with their evidence),
``ingest_stage_results``, ``accepted_signers`` (signer continuity), ``reserved_prefixes``, ``cooldown_overrides``;
``users.is_admin``; ``packages.origin``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AcceptedSigner",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Certificate",
    "CooldownOverride",
    "FeedSetting",
    "IngestHold",
    "IngestStageResult",
    "Owner",
    "Package",
    "PackageSignature",
    "Registration",
    "ReservedPrefix",
    "User",
    "UserCertificate",
    "WebSession",
]

#: Longest user name.
MAX_USER_NAME = 64
#: Package ids are at most 100 characters (``PackageIdValidator``); columns leave room.
ID_COLUMN = 128
#: Normalized versions: input is at most 64 characters, normalization can add ``.0.0``.
VERSION_COLUMN = 128
#: Base32 TOTP secrets (160 bits are 32 characters); room for longer ones.
TOTP_SECRET_COLUMN = 64
#: Largest certificate DER stored (nuget.org accepts .cer files up to 10000 bytes).
MAX_CERTIFICATE_BYTES = 10_000


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_USER_NAME), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Base32 secret of the confirmed authenticator (None: no 2FA).
    totp_secret: Mapped[str | None] = mapped_column(String(TOTP_SECRET_COLUMN), nullable=True)
    #: Secret shown once and waiting for its first code.
    totp_pending_secret: Mapped[str | None] = mapped_column(String(TOTP_SECRET_COLUMN), nullable=True)
    #: The last accepted TOTP time step (Unix time // 30): a code of this step or older is refused (replay).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Wrong TOTP codes since the last accepted code or the last lockout (nuseal.feed.accounts.twofactor).
    totp_failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Lockouts since the last accepted code; each one lasts twice as long as the one before.
    totp_lockouts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Every code is refused until this moment (None: not locked).
    totp_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: A feed administrator (issue 16: decides on quarantined versions, sees why a held version is absent).
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="user")


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the whole key (keys are 256-bit random, so a fast hash suffices).

    ``scopes`` is a comma-separated subset of ``push-new,push-version,unlist``; ``globs`` a comma-separated
    list of package id globs (``*`` wildcard, case-insensitive).
    """

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[str] = mapped_column(String(100))
    globs: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship(back_populates="api_keys")


class Registration(Base):
    """One package id. ``id_lower`` is the key; ``id`` keeps the casing of the first push."""

    __tablename__ = "registrations"

    id_lower: Mapped[str] = mapped_column(String(ID_COLUMN), primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_COLUMN))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Owner(Base):
    __tablename__ = "owners"

    id_lower: Mapped[str] = mapped_column(ForeignKey("registrations.id_lower", ondelete="CASCADE"), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True)


class Package(Base):
    """One published id+version. Metadata is copied from the nuspec at push time."""

    __tablename__ = "packages"
    __table_args__ = (
        UniqueConstraint("id_lower", "version_lower", name="uq_packages_id_version"),
        Index("ix_packages_listed_id", "listed", "id_lower"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_lower: Mapped[str] = mapped_column(ForeignKey("registrations.id_lower", ondelete="CASCADE"))
    id: Mapped[str] = mapped_column(String(ID_COLUMN))
    version: Mapped[str] = mapped_column(String(VERSION_COLUMN))  # normalized
    version_lower: Mapped[str] = mapped_column(String(VERSION_COLUMN))
    version_full: Mapped[str] = mapped_column(String(2 * VERSION_COLUMN))  # normalized + build metadata
    is_prerelease: Mapped[bool] = mapped_column(Boolean)
    is_semver2: Mapped[bool] = mapped_column(Boolean)
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha512: Mapped[str] = mapped_column(String(100))  # base64 of the .nupkg file's SHA-512
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    tags: Mapped[str] = mapped_column(Text, default="")  # space-separated
    project_url: Mapped[str] = mapped_column(Text, default="")
    icon_url: Mapped[str] = mapped_column(Text, default="")
    license_url: Mapped[str] = mapped_column(Text, default="")
    license_expression: Mapped[str] = mapped_column(Text, default="")
    require_license_acceptance: Mapped[bool] = mapped_column(Boolean, default=False)
    min_client_version: Mapped[str] = mapped_column(String(VERSION_COLUMN), default="")
    language: Mapped[str] = mapped_column(String(64), default="")
    package_types: Mapped[str] = mapped_column(Text, default="")  # comma-separated names
    dependencies: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[tfm, id, range|null], ...]
    search_text: Mapped[str] = mapped_column(Text, default="")  # lower-cased id, title, tags, authors, description
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pushed_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk", ondelete="SET NULL"), nullable=True)
    #: ``valid`` or ``revoked`` (the author certificate was revoked before the signing timestamp).
    signature_status: Mapped[str] = mapped_column(String(16), default="valid", server_default=text("'valid'"))
    #: ``push`` (pushed to this feed) or ``upstream`` (mirrored from an upstream source; no owners).
    origin: Mapped[str] = mapped_column(String(16), default="push", server_default=text("'push'"))


class FeedSetting(Base):
    __tablename__ = "feed_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Certificate(Base):
    """A certificate the feed knows, by ``fingerprint`` (lower-case hex SHA-256 of its DER, nuget.org's
    ``Certificate.Thumbprint``). ``chain_pem`` holds the issuers seen with it (PEM, leaf excluded), which
    revalidation needs to ask OCSP/CRL. ``status`` is the last revocation answer: ``unknown``, ``good`` or
    ``revoked`` (with ``revocation_time`` when the responder gave one). ``repository_since`` is set for the
    feed's own repository-signing certificates (listed in ``RepositorySignatures``, never removed)."""

    __tablename__ = "certificates"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    chain_pem: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    revocation_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_detail: Mapped[str] = mapped_column(Text, default="")
    repository_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UserCertificate(Base):
    """A user's registered signing certificate (nuget.org's ``UserCertificate``)."""

    __tablename__ = "user_certificates"

    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True)
    certificate_pk: Mapped[int] = mapped_column(
        ForeignKey("certificates.pk", ondelete="CASCADE"), primary_key=True, index=True
    )
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PackageSignature(Base):
    """One signature of a published version: ``kind`` ``author`` or ``repository``, ``placement`` ``primary``
    or ``countersignature``; the signing time its timestamp proves (``timestamp_at``, genTime) and the TSA's
    subject; ``status`` ``valid`` or ``revoked``."""

    __tablename__ = "package_signatures"
    __table_args__ = (UniqueConstraint("package_pk", "placement", name="uq_package_signatures_placement"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_pk: Mapped[int] = mapped_column(ForeignKey("packages.pk", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    placement: Mapped[str] = mapped_column(String(16))
    certificate_pk: Mapped[int] = mapped_column(ForeignKey("certificates.pk"), index=True)
    timestamp_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    timestamp_authority: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="valid")


class AuditEntry(Base):
    """One security-relevant event: who (a user name, or ``feed`` for the feed's own tasks), what, on what,
    and the evidence (JSON)."""

    __tablename__ = "audit_log"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(MAX_USER_NAME))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(2 * ID_COLUMN + 2 * VERSION_COLUMN))
    details: Mapped[str] = mapped_column(Text, default="{}")


class WebSession(Base):
    """A signed-in browser: the SHA-256 of the cookie value, its CSRF token, its expiry, and the API key it signed
    in with (the session ends when that key is revoked, expires or is deleted)."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    api_key_pk: Mapped[int] = mapped_column(ForeignKey("api_keys.pk", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IngestHold(Base):
    """One version the ingestion checks did not simply accept (issue 16, :mod:`nuseal.feed.mirror.quarantine`): held
    for a person to decide, or refused. ``source`` is ``push`` or ``upstream`` (``upstream_url``: which one);
    ``state`` ``held``, ``released`` (published by an admin or when its cooldown passed), ``rejected`` (an admin
    said no) or ``refused`` (a check refused it for good: a known-malicious version). ``reasons`` is JSON: a list
    of ``{"stage", "kind", "message", "evidence"}`` (scan findings with snippets, NU codes, signer identities).
    The held bytes are ``DATA/quarantine/<stored_key>`` (empty once decided). ``release_at``: when a hold whose
    only reason is the cooldown ends by itself. One row per id+version: a later attempt of the same version
    updates it."""

    __tablename__ = "ingest_holds"
    __table_args__ = (UniqueConstraint("id_lower", "version_lower", name="uq_ingest_holds_id_version"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_lower: Mapped[str] = mapped_column(String(ID_COLUMN))
    id: Mapped[str] = mapped_column(String(ID_COLUMN))
    version: Mapped[str] = mapped_column(String(VERSION_COLUMN))
    version_lower: Mapped[str] = mapped_column(String(VERSION_COLUMN))
    source: Mapped[str] = mapped_column(String(16))
    upstream_url: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha512: Mapped[str] = mapped_column(String(100), default="")
    stored_key: Mapped[str] = mapped_column(Text, default="")
    pushed_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk", ondelete="SET NULL"), nullable=True)
    upstream_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    release_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str] = mapped_column(String(MAX_USER_NAME), default="")
    decision_note: Mapped[str] = mapped_column(Text, default="")


class IngestStageResult(Base):
    """What one ingestion stage said about one version (``verdict`` ``pass``, ``hold``, ``refuse`` or ``skip``),
    with its evidence (JSON); the latest run of each stage per version."""

    __tablename__ = "ingest_stage_results"
    __table_args__ = (UniqueConstraint("id_lower", "version_lower", "stage", name="uq_ingest_stage_results_stage"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_lower: Mapped[str] = mapped_column(String(ID_COLUMN))
    version_lower: Mapped[str] = mapped_column(String(VERSION_COLUMN))
    stage: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    verdict: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AcceptedSigner(Base):
    """An author signer accepted for a package id (signer continuity, issue 16): its certificate's SHA-256
    ``fingerprint`` (lower-case hex), subject and issuer; who accepted it (``feed`` for the first signed version)
    and when."""

    __tablename__ = "accepted_signers"

    id_lower: Mapped[str] = mapped_column(String(ID_COLUMN), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    accepted_by: Mapped[str] = mapped_column(String(MAX_USER_NAME))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReservedPrefix(Base):
    """An id prefix reserved for an owner (nuget.org's id prefix reservation): only its owners may push new ids
    that start with ``prefix_lower``."""

    __tablename__ = "reserved_prefixes"

    prefix_lower: Mapped[str] = mapped_column(String(ID_COLUMN), primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(ID_COLUMN))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(MAX_USER_NAME))


class CooldownOverride(Base):
    """An admin's exception to the release-age cooldown: one version (``version_lower``) or every version of the id
    (``version_lower`` empty)."""

    __tablename__ = "cooldown_overrides"

    id_lower: Mapped[str] = mapped_column(String(ID_COLUMN), primary_key=True)
    version_lower: Mapped[str] = mapped_column(String(VERSION_COLUMN), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(MAX_USER_NAME))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
