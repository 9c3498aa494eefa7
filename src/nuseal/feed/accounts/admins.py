"""Administrators and reserved id prefixes (nuget.org's id prefix reservation): who may decide and who may push what.

* ``users.is_admin``: an administrator decides on quarantined versions (``/admin/quarantine``) and, with a full-scope
  API key, sees why a held version is absent (the ``X-NuSeal-Quarantine`` header on its ``.nupkg`` 404).
* ``reserved_prefixes``: only the prefix's owners may push *new* ids that start with it (case-insensitive; ``Contoso.``
  covers ``Contoso.Utils``, ``Contoso`` also covers ``ContosoLib``; a trailing ``*`` is dropped), as nuget.org's
  reserved namespaces (``ReservedNamespace`` with ``IsPrefix``). An id whose owners include an owner of a matching
  prefix shows the verified mark on its pages.

Every change writes an audit row (``admin.granted``, ``admin.revoked``, ``prefix.reserved``, ``prefix.unreserved``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nuseal.errors import UsageError
from nuseal.feed.accounts.keys import authenticate, is_full_scope
from nuseal.feed.errors import FeedError, NotFoundError
from nuseal.feed.store import audit
from nuseal.feed.store.models import ID_COLUMN, Owner, ReservedPrefix, User

__all__ = [
    "PrefixReservation",
    "is_admin_key",
    "list_prefixes",
    "reserve_prefix",
    "set_admin",
    "unreserve_prefix",
    "verified_prefixes",
]


@dataclass(frozen=True)
class PrefixReservation:
    prefix: str
    owner: str
    created_at: datetime
    created_by: str


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    return user


def _normalize_prefix(prefix: str) -> str:
    text = prefix.strip().rstrip("*")
    if not text or len(text) > ID_COLUMN or any(c.isspace() for c in text):
        raise UsageError(f"{prefix!r} is not a package id prefix (1-{ID_COLUMN} characters, no spaces)")
    return text


def set_admin(session: Session, name: str, *, admin: bool, actor: str, now: datetime) -> None:
    """Grant (``admin``) or revoke a user's administrator role; audited.

    Raises:
        NotFoundError: no such user.
    """
    user = _user(session, name)
    if user.is_admin != admin:
        user.is_admin = admin
        audit.record(
            session, at=now, actor=actor, action="admin.granted" if admin else "admin.revoked", target=f"user:{name}"
        )


def is_admin_key(session: Session, key: str | None, *, now: datetime) -> str | None:
    """The user name behind ``key`` (an ``X-NuGet-ApiKey`` value) when it is a valid full-scope key of an
    administrator; None otherwise (no key, a bad key, a scoped key, not an admin)."""
    if not key:
        return None
    try:
        principal = authenticate(session, key, now=now)
    except FeedError:
        return None
    user = session.get(User, principal.user_pk)
    if user is None or not user.is_admin or not is_full_scope(principal.scopes, principal.globs):
        return None
    return user.name


def reserve_prefix(session: Session, prefix: str, owner: str, *, actor: str, now: datetime) -> PrefixReservation:
    """Reserve ``prefix`` for user ``owner`` (idempotent; a prefix may have several owners); audited.

    Raises:
        NotFoundError: no such user. UsageError: not a prefix.
    """
    text = _normalize_prefix(prefix)
    user = _user(session, owner)
    row = session.get(ReservedPrefix, (text.lower(), user.pk))
    if row is None:
        row = ReservedPrefix(prefix_lower=text.lower(), user_pk=user.pk, prefix=text, created_at=now, created_by=actor)
        session.add(row)
        audit.record(session, at=now, actor=actor, action="prefix.reserved", target=f"prefix:{text}", owner=owner)
        session.flush()
    return PrefixReservation(row.prefix, owner, row.created_at, row.created_by)


def unreserve_prefix(session: Session, prefix: str, owner: str | None, *, actor: str, now: datetime) -> int:
    """Remove the reservation of ``prefix`` for ``owner`` (None: for everyone); returns how many were removed."""
    text = _normalize_prefix(prefix)
    query = delete(ReservedPrefix).where(ReservedPrefix.prefix_lower == text.lower())
    if owner is not None:
        query = query.where(ReservedPrefix.user_pk == _user(session, owner).pk)
    removed = int(getattr(session.execute(query), "rowcount", 0) or 0)
    if removed:
        audit.record(session, at=now, actor=actor, action="prefix.unreserved", target=f"prefix:{text}", owner=owner)
    return removed


def list_prefixes(session: Session) -> list[PrefixReservation]:
    rows = session.execute(
        select(ReservedPrefix, User.name).join(User, User.pk == ReservedPrefix.user_pk).order_by(ReservedPrefix.prefix)
    ).all()
    return [PrefixReservation(r.prefix, name, r.created_at, r.created_by) for r, name in rows]


def verified_prefixes(session: Session, id_lower: str) -> list[str]:
    """The reserved prefixes that cover ``id_lower`` and are held by one of its owners (the verified mark)."""
    owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
    if not owners:
        return []
    rows = session.scalars(select(ReservedPrefix).where(ReservedPrefix.user_pk.in_(owners))).all()
    return sorted({r.prefix for r in rows if id_lower.startswith(r.prefix_lower)})
