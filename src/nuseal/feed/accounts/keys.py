"""Users, package ownership and API keys.

API keys are 256-bit random strings shown once at creation and stored as their SHA-256 (a slow password
hash buys nothing for keys of this entropy). Each key has scopes and package id globs, like nuget.org's
keys (``docs/nuget-org/scoped-api-keys.md`` in NuGet's documentation):

* ``push-new``: push new package ids and new versions of owned ids;
* ``push-version``: push new versions of ids the user already owns;
* ``unlist``: unlist and relist versions of owned ids.

A glob is a case-insensitive package id pattern in which ``*`` matches any run of characters.

**Full scope.** nuget.org's scoped keys can only push and unlist: the account (2FA, certificates, keys) needs
the signed-in owner. Here a key is *full-scope* when it has every scope above and the glob ``*`` among its globs,
i.e. it may already do everything a key can do to every package of its user; that is the key
``nuseal admin create-api-key NAME`` makes without ``--scope`` or ``--glob``. Only a full-scope key reaches the
account (:meth:`Principal.require_account`): the ``/api/account`` routes, and signing in to the ``/account`` pages,
whose session lasts only while that key is valid and full-scope (:func:`account_key_valid`). Any narrower key is
refused there before anything else is looked at, so it cannot enrol 2FA, change certificates, nor spend or count a
TOTP code of its user.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.errors import UsageError
from nuseal.feed.errors import AuthenticationError, ForbiddenError
from nuseal.feed.store.models import MAX_USER_NAME, ApiKey, Owner, Registration, User, WebSession

__all__ = [
    "API_KEY_PREFIX",
    "CreatedApiKey",
    "Principal",
    "Scope",
    "account_key_valid",
    "add_owner",
    "authenticate",
    "is_full_scope",
    "create_api_key",
    "create_user",
    "glob_matches",
    "hash_api_key",
    "owners_of",
    "revoke_api_key",
]

#: Every key starts with this marker, so secret scanners can find leaked ones.
API_KEY_PREFIX = "nsk_"
#: Random bytes per key.
API_KEY_BYTES = 32
#: Longest key accepted in a request (anything longer cannot be one of ours).
MAX_API_KEY_LENGTH = 128
MAX_GLOBS = 32
MAX_GLOB_LENGTH = 128
MAX_EXPIRY_DAYS = 3650
# used with fullmatch: a "$" anchor would also accept a name or glob ending in a newline
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_GLOB = re.compile(r"[A-Za-z0-9_.*-]+")


class Scope(enum.StrEnum):
    PUSH_NEW = "push-new"
    PUSH_VERSION = "push-version"
    UNLIST = "unlist"


def is_full_scope(scopes: frozenset[Scope], globs: tuple[str, ...]) -> bool:
    """Whether a key with ``scopes`` and ``globs`` is full-scope: every :class:`Scope`, and the glob ``*``."""
    return scopes >= frozenset(Scope) and "*" in globs


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of the key's UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def glob_matches(glob: str, package_id: str) -> bool:
    """Whether ``package_id`` matches ``glob`` (case-insensitive, ``*`` = any run of characters)."""
    pattern = ".*".join(re.escape(part) for part in glob.lower().split("*"))
    return re.fullmatch(pattern, package_id.lower()) is not None


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and what their key allows."""

    user_pk: int
    user_name: str
    key_pk: int
    scopes: frozenset[Scope]
    globs: tuple[str, ...]

    @property
    def full_scope(self) -> bool:
        """Every scope on ``*`` (module docstring): the only keys that reach the account."""
        return is_full_scope(self.scopes, self.globs)

    def require_account(self) -> None:
        """Raise unless this key may use the account: 2FA, signing certificates, the web pages.

        Raises:
            ForbiddenError: a scoped key (nuget.org's scoped keys cannot touch the account either).
        """
        if not self.full_scope:
            raise ForbiddenError(
                f"this API key is scoped (scopes: {_fmt_scopes(self.scopes)}; globs: {', '.join(self.globs)}); "
                "account and security settings (two-factor authentication, signing certificates, the /account "
                "pages) need a full-scope key: every scope on the glob '*', as `nuseal admin create-api-key NAME` "
                "makes without --scope or --glob"
            )

    def allows_id(self, package_id: str) -> bool:
        return any(glob_matches(g, package_id) for g in self.globs)

    def require(self, package_id: str, *, new_id: bool, action: str = "push") -> None:
        """Raise unless this key may do ``action`` (``push`` or ``unlist``) on ``package_id``.

        Raises:
            ForbiddenError: missing scope or no glob matching the id.
        """
        if action == "push":
            needed = {Scope.PUSH_NEW} if new_id else {Scope.PUSH_NEW, Scope.PUSH_VERSION}
            if not needed & self.scopes:
                what = "push new package ids" if new_id else "push package versions"
                raise ForbiddenError(f"this API key may not {what} (its scopes: {_fmt_scopes(self.scopes)})")
        elif Scope.UNLIST not in self.scopes:
            raise ForbiddenError(f"this API key may not unlist or relist (its scopes: {_fmt_scopes(self.scopes)})")
        if not self.allows_id(package_id):
            raise ForbiddenError(
                f"this API key does not cover the package id {package_id!r} (its globs: {', '.join(self.globs)})"
            )


