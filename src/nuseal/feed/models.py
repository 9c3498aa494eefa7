"""The feed's metadata database: SQLAlchemy 2 typed models.

The schema is created and changed only by the Alembic migrations in ``nuseal/feed/migrations``; the
test suite checks that these models and the migrations agree.

Tables: ``users``, ``api_keys`` (hashes only), ``registrations`` (one row per package id, lower-cased
key; its row lock serializes publishing of one id), ``owners``, ``packages`` (one row per id+version),
``feed_settings`` (key/value, e.g. the base URL the stored documents were written for).
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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["ApiKey", "Base", "FeedSetting", "Owner", "Package", "Registration", "User"]

#: Longest user name.
MAX_USER_NAME = 64
#: Package ids are at most 100 characters (``PackageIdValidator``); columns leave room.
ID_COLUMN = 128
#: Normalized versions: input is at most 64 characters, normalization can add ``.0.0``.
VERSION_COLUMN = 128


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_USER_NAME), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

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


class FeedSetting(Base):
    __tablename__ = "feed_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
