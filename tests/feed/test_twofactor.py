"""TOTP two-factor authentication: enrolment shown once and confirmed with a first code, fresh codes only,
replays refused; through the service functions (fixed clock), the admin CLI and the HTTP API.

Expected codes are computed with pyotp from the secret in the otpauth:// URI, at chosen moments."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from nuseal.cli.main import main
from nuseal.feed.accounts import twofactor
from nuseal.feed.accounts.keys import create_user
from nuseal.feed.errors import BadRequestError
from nuseal.feed.store.audit import read_audit
from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.models import User

from .conftest import Feed, run_admin
from .signing_support import code, secret_from_uri

T0 = datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC)  # 10 s into a 30-second step
STEP = timedelta(seconds=30)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'feed.db'}")
    migrate(database)
    with database.write() as session:
        create_user(session, "alice", now=T0)
    yield database
    database.dispose()


def _user(db: Database) -> User:
    with db.read() as session:
        user = session.query(User).filter_by(name="alice").one()
        session.expunge(user)
        return user


def _enrol(db: Database) -> str:
    with db.write() as session:
        pending = twofactor.begin_enrollment(session, "alice")
    with db.write() as session:
        twofactor.confirm_enrollment(session, "alice", pyotp.TOTP(pending.secret).at(T0), now=T0)
    return pending.secret


def _require(db: Database, code_text: str | None, now: datetime) -> None:
    with db.write() as session:
        user = session.query(User).filter_by(name="alice").one()
        twofactor.require_code(session, user, code_text, now=now)


def test_enrolment_uri_is_a_key_uri_with_a_160_bit_secret(db: Database) -> None:
    with db.write() as session:
        pending = twofactor.begin_enrollment(session, "alice", issuer="Contoso Feed")
    parts = urlsplit(pending.uri)
    query = parse_qs(parts.query)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == "/Contoso Feed:alice"
    assert query["secret"] == [pending.secret] and query["issuer"] == ["Contoso Feed"]
    assert len(base64.b32decode(pending.secret)) * 8 == 160
    assert not twofactor.has_two_factor(_user(db))  # pending only
    assert _user(db).totp_pending_secret == pending.secret


def test_confirm_needs_the_right_code(db: Database) -> None:
    with db.write() as session:
        pending = twofactor.begin_enrollment(session, "alice")
    right = pyotp.TOTP(pending.secret).at(T0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for bad in (wrong, "", "12345", "abcdef", None):
        with pytest.raises(twofactor.TwoFactorError), db.write() as session:
            twofactor.confirm_enrollment(session, "alice", bad, now=T0)
    assert not twofactor.has_two_factor(_user(db))
    with db.write() as session:
        twofactor.confirm_enrollment(session, "alice", right, now=T0)
    user = _user(db)
    assert twofactor.has_two_factor(user) and user.totp_pending_secret is None


def test_confirm_without_a_pending_enrolment_is_refused(db: Database) -> None:
    with pytest.raises(BadRequestError), db.write() as session:
        twofactor.confirm_enrollment(session, "alice", "123456", now=T0)


def test_a_code_is_accepted_once(db: Database) -> None:
    secret = _enrol(db)
    totp = pyotp.TOTP(secret)
    # the enrolment code's step is spent: the same code is a replay
    with pytest.raises(twofactor.TwoFactorError, match="already used"):
        _require(db, totp.at(T0), T0)
    later = T0 + STEP
    _require(db, totp.at(later), later)
    with pytest.raises(twofactor.TwoFactorError, match="already used"):
        _require(db, totp.at(later), later + timedelta(seconds=5))
    # an older step's code, still inside the drift window, is a replay too
    with pytest.raises(twofactor.TwoFactorError, match="already used"):
        _require(db, totp.at(T0), later)


def test_stale_and_future_codes_outside_the_window_are_refused(db: Database) -> None:
    secret = _enrol(db)
    totp = pyotp.TOTP(secret)
    now = T0 + 10 * STEP
    for when in (now - 2 * STEP, now + 2 * STEP):
        with pytest.raises(twofactor.TwoFactorError, match="wrong or expired"):
            _require(db, totp.at(when), now)
    _require(db, totp.at(now + STEP), now)  # one step of clock drift is fine
    assert _user(db).totp_last_step == int((now + STEP).timestamp()) // 30


def test_require_code_without_2fa_says_to_enable_it(db: Database) -> None:
    with pytest.raises(twofactor.TwoFactorError, match="not enabled"):
        _require(db, "123456", T0)


def test_begin_again_replaces_the_pending_secret_but_not_an_active_one(db: Database) -> None:
    with db.write() as session:
        first = twofactor.begin_enrollment(session, "alice")
    with db.write() as session:
        second = twofactor.begin_enrollment(session, "alice")
    assert first.secret != second.secret
    with pytest.raises(twofactor.TwoFactorError), db.write() as session:  # the old secret no longer counts
        twofactor.confirm_enrollment(session, "alice", pyotp.TOTP(first.secret).at(T0), now=T0)
    with db.write() as session:
        twofactor.confirm_enrollment(session, "alice", pyotp.TOTP(second.secret).at(T0), now=T0)
    with pytest.raises(BadRequestError, match="already enabled"), db.write() as session:
        twofactor.begin_enrollment(session, "alice")
    with db.write() as session:
        assert twofactor.disable_two_factor(session, "alice")
    assert not twofactor.has_two_factor(_user(db))


def test_admin_cli_enrolment_and_reset(tmp_path: Path) -> None:
    data = tmp_path / "feed"
    run_admin(data, None, "create-user", "carol")
    uri = run_admin(data, None, "enable-2fa", "carol").splitlines()[-1]
    secret = secret_from_uri(uri)
    wrong = "000000" if code(secret) != "000000" else "111111"
    bad = main(["admin", "confirm-2fa", "carol", wrong, "--data", str(data)])
    assert bad == 2
    assert "is on" in run_admin(data, None, "confirm-2fa", "carol", code(secret))
    assert main(["admin", "enable-2fa", "carol", "--data", str(data)]) == 2  # already on
    assert "is off" in run_admin(data, None, "disable-2fa", "carol")
    db = Database(f"sqlite:///{data / 'feed.db'}")
    try:
        with db.read() as session:
            actions = [(r.actor, r.action, r.target) for r in read_audit(session)]
    finally:
        db.dispose()
    assert actions == [("carol", "2fa.enabled", "user:carol"), ("admin", "2fa.disabled", "user:carol")]


def test_http_enrolment(inprocess_feed: Feed) -> None:
    feed = inprocess_feed  # the composition root's app, in-process: no real server needed
    key = {"X-NuGet-ApiKey": feed.keys["alice"]}
    with feed.client() as c:
        assert c.get("/api/account", headers=key).json() == {
            "user": "alice",
            "twoFactorEnabled": False,
            "certificates": [],
        }
        assert c.post("/api/account/2fa").status_code == 401  # no key
        begun = c.post("/api/account/2fa", headers=key)
        assert begun.status_code == 200 and begun.headers["cache-control"] == "no-store"
        secret = secret_from_uri(begun.json()["uri"])
        assert secret == begun.json()["secret"]
        wrong = c.post("/api/account/2fa/confirm", headers={**key, "X-NuSeal-TOTP": "12345"})
        assert wrong.status_code == 403 and "6 digits" in wrong.text
        ok = c.post("/api/account/2fa/confirm", headers={**key, "X-NuSeal-TOTP": code(secret)})
        assert ok.status_code == 200, ok.text
        assert c.get("/api/account", headers=key).json()["twoFactorEnabled"] is True
        again = c.post("/api/account/2fa", headers=key)
        assert again.status_code == 400 and "already enabled" in again.text
        assert c.get("/api/account", headers={"X-NuGet-ApiKey": feed.keys["bob"]}).json()["twoFactorEnabled"] is False
