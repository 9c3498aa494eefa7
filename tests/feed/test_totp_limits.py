"""Wrong TOTP codes are limited per user (``nuseal.feed.accounts.twofactor``): after 5 wrong codes in a row every code
of that user, the right one too, is refused (429, with the time to retry) for 15 minutes, doubling with each
further lockout; an accepted code resets the counts; each lockout is in the audit log. The counts are in the
database: they survive the refusal's rollback, and several processes (workers) and every path (the API's
``X-NuSeal-TOTP``, the web sign-in) share them.

Service functions run with a fixed clock; codes are computed with pyotp from the secret, independently of the
feed's own checking code.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from nuseal.feed.accounts import twofactor
from nuseal.feed.accounts.keys import create_user
from nuseal.feed.store.audit import read_audit
from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.models import User

from .conftest import Feed, PgCluster, start_feed
from .signing_support import enable_2fa_cli

T0 = datetime(2026, 12, 5, 12, 0, 10, tzinfo=UTC)  # 10 s into a 30-second step
STEP = timedelta(seconds=30)
LIMIT = twofactor.MAX_FAILED_ATTEMPTS


def _database(url: str) -> Database:
    database = Database(url)
    migrate(database)
    with database.write() as session:
        create_user(session, "alice", now=T0)
    return database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = _database(f"sqlite:///{tmp_path / 'feed.db'}")
    yield database
    database.dispose()


def _enrol(db: Database) -> pyotp.TOTP:
    with db.write() as session:
        pending = twofactor.begin_enrollment(session, "alice")
    with db.write() as session:
        twofactor.confirm_enrollment(session, "alice", pyotp.TOTP(pending.secret).at(T0), now=T0)
    return pyotp.TOTP(pending.secret)


def _wrong(totp: pyotp.TOTP, now: datetime) -> str:
    """A 6-digit code that matches none of the steps the feed accepts around ``now`` (nor the next ones, for the
    HTTP test whose clock moves on)."""
    window = {totp.at(now + k * STEP) for k in range(-2, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in window)


def _require(db: Database, code: str | None, now: datetime) -> None:
    with db.write() as session:
        user = session.query(User).filter_by(name="alice").one()
        twofactor.require_code(session, user, code, now=now)


def _row(db: Database) -> User:
    with db.read() as session:
        user = session.query(User).filter_by(name="alice").one()
        session.expunge(user)
        return user


def _locks(db: Database) -> list[dict[str, object]]:
    with db.read() as session:
        return [r.details for r in read_audit(session, target="user:alice") if r.action == "2fa.locked"]


def _aware(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def test_five_wrong_codes_lock_every_code_until_the_lockout_ends(db: Database) -> None:
    totp = _enrol(db)
    now = T0 + 2 * STEP
    for attempt in range(1, LIMIT):
        with pytest.raises(twofactor.TwoFactorError, match="wrong or expired") as refused:
            _require(db, _wrong(totp, now), now)
        assert not isinstance(refused.value, twofactor.TwoFactorLockedError) and refused.value.status == 403
        assert f"{LIMIT - attempt} more wrong code" in refused.value.message
        assert _row(db).totp_failed_attempts == attempt  # counted although the transaction raised
    with pytest.raises(twofactor.TwoFactorLockedError) as locked:
        _require(db, _wrong(totp, now), now)
    until = now + twofactor.LOCKOUT
    assert locked.value.status == 429 and locked.value.until == until
    assert until.isoformat(timespec="seconds") in locked.value.message and "try again after" in locked.value.message
    assert _locks(db) == [
        {
            "failed_attempts": LIMIT,
            "lockout": 1,
            "locked_until": until.isoformat(),
            "seconds": int(twofactor.LOCKOUT.total_seconds()),
        }
    ]
    # while locked: the right code is refused too, with the retry time, and nothing more is counted
    during = now + 4 * STEP
    with pytest.raises(twofactor.TwoFactorLockedError, match="try again after") as still:
        _require(db, totp.at(during), during)
    assert until.isoformat(timespec="seconds") in still.value.message and "15 minutes" not in still.value.message
    assert "13 minutes" in still.value.message  # 15 min - 2 min
    assert _row(db).totp_last_step == int(T0.timestamp()) // 30  # the refused right code was not spent
    last = until - timedelta(seconds=1)
    with pytest.raises(twofactor.TwoFactorLockedError):
        _require(db, totp.at(last), last)
    # at the end of the lockout the right code is accepted and the counts are reset
    _require(db, totp.at(until), until)
    row = _row(db)
    assert (row.totp_failed_attempts, row.totp_lockouts, row.totp_locked_until) == (0, 0, None)
    assert len(_locks(db)) == 1


def test_lockouts_double_until_a_code_is_accepted(db: Database) -> None:
    totp = _enrol(db)
    now = T0 + 2 * STEP
    periods = []
    for _ in range(3):
        for _ in range(LIMIT):
            with pytest.raises(twofactor.TwoFactorError):
                _require(db, _wrong(totp, now), now)
        until = _aware(_row(db).totp_locked_until)
        assert until is not None
        periods.append(until - now)
        now = until + STEP
    assert periods == [twofactor.LOCKOUT, 2 * twofactor.LOCKOUT, 4 * twofactor.LOCKOUT]
    assert [d["lockout"] for d in _locks(db)] == [1, 2, 3]
    _require(db, totp.at(now), now)
    now += 2 * STEP
    for _ in range(LIMIT):
        with pytest.raises(twofactor.TwoFactorError):
            _require(db, _wrong(totp, now), now)
    assert _aware(_row(db).totp_locked_until) == now + twofactor.LOCKOUT  # back to the first period


def test_the_longest_lockout_is_capped(db: Database) -> None:
    totp = _enrol(db)
    with db.write() as session:
        session.query(User).filter_by(name="alice").one().totp_lockouts = 40
    now = T0 + 2 * STEP
    for _ in range(LIMIT):
        with pytest.raises(twofactor.TwoFactorError):
            _require(db, _wrong(totp, now), now)
    assert _aware(_row(db).totp_locked_until) == now + twofactor.MAX_LOCKOUT


def test_an_accepted_code_resets_the_count(db: Database) -> None:
    totp = _enrol(db)
    now = T0 + 2 * STEP
    for _ in range(LIMIT - 1):
        with pytest.raises(twofactor.TwoFactorError):
            _require(db, _wrong(totp, now), now)
    _require(db, totp.at(now), now)
    assert _row(db).totp_failed_attempts == 0
    now += 2 * STEP
    for _ in range(LIMIT - 1):
        with pytest.raises(twofactor.TwoFactorError, match="more wrong code"):
            _require(db, _wrong(totp, now), now)
    _require(db, totp.at(now), now)  # not locked: 4 + 4 wrong codes, never 5 in a row


def test_malformed_and_replayed_codes_are_not_guesses(db: Database) -> None:
    """Only a well-formed code that matches no step counts: a typo in the format or a replay of a code already
    used (known to the user anyway) does not bring the lockout closer."""
    totp = _enrol(db)
    for bad in ("", "12345", "abcdef", None, totp.at(T0)):  # the last one: the enrolment code, already spent
        with pytest.raises(twofactor.TwoFactorError):
            _require(db, bad, T0)
    assert _row(db).totp_failed_attempts == 0


def test_enrolment_confirmation_is_limited_too(db: Database) -> None:
    with db.write() as session:
        pending = twofactor.begin_enrollment(session, "alice")
    totp = pyotp.TOTP(pending.secret)
    for _ in range(LIMIT):
        with pytest.raises(twofactor.TwoFactorError), db.write() as session:
            twofactor.confirm_enrollment(session, "alice", _wrong(totp, T0), now=T0)
    with pytest.raises(twofactor.TwoFactorLockedError, match="try again after"), db.write() as session:
        twofactor.confirm_enrollment(session, "alice", totp.at(T0), now=T0)
    assert not twofactor.has_two_factor(_row(db)) and len(_locks(db)) == 1
    later = T0 + twofactor.LOCKOUT
    with db.write() as session:
        twofactor.confirm_enrollment(session, "alice", totp.at(later), now=later)
    assert twofactor.has_two_factor(_row(db))


def test_an_administrators_reset_ends_a_lockout(db: Database) -> None:
    totp = _enrol(db)
    for _ in range(LIMIT):
        with pytest.raises(twofactor.TwoFactorError):
            _require(db, _wrong(totp, T0), T0)
    with db.write() as session:
        assert twofactor.disable_two_factor(session, "alice")
    row = _row(db)
    assert (row.totp_failed_attempts, row.totp_lockouts, row.totp_locked_until) == (0, 0, None)


def _concurrent_guesses(url: str, guesses: int) -> list[type[Exception]]:
    """``guesses`` wrong codes at once from threads, each with its own Database (its own engine and
    connections, as a worker process has); returns the exception type each got."""
    setup = Database(url)
    try:
        with setup.read() as session:
            secret = session.query(User).filter_by(name="alice").one().totp_secret
    finally:
        setup.dispose()
    assert secret is not None
    wrong = _wrong(pyotp.TOTP(secret), T0 + 2 * STEP)
    barrier = threading.Barrier(guesses)
    results: list[type[Exception]] = []
    lock = threading.Lock()

    def guess() -> None:
        worker = Database(url)
        try:
            barrier.wait()
            try:
                _require(worker, wrong, T0 + 2 * STEP)
            except twofactor.TwoFactorError as exc:
                with lock:
                    results.append(type(exc))
        finally:
            worker.dispose()

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _assert_exactly_the_limit_evaluated(db: Database, results: list[type[Exception]], guesses: int) -> None:
    assert len(results) == guesses
    # 4 plain refusals, then the 5th locks, then every other is refused as locked: no guess past the limit
    assert results.count(twofactor.TwoFactorError) == LIMIT - 1, results
    assert results.count(twofactor.TwoFactorLockedError) == guesses - (LIMIT - 1)
    assert len(_locks(db)) == 1 and _row(db).totp_failed_attempts == 0


def test_concurrent_guesses_from_several_workers_share_the_limit_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    db = _database(url)
    try:
        _enrol(db)
        results = _concurrent_guesses(url, 12)
        _assert_exactly_the_limit_evaluated(db, results, 12)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_concurrent_guesses_from_several_workers_share_the_limit_postgres(pg_cluster: PgCluster) -> None:
    """On PostgreSQL the user's row is locked (SELECT ... FOR UPDATE) while a code is checked; without it,
    concurrent guesses would all read the same count and all be evaluated."""
    url = pg_cluster.new_database()
    db = _database(url)
    try:
        _enrol(db)
        results = _concurrent_guesses(url, 12)
        _assert_exactly_the_limit_evaluated(db, results, 12)
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------------------ over HTTP
@pytest.fixture
def two_worker_feed(tmp_path: Path) -> Iterator[Feed]:
    f = start_feed(tmp_path / "feed", users=("alice", "bob"), workers=2)
    yield f
    f.stop()


def _login(feed: Feed, key: str, code: str) -> tuple[int, str]:
    with feed.client(follow_redirects=False) as c:
        # the sign-in form's CSRF token (issue 11): the page sets it as a cookie and in the form
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/account/login").text)
        assert token
        r = c.post("/account/login", data={"api_key": key, "totp": code, "csrf": token.group(1)})
    return r.status_code, r.text


def test_http_api_and_web_sign_in_share_the_limit(two_worker_feed: Feed) -> None:
    """A real `nuseal serve` with 2 workers: wrong codes through the API (certificate registration) and the web
    sign-in add up; the lockout refuses the right code on both paths with the time to retry; bob is not
    affected; the lockout is in the audit log."""
    feed = two_worker_feed
    codes = enable_2fa_cli(feed.data_dir, None, "alice")
    bob = enable_2fa_cli(feed.data_dir, None, "bob")
    key = feed.keys["alice"]
    wrong = _wrong(pyotp.TOTP(codes.secret), datetime.now(UTC))
    statuses = []
    with feed.client() as c:
        for _ in range(3):
            r = c.post(
                "/api/account/certificates",
                content=b"not looked at: the code is checked first",
                headers={"X-NuGet-ApiKey": key, "X-NuSeal-TOTP": wrong},
            )
            statuses.append(r.status_code)
            assert "wrong or expired" in r.text, r.text
    assert statuses == [403, 403, 403]
    status, page = _login(feed, key, wrong)
    assert status == 403 and "1 more wrong code" in page, page
    status, page = _login(feed, key, wrong)
    assert status == 429 and "try again after" in page, page  # the 5th wrong code, on the other path
    right = codes.fresh()
    status, page = _login(feed, key, right)
    assert status == 429 and "try again after" in page, page
    with feed.client() as c:
        r = c.post(
            "/api/account/certificates",
            content=b"x",
            headers={"X-NuGet-ApiKey": key, "X-NuSeal-TOTP": right},
        )
    assert r.status_code == 429 and "try again after" in r.text, r.text
    # another user is not locked: bob signs in with his code
    status, _ = _login(feed, feed.keys["bob"], bob.fresh())
    assert status == 303
    db = Database(f"sqlite:///{feed.data_dir / 'feed.db'}")
    try:
        with db.read() as session:
            locks = [(r.actor, r.target) for r in read_audit(session) if r.action == "2fa.locked"]
    finally:
        db.dispose()
    assert locks == [("feed", "user:alice")]
