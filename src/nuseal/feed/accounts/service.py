"""Account administration as service operations: what ``nuseal admin`` and the account pages and API do to users,
API keys, owners, two-factor authentication and registered certificates, each in one database transaction with
its audit row.

The building blocks (:mod:`.keys`, :mod:`.twofactor`, :mod:`.certificates`) work inside a caller's session; the
functions here own the transaction (``db.write()`` / ``db.read()``) so that a caller (the CLI) holds no session
logic of its own. :func:`enable_two_factor` is the one place that turns two-factor authentication on and writes
the ``2fa.enabled`` audit row; the HTTP handlers call it inside their own transaction, the CLI through
:func:`confirm_two_factor`. No HTTP here (``import nuseal.feed.accounts.service`` loads no Starlette).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.accounts import certificates, keys, twofactor
from nuseal.feed.config import FeedConfig
from nuseal.feed.errors import NotFoundError
from nuseal.feed.store import audit
from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.models import User

__all__ = [
    "add_owner",
    "begin_two_factor",
    "confirm_two_factor",
    "create_api_key",
    "create_user",
    "disable_two_factor",
    "enable_two_factor",
    "list_certificates",
    "open_database",
    "read_audit_log",
    "register_certificate",
    "remove_certificate",
    "revoke_api_key",
    "user_pk_by_name",
]


def open_database(data_dir: Path, database_url: str | None) -> Database:
    """The feed database of ``data_dir`` (or ``database_url``), migrated to the current schema; the caller
    disposes it (``db.dispose()``).

    Raises:
        ConfigError: bad database URL.
    """
    config = FeedConfig(data_dir=data_dir, base_url="http://localhost", database_url=database_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(config.effective_database_url)
    migrate(db)
    return db


def user_pk_by_name(session: Session, name: str) -> int:
    """The primary key of user ``name``.

    Raises:
        NotFoundError: no such user.
    """
    pk = session.scalar(select(User.pk).where(User.name == name))
    if pk is None:
        raise NotFoundError(f"no user named {name!r}")
    return int(pk)


# ------------------------------------------------------------------------------------------------ users and keys
def create_user(db: Database, name: str, *, now: datetime) -> None:
    """Create user ``name`` (:func:`.keys.create_user`; its errors)."""
    with db.write() as session:
        keys.create_user(session, name, now=now)


def create_api_key(
    db: Database,
    user_name: str,
    *,
    now: datetime,
    scopes: frozenset[keys.Scope] | None = None,
    globs: tuple[str, ...] = ("*",),
    expires_in_days: int | None = None,
    description: str = "",
) -> keys.CreatedApiKey:
    """Create an API key for ``user_name`` (:func:`.keys.create_api_key`; the key text is in the result only)."""
    with db.write() as session:
        return keys.create_api_key(
            session,
            user_name,
            now=now,
            scopes=scopes,
            globs=globs,
            expires_in_days=expires_in_days,
            description=description,
        )


def revoke_api_key(db: Database, prefix: str) -> int:
    """Revoke the keys whose shown prefix is ``prefix``; how many were revoked."""
    with db.write() as session:
        return keys.revoke_api_key(session, prefix)


def add_owner(db: Database, package_id: str, user_name: str) -> None:
    """Make ``user_name`` an owner of ``package_id`` (:func:`.keys.add_owner`; its errors)."""
    with db.write() as session:
        keys.add_owner(session, package_id, user_name)


# ------------------------------------------------------------------------------------------------ two-factor
def begin_two_factor(db: Database, user_name: str) -> twofactor.PendingEnrollment:
    """Start enrolment: a new secret and its ``otpauth://`` URI (:func:`.twofactor.begin_enrollment`)."""
    with db.write() as session:
        return twofactor.begin_enrollment(session, user_name)


def enable_two_factor(session: Session, user_name: str, code: str | None, *, now: datetime) -> None:
    """Turn two-factor authentication on for ``user_name`` with the first ``code`` from the app, and write the
    ``2fa.enabled`` audit row, in the caller's transaction: the one place that does either.

    Raises:
        TwoFactorError, TwoFactorLockedError, NotFoundError: see :func:`.twofactor.confirm_enrollment`.
    """
    twofactor.confirm_enrollment(session, user_name, code, now=now)
    audit.record(session, at=now, actor=user_name, action="2fa.enabled", target=f"user:{user_name}")


def confirm_two_factor(db: Database, user_name: str, code: str, *, now: datetime) -> None:
    """:func:`enable_two_factor` in its own transaction (the CLI's ``confirm-2fa``)."""
    with db.write() as session:
        enable_two_factor(session, user_name, code, now=now)


def disable_two_factor(db: Database, user_name: str, *, now: datetime, actor: str = "admin") -> bool:
    """Administrator reset: two-factor authentication off for ``user_name`` (e.g. a lost device), audited as
    ``2fa.disabled`` by ``actor``. Returns whether it was on."""
    with db.write() as session:
        was_on = twofactor.disable_two_factor(session, user_name)
        audit.record(session, at=now, actor=actor, action="2fa.disabled", target=f"user:{user_name}", was_on=was_on)
    return was_on


# ------------------------------------------------------------------------------------------------ certificates
def register_certificate(
    db: Database, user_name: str, data: bytes, *, totp_code: str, now: datetime
) -> certificates.RegisteredCertificate:
    """Register the signing certificate ``data`` (DER or PEM) for ``user_name``, who proves it with a TOTP code
    (:func:`.certificates.register_certificate`; its errors, and NotFoundError for an unknown user)."""
    with db.write() as session:
        return certificates.register_certificate(
            session, user_pk_by_name(session, user_name), data, totp_code=totp_code, now=now
        )


def list_certificates(db: Database, user_name: str) -> list[certificates.RegisteredCertificate]:
    """The certificates ``user_name`` registered."""
    with db.read() as session:
        return certificates.list_certificates(session, user_pk_by_name(session, user_name))


def remove_certificate(db: Database, user_name: str, fingerprint: str, *, totp_code: str, now: datetime) -> None:
    """Remove the certificate ``fingerprint`` (SHA-256 hex) from ``user_name``'s registered certificates
    (:func:`.certificates.remove_certificate`; its errors)."""
    with db.write() as session:
        certificates.remove_certificate(
            session, user_pk_by_name(session, user_name), fingerprint, totp_code=totp_code, now=now
        )


# ------------------------------------------------------------------------------------------------ audit log
def read_audit_log(
    db: Database, *, target: str | None = None, actions: Sequence[str] = (), limit: int = audit.MAX_AUDIT_ROWS
) -> list[audit.AuditRecord]:
    """The newest ``limit`` audit rows (about ``target``, with one of ``actions`` when given), oldest first."""
    with db.read() as session:
        return audit.read_audit(session, target=target, actions=actions, limit=limit, newest=True)