def _fmt_scopes(scopes: frozenset[Scope]) -> str:
    return ", ".join(sorted(s.value for s in scopes)) or "none"


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key: ``key`` is the secret, shown once and never stored."""

    key: str
    pk: int
    user_name: str
    scopes: frozenset[Scope]
    globs: tuple[str, ...]
    expires_at: datetime | None


def _check_user_name(name: str) -> None:
    if not (1 <= len(name) <= MAX_USER_NAME) or not _USER_NAME.fullmatch(name):
        raise UsageError(
            f"invalid user name {name!r}: letters, digits, '_', '.', '-', at most {MAX_USER_NAME} characters"
        )


def create_user(session: Session, name: str, *, now: datetime) -> User:
    """Create a user.

    Raises:
        UsageError: invalid name, or the name is taken.
    """
    _check_user_name(name)
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UsageError(f"the user {name!r} already exists")
    user = User(name=name, created_at=now)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise UsageError(f"the user {name!r} already exists") from exc
    return user


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UsageError(f"no user named {name!r}")
    return user


def create_api_key(
    session: Session,
    user_name: str,
    *,
    now: datetime,
    scopes: frozenset[Scope] | None = None,
    globs: tuple[str, ...] = ("*",),
    expires_in_days: int | None = None,
    description: str = "",
) -> CreatedApiKey:
    """Create an API key for ``user_name``; default scopes are all three, default glob ``*``.

    Raises:
        UsageError: unknown user, no scope, bad glob, too many globs, or an expiry out of 1..3650 days.
    """
    user = _user(session, user_name)
    chosen = frozenset(Scope) if scopes is None else scopes
    if not chosen:
        raise UsageError("an API key needs at least one scope")
    if not globs or len(globs) > MAX_GLOBS:
        raise UsageError(f"an API key needs 1 to {MAX_GLOBS} globs")
    for g in globs:
        if len(g) > MAX_GLOB_LENGTH or not _GLOB.fullmatch(g):
            raise UsageError(f"invalid package id glob {g!r}: letters, digits, '_', '.', '-' and '*'")
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise UsageError(f"the expiry must be 1 to {MAX_EXPIRY_DAYS} days")
        expires_at = now + timedelta(days=expires_in_days)
    secret = API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)
    row = ApiKey(
        user_pk=user.pk,
        key_hash=hash_api_key(secret),
        prefix=secret[: len(API_KEY_PREFIX) + 6],
        description=description[:200],
        scopes=",".join(sorted(s.value for s in chosen)),
        globs=",".join(globs),
        created_at=now,
        expires_at=expires_at,
        revoked=False,
    )
    session.add(row)
    session.flush()
    return CreatedApiKey(secret, row.pk, user.name, chosen, tuple(globs), expires_at)


def revoke_api_key(session: Session, prefix: str) -> int:
    """Revoke every key whose displayed prefix is ``prefix``; returns how many.

    Raises:
        UsageError: no key has this prefix.
    """
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).all()
    if not rows:
        raise UsageError(f"no API key starts with {prefix!r}")
    for row in rows:
        row.revoked = True
    # the web sessions signed in with these keys end with them (account_key_valid refuses them anyway)
    session.execute(delete(WebSession).where(WebSession.api_key_pk.in_([row.pk for row in rows])))
    return len(rows)


def _aware(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def authenticate(session: Session, key: str | None, *, now: datetime) -> Principal:
    """The principal behind an ``X-NuGet-ApiKey`` value.

    Raises:
        AuthenticationError: no key (status 401), or an unknown, revoked or expired key (403).
    """
    if not key:
        raise AuthenticationError("an API key is required (X-NuGet-ApiKey)", status=401)
    bad = AuthenticationError("the API key is invalid, revoked or expired")
    if len(key) > MAX_API_KEY_LENGTH or not key.startswith(API_KEY_PREFIX):
        raise bad
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    if row is None or row.revoked:
        raise bad
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        raise AuthenticationError("the API key has expired")
    user = session.get(User, row.user_pk)
    if user is None:  # pragma: no cover - FK cascade removes keys with their user
        raise bad
    return Principal(user.pk, user.name, row.pk, _scopes(row), _globs(row))


def _scopes(row: ApiKey) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in row.scopes.split(",") if s)


def _globs(row: ApiKey) -> tuple[str, ...]:
    return tuple(g for g in row.globs.split(",") if g)


def account_key_valid(session: Session, key_pk: int | None, user_pk: int, *, now: datetime) -> bool:
    """Whether the key ``key_pk`` (the one a web session signed in with) still lets ``user_pk`` use the account:
    it exists, belongs to the user, is neither revoked nor expired, and is full-scope."""
    if key_pk is None:
        return False
    row = session.get(ApiKey, key_pk)
    if row is None or row.revoked or row.user_pk != user_pk:
        return False
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return False
    return is_full_scope(_scopes(row), _globs(row))


def owners_of(session: Session, id_lower: str) -> list[str]:
    """User names owning the id, sorted."""
    return sorted(
        session.scalars(select(User.name).join(Owner, Owner.user_pk == User.pk).where(Owner.id_lower == id_lower)).all()
    )


def add_owner(session: Session, package_id: str, user_name: str) -> None:
    """Make ``user_name`` an owner of ``package_id`` (which must have been pushed).

    Raises:
        UsageError: unknown user or package id; already an owner.
    """
    user = _user(session, user_name)
    reg = session.get(Registration, package_id.lower())
    if reg is None:
        raise UsageError(f"no package with the id {package_id!r}")
    if session.get(Owner, (reg.id_lower, user.pk)) is not None:
        raise UsageError(f"{user_name!r} already owns {reg.id!r}")
    session.add(Owner(id_lower=reg.id_lower, user_pk=user.pk))
    session.flush()
