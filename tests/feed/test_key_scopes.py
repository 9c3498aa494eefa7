"""Scoped API keys cannot reach the account (issue 11, item 3), against a real signing `nuseal serve` on embedded
defaults.

What an attacker holding a scoped key (nuget.org's model: push new / push version / unlist, on package id globs)
tried, and what must now happen: enrolling 2FA with their own secret, registering their own signing certificate
(after which every unsigned push of the real owner fails), removing the owner's certificate, and locking the
owner's TOTP with wrong codes, over the API and the web sign-in, are all refused with 403 and a reason naming the
key's scope, nothing changes, and no wrong code is counted. A full-scope key (every scope on ``*``) and a web
session signed in with one (with its TOTP code once 2FA is on) still work; a web session ends when the key it
signed in with is revoked or expires; the sign-in form needs its CSRF token and a same-origin request.

The feed's state is read back from its database file, independently of the HTTP answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.admin import admin_group
from nuseal.devpki import DevPki
from nuseal.feed.accounts import twofactor
from nuseal.feed.store.audit import read_audit
from nuseal.feed.store.database import Database
from nuseal.feed.store.models import ApiKey, User, UserCertificate

from .conftest import Feed, make_package, run_admin
from .signing_support import Codes, enable_2fa_cli, start_signing_feed

TOTP = "X-NuSeal-TOTP"
USERS = ("alice", "bob", "carol", "dave", "erin")
#: Scoped keys of alice's: the issue's attacker key first, then keys that miss "full" by one scope or by the glob.
SCOPED = {
    "unlist-on-nothing": ("--scope", "unlist", "--glob", "Nothing.Matches.This.*"),
    "all-scopes-one-glob": ("--scope", "push-new", "--scope", "push-version", "--scope", "unlist", "--glob", "Alice.*"),
    "push-on-star": ("--scope", "push-new", "--scope", "push-version", "--glob", "*"),
}


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """A signing feed on embedded defaults: once an owner registers a certificate, unsigned pushes are refused."""
    f = start_signing_feed(tmp_path_factory.mktemp("feed"), users=USERS)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def author_der(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A code-signing certificate the attacker controls (registration checks the certificate, not its chain)."""
    return DevPki.create(tmp_path_factory.mktemp("pki")).cert("author").public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def scoped(feed: Feed) -> dict[str, str]:
    """alice's scoped keys by label (created once: `nuseal admin create-api-key alice --scope ... --glob ...`)."""
    return {label: feed.admin("create-api-key", "alice", *args) for label, args in SCOPED.items()}


def _db(feed: Feed) -> Database:
    return Database(f"sqlite:///{feed.data_dir / 'feed.db'}")


def _state(feed: Feed, user: str) -> dict[str, Any]:
    """What an attack could change: the user's 2FA columns, failure counts, certificates, audit entries."""
    db = _db(feed)
    try:
        with db.read() as session:
            row = session.query(User).filter_by(name=user).one()
            certs = session.query(UserCertificate).filter_by(user_pk=row.pk).count()
            audit = [(r.actor, r.action) for r in read_audit(session) if r.target == f"user:{user}" or r.actor == user]
            return {
                "secret": row.totp_secret,
                "pending": row.totp_pending_secret,
                "last_step": row.totp_last_step,
                "failed": row.totp_failed_attempts,
                "lockouts": row.totp_lockouts,
                "locked_until": row.totp_locked_until,
                "certificates": certs,
                "audit": audit,
            }
    finally:
        db.dispose()


