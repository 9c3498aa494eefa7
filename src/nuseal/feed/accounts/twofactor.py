"""Two-factor authentication: TOTP (RFC 6238) through ``pyotp``.

Enrolment is two steps, as authenticator apps expect:

1. :func:`begin_enrollment` makes a new 160-bit secret and returns it once as an ``otpauth://totp/`` URI
   (Google Authenticator's key URI format: issuer, account, SHA-1, 6 digits, 30 s). It is stored as
   *pending*; beginning again replaces it.
2. :func:`confirm_enrollment` checks a first code from the app; only then is 2FA on.

Every later sensitive action (registering or removing a signing certificate, signing in to the web pages)
calls :func:`require_code`, which accepts a code of the current 30-second step or one step either side
(RFC 6238 §5.2 clock drift) and refuses a code whose step is not newer than the last accepted one, so a
code can be used once (§5.2: "the verifier MUST NOT accept the second attempt of the same OTP").

Wrong codes are limited per user (a 6-digit code with unlimited attempts falls to guessing: with the 3 codes
of the window valid, 10^6 / 3 guesses on average). After :data:`MAX_FAILED_ATTEMPTS` wrong codes in a row,
every code of that user (the right one too) is refused with :class:`TwoFactorLockedError` (HTTP 429, the
message says until when) for :data:`LOCKOUT`, doubling with each further lockout up to :data:`MAX_LOCKOUT`;
an accepted code resets both counts (RFC 4226 §7.3 throttling, which RFC 6238 §5.2 refers to). With those
numbers a guesser gets about 5 tries a day once the lockouts have grown, about 0.5 % chance of success a year.
The counts live in the ``users`` row, so every worker and every path (the API's ``X-NuSeal-TOTP``, the web
forms and sign-in, the admin CLI) shares them; each lockout is written to the audit log (``2fa.locked``).

Because a refused code must still count, a wrong code **commits the caller's transaction** (with the failure
counted) before :class:`TwoFactorError` is raised: callers check the code before making any change of their
own (all of them do: certificate registration and removal, sign-in, enrolment). The user's row is read with
``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite's write transaction already holds the database's writer lock), so
concurrent guesses on several workers are counted one after another and none gets past the limit.

Codes are compared in constant time by ``pyotp``. Secrets are stored as written (base32); whoever reads the
database can mint codes, as with any TOTP server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.errors import BadRequestError, ForbiddenError, NotFoundError
from nuseal.feed.store import audit
from nuseal.feed.store.models import User

__all__ = [
    "LOCKOUT",
    "MAX_FAILED_ATTEMPTS",
    "MAX_LOCKOUT",
    "TOTP_DIGITS",
    "TOTP_PERIOD_SECONDS",
    "TOTP_VALID_WINDOW",
    "PendingEnrollment",
    "TwoFactorError",
    "TwoFactorLockedError",
    "begin_enrollment",
    "confirm_enrollment",
    "disable_two_factor",
    "has_two_factor",
    "qr_svg",
    "require_code",
]

#: Digits per code (RFC 6238 / what every authenticator app shows).
TOTP_DIGITS = 6
#: Seconds per time step (RFC 6238 §4.1 default X = 30).
TOTP_PERIOD_SECONDS = 30
#: Steps accepted on either side of the current one (clock drift, RFC 6238 §5.2).
TOTP_VALID_WINDOW = 1
#: Base32 characters of a new secret: 32 characters = 160 bits, RFC 4226 §4's recommended length.
SECRET_LENGTH = 32
#: The issuer shown in authenticator apps.
DEFAULT_ISSUER = "nuseal feed"
_CODE = re.compile(r"^[0-9]{6}$")
#: Wrong codes in a row (per user, every path counted) that lock the user's codes.
MAX_FAILED_ATTEMPTS = 5
#: How long the first lockout lasts; each further one without an accepted code in between lasts twice as long.
LOCKOUT = timedelta(minutes=15)
#: The longest lockout.
MAX_LOCKOUT = timedelta(hours=24)
_MAX_DOUBLINGS = 16


class TwoFactorError(ForbiddenError):
    """A missing, malformed, wrong or replayed TOTP code, or 2FA not enabled where it is required (403)."""


class TwoFactorLockedError(TwoFactorError):
    """Too many wrong codes: every code of the user is refused until :attr:`until` (429 Too Many Requests)."""

    status = 429

    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class PendingEnrollment:
    """A new secret waiting for its first code: ``secret`` (base32) and ``uri`` (``otpauth://totp/...``)."""

    user_name: str
    secret: str
    uri: str


def _user(session: Session, user_name: str, *, for_update: bool = False) -> User:
    query = select(User).where(User.name == user_name)
    if for_update:  # re-read (not the identity map's copy) and lock the row (PostgreSQL; SQLite ignores it)
        query = query.with_for_update().execution_options(populate_existing=True)
    user = session.scalar(query)
    if user is None:
        raise NotFoundError(f"no user named {user_name!r}")
    return user


def has_two_factor(user: User) -> bool:
    return user.totp_secret is not None


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS)


