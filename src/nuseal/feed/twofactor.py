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

Codes are compared in constant time by ``pyotp``. Secrets are stored as written (base32); whoever reads the
database can mint codes, as with any TOTP server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.errors import BadRequestError, ForbiddenError, NotFoundError
from nuseal.feed.models import User

__all__ = [
    "TOTP_DIGITS",
    "TOTP_PERIOD_SECONDS",
    "TOTP_VALID_WINDOW",
    "PendingEnrollment",
    "TwoFactorError",
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


class TwoFactorError(ForbiddenError):
    """A missing, malformed, wrong or replayed TOTP code, or 2FA not enabled where it is required (403)."""


@dataclass(frozen=True)
class PendingEnrollment:
    """A new secret waiting for its first code: ``secret`` (base32) and ``uri`` (``otpauth://totp/...``)."""

    user_name: str
    secret: str
    uri: str


def _user(session: Session, user_name: str) -> User:
    user = session.scalar(select(User).where(User.name == user_name))
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


def _clean(code: str | None) -> str:
    text = (code or "").replace(" ", "").strip()
    if not text:
        raise TwoFactorError("a two-factor code is required (6 digits from the authenticator app)")
    if not _CODE.match(text):
        raise TwoFactorError("the two-factor code must be 6 digits")
    return text


def confirm_enrollment(session: Session, user_name: str, code: str | None, *, now: datetime) -> None:
    """Turn 2FA on with the first code from the app for the pending secret.

    Raises:
        NotFoundError: no such user.
        BadRequestError: no enrolment is pending.
        TwoFactorError: the code is missing, malformed or wrong.
    """
    user = _user(session, user_name)
    if user.totp_pending_secret is None:
        raise BadRequestError(f"no two-factor enrolment is pending for {user_name!r}; begin one first")
    text = _clean(code)
    step = _matching_step(user.totp_pending_secret, text, now)
    if step is None:
        raise TwoFactorError("the two-factor code is wrong (check the device's clock)")
    user.totp_secret = user.totp_pending_secret
    user.totp_pending_secret = None
    user.totp_last_step = step
    user.totp_enabled_at = now
    session.flush()


def require_code(session: Session, user: User, code: str | None, *, now: datetime) -> None:
    """Check a fresh TOTP code of ``user`` and spend it (a code of a step already used is refused).

    The caller's transaction must commit for the code to count as used; run this in a write session.

    Raises:
        TwoFactorError: 2FA is not enabled, or the code is missing, malformed, wrong, or already used.
    """
    if user.totp_secret is None:
        raise TwoFactorError(
            f"two-factor authentication is not enabled for {user.name!r}; enable it first "
            "(web page /account, or `nuseal admin enable-2fa`)"
        )
    text = _clean(code)
    step = _matching_step(user.totp_secret, text, now)
    if step is None:
        raise TwoFactorError("the two-factor code is wrong or expired (check the device's clock)")
    if user.totp_last_step is not None and step <= user.totp_last_step:
        raise TwoFactorError("this two-factor code was already used; wait for the next one")
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