def _wrong(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC)
    window = {totp.at(now + k * timedelta(seconds=30)) for k in range(-2, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in window)


def _assert_scope_refusal(r: httpx.Response) -> None:
    assert r.status_code == 403, (r.status_code, r.text)
    assert "full-scope" in r.text and "scoped" in r.text, r.text


def _login_form(c: httpx.Client) -> str:
    """GET the sign-in page (which sets the login CSRF cookie in ``c``) and return the form's CSRF token."""
    page = c.get("/account/login")
    assert page.status_code == 200
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, "the sign-in form carries no CSRF token"
    return m.group(1)


def _login(c: httpx.Client, key: str, totp: str = "", **headers: str) -> httpx.Response:
    token = _login_form(c)
    return c.post("/account/login", data={"api_key": key, "totp": totp, "csrf": token}, headers=headers)


def _account_csrf(c: httpx.Client) -> str:
    page = c.get("/account")
    assert page.status_code == 200, page.text
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


# ------------------------------------------------------------------------------------------------ the attacks
@pytest.mark.parametrize("label", list(SCOPED))
def test_a_scoped_key_cannot_read_the_account_or_enrol_2fa(feed: Feed, scoped: dict[str, str], label: str) -> None:
    before = _state(feed, "alice")
    key = {"X-NuGet-ApiKey": scoped[label]}
    with feed.client() as c:
        _assert_scope_refusal(c.get("/api/account", headers=key))
        begun = c.post("/api/account/2fa", headers=key)
        _assert_scope_refusal(begun)
        assert "otpauth" not in begun.text
        _assert_scope_refusal(c.post("/api/account/2fa/confirm", headers={**key, TOTP: "123456"}))
    assert _state(feed, "alice") == before
    assert before["pending"] is None and before["secret"] is None


def test_the_attack_chain_on_an_owner_without_2fa_is_refused(
    feed: Feed, scoped: dict[str, str], author_der: bytes
) -> None:
    """The issue's attack: enrol 2FA with the attacker's own secret, then register the attacker's certificate,
    after which every unsigned push of the owner would fail. Each step is refused; the owner's push still works."""
    key = {"X-NuGet-ApiKey": scoped["unlist-on-nothing"]}
    before = _state(feed, "alice")
    with feed.client() as c:
        _assert_scope_refusal(c.post("/api/account/2fa", headers=key))
        _assert_scope_refusal(c.post("/api/account/certificates", headers={**key, TOTP: "123456"}, content=author_der))
    assert _state(feed, "alice") == before
    pushed = feed.push(make_package("Alice.Unsigned", "1.0.0"), key="alice")
    assert pushed.status_code == 201, pushed.text


def test_a_scoped_key_cannot_change_certificates_or_lock_the_owners_totp(feed: Feed, author_der: bytes) -> None:
    """bob has 2FA on. Wrong codes from his scoped key, twice the lockout limit on each path (API registration,
    API removal, web sign-in), are refused before they count: no failure recorded, no lockout; even a right code
    does not let a scoped key register a certificate. Then bob's full key registers with that same code (it was
    not spent), and the scoped key cannot remove what is registered."""
    codes = enable_2fa_cli(feed.data_dir, None, "bob")
    bob_scoped = feed.admin("create-api-key", "bob", "--scope", "unlist", "--glob", "Nothing.*")
    key = {"X-NuGet-ApiKey": bob_scoped}
    wrong = _wrong(codes.secret)
    before = _state(feed, "bob")
    fingerprint = "0" * 64
    with feed.client() as c:
        for _ in range(2 * twofactor.MAX_FAILED_ATTEMPTS):
            _assert_scope_refusal(c.post("/api/account/certificates", headers={**key, TOTP: wrong}, content=author_der))
            _assert_scope_refusal(c.delete(f"/api/account/certificates/{fingerprint}", headers={**key, TOTP: wrong}))
    for _ in range(2 * twofactor.MAX_FAILED_ATTEMPTS):
        with feed.client(follow_redirects=False) as c:
            _assert_scope_refusal(_login(c, bob_scoped, wrong))
            assert "nuseal_session" not in c.cookies
    right = codes.fresh()
    with feed.client() as c:
        _assert_scope_refusal(c.post("/api/account/certificates", headers={**key, TOTP: right}, content=author_der))
    after = _state(feed, "bob")
    assert after == before, (before, after)
    assert after["failed"] == 0 and after["locked_until"] is None
    # the owner with his full-scope key: the code refused above was not spent, nothing is locked
    full = {"X-NuGet-ApiKey": feed.keys["bob"]}
    with feed.client() as c:
        registered = c.post("/api/account/certificates", headers={**full, TOTP: right}, content=author_der)
        assert registered.status_code == 201, registered.text
        fp = registered.json()["fingerprint"]
        _assert_scope_refusal(c.delete(f"/api/account/certificates/{fp}", headers={**key, TOTP: wrong}))
        assert [x["fingerprint"] for x in c.get("/api/account", headers=full).json()["certificates"]] == [fp]
    assert _state(feed, "bob")["failed"] == 0


# ------------------------------------------------------------------------------------------------ what still works
def test_a_scoped_key_cannot_add_or_remove_owners(feed: Feed, scoped: dict[str, str]) -> None:
    """Owners decide whose certificates may sign an id: a scoped push key covering the id (a CI key, say) must
    not add another account as owner nor remove one; the full-scope key of the same user can."""
    assert feed.push(make_package("Alice.Owned", "1.0.0"), key="alice").status_code == 201
    with feed.client() as c:
        for label in ("all-scopes-one-glob", "push-on-star"):
            key = {"X-NuGet-ApiKey": scoped[label]}
            _assert_scope_refusal(c.put("/api/owners/Alice.Owned/erin", headers=key))
        full = {"X-NuGet-ApiKey": feed.keys["alice"]}
        r = c.put("/api/owners/Alice.Owned/erin", headers=full)
        assert r.status_code == 200 and r.json()["owners"] == ["alice", "erin"]
        star = {"X-NuGet-ApiKey": scoped["push-on-star"]}
        _assert_scope_refusal(c.delete("/api/owners/Alice.Owned/erin", headers=star))
        assert c.delete("/api/owners/Alice.Owned/erin", headers=full).json()["owners"] == ["alice"]


def test_a_full_scope_key_uses_the_api_and_signs_in_with_2fa(feed: Feed) -> None:
    """carol: her default key (every scope on ``*``) enrols 2FA over the API, then signs in to the web pages with a
    fresh code; the page and its forms work."""
    key = {"X-NuGet-ApiKey": feed.keys["carol"]}
    with feed.client() as c:
        assert c.get("/api/account", headers=key).json()["twoFactorEnabled"] is False
        begun = c.post("/api/account/2fa", headers=key)
        assert begun.status_code == 200, begun.text
        secret = begun.json()["secret"]
        ok = c.post("/api/account/2fa/confirm", headers={**key, TOTP: pyotp.TOTP(secret).now()})
        assert ok.status_code == 200, ok.text
    codes = Codes(secret)
    with feed.client(follow_redirects=False) as c:
        refused = _login(c, feed.keys["carol"])  # 2FA is on: the key alone does not sign in
        assert refused.status_code == 403 and "code" in refused.text
        signed_in = _login(c, feed.keys["carol"], codes.fresh())
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account", signed_in.text
        page = c.get("/account")
        assert page.status_code == 200 and "Account: carol" in page.text
        token = _account_csrf(c)
        out = c.post("/account/logout", data={"csrf": token})
        assert out.status_code == 303
        assert c.get("/account").status_code == 303


# ------------------------------------------------------------------------------------------------ sessions
def _revoke_prefix(key: str) -> str:
    return key[: len("nsk_") + 6]


def test_a_web_session_ends_when_its_key_is_revoked(feed: Feed) -> None:
    """dave signs in twice, with two full-scope keys; revoking one key ends the session it signed in (its page and
    its forms), not the other."""
    first = feed.admin("create-api-key", "dave", "--description", "laptop")
    second = feed.admin("create-api-key", "dave", "--description", "desktop")
    with feed.client(follow_redirects=False) as a, feed.client(follow_redirects=False) as b:
        assert _login(a, first).status_code == 303
        assert _login(b, second).status_code == 303
        token = _account_csrf(a)
        assert b.get("/account").status_code == 200
        assert "revoked 1 key(s)" in feed.admin("revoke-api-key", _revoke_prefix(first))
        gone = a.get("/account")
        assert gone.status_code == 303 and gone.headers["location"] == "/account/login"
        begin = a.post("/account/2fa/begin", data={"csrf": token})
        assert begin.status_code == 303 and begin.headers["location"] == "/account/login"
        assert "otpauth" not in begin.text
        assert b.get("/account").status_code == 200  # the other key's session goes on
        assert _login(a, first).status_code == 403  # and the revoked key cannot sign in again
    assert _state(feed, "dave")["pending"] is None


def test_a_web_session_ends_when_its_key_expires(feed: Feed) -> None:
    key = feed.admin("create-api-key", "dave", "--expires-in-days", "1")
    with feed.client(follow_redirects=False) as c:
        assert _login(c, key).status_code == 303
        assert c.get("/account").status_code == 200
        db = _db(feed)
        try:
            with db.write() as session:
                row = session.query(ApiKey).filter_by(prefix=_revoke_prefix(key)).one()
                row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        finally:
            db.dispose()
        assert c.get("/account").status_code == 303


# ------------------------------------------------------------------------------------------------ the sign-in form
def test_sign_in_needs_its_csrf_token_and_a_same_origin_request(feed: Feed) -> None:
    """Cross-site sign-in (login CSRF) is refused before the key or the code is looked at: no session, and a wrong
    code sent that way is not counted."""
    wrong = _wrong(enable_2fa_cli(feed.data_dir, None, "erin").secret)
    key = feed.keys["alice"]
    with feed.client(follow_redirects=False) as c:
        token = _login_form(c)
        no_token = c.post("/account/login", data={"api_key": key})
        assert no_token.status_code == 403 and "CSRF" in no_token.text, no_token.text
        forged = c.post("/account/login", data={"api_key": key, "csrf": "x" * len(token)})
        assert forged.status_code == 403 and "CSRF" in forged.text
        foreign = c.post(
            "/account/login", data={"api_key": key, "csrf": token}, headers={"Origin": "http://attacker.example"}
        )
        assert foreign.status_code == 403 and "origin" in foreign.text.lower(), foreign.text
        null_origin = c.post("/account/login", data={"api_key": key, "csrf": token}, headers={"Origin": "null"})
        assert null_origin.status_code == 403
        null_cross = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}
        assert c.post("/account/login", data={"api_key": key, "csrf": token}, headers=null_cross).status_code == 403
        cross = c.post("/account/login", data={"api_key": key, "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403 and "origin" in cross.text.lower()
        for bad in (
            {"Origin": "http://attacker.example"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            r = c.post("/account/login", data={"api_key": feed.keys["erin"], "totp": wrong, "csrf": token}, headers=bad)
            assert r.status_code == 403
        assert "nuseal_session" not in c.cookies
    with feed.client(follow_redirects=False) as fresh:  # the token without its cookie (another browser's token)
        fresh_token = _login_form(fresh)
    with feed.client(follow_redirects=False) as c:
        stolen = c.post("/account/login", data={"api_key": key, "csrf": fresh_token})
        assert stolen.status_code == 403 and "CSRF" in stolen.text
    assert _state(feed, "erin")["failed"] == 0
    with feed.client(follow_redirects=False) as c:  # the same-origin form as a browser sends it
        ok = _login(c, key, Origin=feed.base_url, **{"Sec-Fetch-Site": "same-origin"})
        assert ok.status_code == 303, ok.text
        assert c.get("/account").status_code == 200
    with feed.client(follow_redirects=False) as c:  # what a browser sends under Referrer-Policy: no-referrer
        ok = _login(c, key, Origin="null", **{"Sec-Fetch-Site": "same-origin"})
        assert ok.status_code == 303, ok.text


def test_signed_in_forms_refuse_a_foreign_origin(feed: Feed) -> None:
    with feed.client(follow_redirects=False) as c:
        assert _login(c, feed.keys["dave"]).status_code == 303
        token = _account_csrf(c)
        r = c.post("/account/2fa/begin", data={"csrf": token}, headers={"Origin": "http://attacker.example"})
        assert r.status_code == 403 and "otpauth" not in r.text
    assert _state(feed, "dave")["pending"] is None


def test_create_api_key_says_whether_the_key_reaches_the_account(tmp_path: Path) -> None:
    data = tmp_path / "feed"
    run_admin(data, None, "create-user", "frank")
    runner = CliRunner()
    full = runner.invoke(admin_group, ["create-api-key", "frank", "--data", str(data)])
    scoped = runner.invoke(admin_group, ["create-api-key", "frank", "--scope", "unlist", "--data", str(data)])
    assert full.exit_code == scoped.exit_code == 0
    assert "full-scope: it can also use the account" in full.stderr
    assert "scoped: it cannot use the account" in scoped.stderr