def begin_enrollment(session: Session, user_name: str, *, issuer: str = DEFAULT_ISSUER) -> PendingEnrollment:
    """Make a new pending secret for ``user_name``; show the returned URI once (it is not retrievable later).

    Raises:
        NotFoundError: no such user.
        BadRequestError: 2FA is already on (an administrator must disable it first).
    """
    user = _user(session, user_name)
    if has_two_factor(user):
        raise BadRequestError(f"two-factor authentication is already enabled for {user_name!r}")
    secret = pyotp.random_base32(SECRET_LENGTH)
    user.totp_pending_secret = secret
    session.flush()
    return PendingEnrollment(user.name, secret, _uri(secret, user.name, issuer))


def _uri(secret: str, account: str, issuer: str) -> str:
    # Key URI format: otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...; pyotp quotes the label parts.
    uri: str = _totp(secret).provisioning_uri(name=account, issuer_name=issuer)
    return uri


def _step(now: datetime) -> int:
    return int(now.timestamp()) // TOTP_PERIOD_SECONDS


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to, within the window around ``now``; None if it matches none."""
    totp = _totp(secret)
    current = _step(now)
    for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
        if pyotp.utils.strings_equal(code, totp.generate_otp(step)):
            return step
    return None


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _refuse_if_locked(user: User, now: datetime) -> None:
    """Raises: TwoFactorLockedError while the user's codes are locked."""
    if user.totp_locked_until is None:
        return
    until = _aware(user.totp_locked_until)
    if now < until:
        raise TwoFactorLockedError(
            f"too many wrong two-factor codes for {user.name!r}: every code is refused until "
            f"{until.isoformat(timespec='seconds')} ({_minutes(until - now)}); try again after that",
            until=until,
        )


def _minutes(span: timedelta) -> str:
    minutes = max(1, -(-int(span.total_seconds()) // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _wrong_code(session: Session, user: User, message: str, *, now: datetime) -> NoReturn:
    """Count a wrong code, lock the user's codes at :data:`MAX_FAILED_ATTEMPTS` (with an audit entry), commit the
    caller's transaction so the count survives the refusal, and raise.

    Raises:
        TwoFactorError: the code was wrong (the message says how many attempts are left).
        TwoFactorLockedError: this wrong code started a lockout.
    """
    failed = (user.totp_failed_attempts or 0) + 1
    error: TwoFactorError
    if failed < MAX_FAILED_ATTEMPTS:
        user.totp_failed_attempts = failed
        left = MAX_FAILED_ATTEMPTS - failed
        error = TwoFactorError(
            f"{message}; {left} more wrong code{'s' if left != 1 else ''} and two-factor codes are refused for a while"
        )
    else:
        lockouts = user.totp_lockouts or 0
        period = min(LOCKOUT * 2 ** min(lockouts, _MAX_DOUBLINGS), MAX_LOCKOUT)
        until = now + period
        user.totp_failed_attempts = 0
        user.totp_lockouts = lockouts + 1
        user.totp_locked_until = until
        audit.record(
            session,
            at=now,
            actor=audit.FEED_ACTOR,
            action="2fa.locked",
            target=f"user:{user.name}",
            failed_attempts=failed,
            lockout=lockouts + 1,
            locked_until=until,
            seconds=int(period.total_seconds()),
        )
        error = TwoFactorLockedError(
            f"{message}; that was {failed} wrong codes in a row, so every two-factor code for {user.name!r} is "
            f"refused until {until.isoformat(timespec='seconds')} ({_minutes(period)}); try again after that",
            until=until,
        )
    session.commit()
    raise error


def _accepted(user: User) -> None:
    user.totp_failed_attempts = 0
    user.totp_lockouts = 0
    user.totp_locked_until = None


def _clean(code: str | None) -> str:
    text = (code or "").replace(" ", "").strip()
    if not text:
        raise TwoFactorError("a two-factor code is required (6 digits from the authenticator app)")
    if not _CODE.fullmatch(text):
        raise TwoFactorError("the two-factor code must be 6 digits")
    return text


def confirm_enrollment(session: Session, user_name: str, code: str | None, *, now: datetime) -> None:
    """Turn 2FA on with the first code from the app for the pending secret.

    Wrong codes count towards the user's limit (module docstring): a wrong code commits the caller's
    transaction with the failure counted, then raises.

    Raises:
        NotFoundError: no such user.
        BadRequestError: no enrolment is pending.
        TwoFactorLockedError: too many wrong codes; refused (the right code too) until the time in the message.
        TwoFactorError: the code is missing, malformed or wrong.
    """
    user = _user(session, user_name, for_update=True)
    if user.totp_pending_secret is None:
        raise BadRequestError(f"no two-factor enrolment is pending for {user_name!r}; begin one first")
    _refuse_if_locked(user, now)
    text = _clean(code)
    step = _matching_step(user.totp_pending_secret, text, now)
    if step is None:
        _wrong_code(session, user, "the two-factor code is wrong (check the device's clock)", now=now)
    _accepted(user)
    user.totp_secret = user.totp_pending_secret
    user.totp_pending_secret = None
    user.totp_last_step = step
    user.totp_enabled_at = now
    session.flush()


def require_code(session: Session, user: User, code: str | None, *, now: datetime) -> None:
    """Check a fresh TOTP code of ``user`` and spend it (a code of a step already used is refused).

    The caller's transaction must commit for the code to count as used; run this in a write session, before any
    change of the caller's own: a wrong code counts towards the user's limit (module docstring), so it commits
    the caller's transaction with the failure counted, then raises.

    Raises:
        TwoFactorLockedError: too many wrong codes; refused (the right code too) until the time in the message.
        TwoFactorError: 2FA is not enabled, or the code is missing, malformed, wrong, or already used.
    """
    session.refresh(user, with_for_update=True)  # the current counts, the row locked (PostgreSQL)
    if user.totp_secret is None:
        raise TwoFactorError(
            f"two-factor authentication is not enabled for {user.name!r}; enable it first "
            "(web page /account, or `nuseal admin enable-2fa`)"
        )
    _refuse_if_locked(user, now)
    text = _clean(code)
    step = _matching_step(user.totp_secret, text, now)
    if step is None:
        _wrong_code(session, user, "the two-factor code is wrong or expired (check the device's clock)", now=now)
    if user.totp_last_step is not None and step <= user.totp_last_step:
        raise TwoFactorError("this two-factor code was already used; wait for the next one")
    _accepted(user)
    user.totp_last_step = step
    session.flush()


def disable_two_factor(session: Session, user_name: str) -> bool:
    """Administrator reset: remove the user's secret (and any pending one). Returns whether 2FA was on.

    Raises:
        NotFoundError: no such user.
    """
    user = _user(session, user_name)
    was_on = user.totp_secret is not None
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_last_step = None
    user.totp_enabled_at = None
    _accepted(user)  # an administrator's reset also ends a lockout
    session.flush()
    return was_on


def qr_svg(uri: str) -> str | None:
    """An inline SVG QR code of ``uri`` when the optional ``segno`` package is installed, else None (the
    page then shows the URI and the secret to type in)."""
    try:
        import segno  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    svg: str = segno.make(uri, error="m").svg_inline(scale=4)
    return svg
