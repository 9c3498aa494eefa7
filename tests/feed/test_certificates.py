"""Signing-certificate registration: the upload format (DER .cer as nuget.org checks it, or one PEM block), the
certificates refused because they can never pass (each with its NU code), the TOTP gate, listing and removal,
over the HTTP API and `nuseal admin`. Fingerprints are recomputed here with hashlib from the DER bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.main import main
from nuseal.codes import NuCode
from nuseal.devpki import DevPki
from nuseal.feed.accounts.certificates import parse_certificate_upload, registration_problems
from nuseal.feed.errors import BadRequestError

from .conftest import Feed, run_admin, start_feed
from .signing_support import Codes, code, enable_2fa_cli

TOTP = "X-NuSeal-TOTP"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.create(tmp_path_factory.mktemp("pki"))


def der(dev: DevPki, name: str) -> bytes:
    return dev.cert(name).public_bytes(Encoding.DER)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ rules (no server)
def test_der_and_pem_give_the_same_certificate(dev: DevPki) -> None:
    from_der = parse_certificate_upload(der(dev, "author"))
    from_pem = parse_certificate_upload(dev.cert_path("author").read_bytes())
    assert from_der == from_pem == dev.cert("author")


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("empty", lambda d: b""),
        ("pfx", lambda d: d.pfx_path("author").read_bytes()),
        ("truncated", lambda d: der(d, "author")[:-1]),
        ("trailing", lambda d: der(d, "author") + b"\x00"),
        ("two PEM blocks", lambda d: d.chain_pem_path("author").read_bytes()),
        ("private key", lambda d: d.key_path("author").read_bytes()),
        ("oversized", lambda d: b"\x30\x82\x30\x00" + b"\x30" * 0x3000),
    ],
)
def test_uploads_that_are_not_one_certificate_are_refused(dev: DevPki, label: str, make: object) -> None:
    assert callable(make)
    with pytest.raises(BadRequestError):
        parse_certificate_upload(make(dev))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rsa1024-signer", {NuCode.NU3014}),
        ("ecdsa-signer", {NuCode.NU3014}),
        ("no-eku-signer", {NuCode.NU3018}),
        ("expired-signer", {NuCode.NU3037}),
        ("author", set()),
        ("not-yet-valid-signer", set()),  # time cures it
        ("self-signed-signer", set()),  # refused at push (untrusted root), like nuget.org
    ],
)
def test_registration_problems(dev: DevPki, name: str, expected: set[NuCode]) -> None:
    found = registration_problems(dev.cert(name), now=datetime.now(UTC))
    assert {p.code for p in found} == expected, [p.message for p in found]


# ------------------------------------------------------------------------------------------------ HTTP API
@pytest.fixture(scope="module")
def api_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    f = start_feed(tmp_path_factory.mktemp("feed"), users=("alice", "bob", "dave"))
    yield f
    f.stop()


@pytest.fixture(scope="module")
def alice_codes(api_feed: Feed) -> Codes:
    return enable_2fa_cli(api_feed.data_dir, None, "alice")


def _register(feed: Feed, user: str, body: bytes, totp: str | None, *, multipart: bool = False) -> object:
    headers = {"X-NuGet-ApiKey": feed.keys[user]}
    if totp is not None:
        headers[TOTP] = totp
    with feed.client() as c:
        if multipart:
            return c.post("/api/account/certificates", headers=headers, files={"file": ("a.cer", body)})
        return c.post("/api/account/certificates", headers=headers, content=body)


def test_registration_needs_2fa(api_feed: Feed, dev: DevPki) -> None:
    r = _register(api_feed, "bob", der(dev, "author"), "123456")
    assert r.status_code == 403 and "not enabled" in r.text  # type: ignore[attr-defined]


def test_register_list_remove(api_feed: Feed, dev: DevPki, alice_codes: Codes) -> None:
    body = der(dev, "author")
    key = {"X-NuGet-ApiKey": api_feed.keys["alice"]}
    missing = _register(api_feed, "alice", body, None)
    assert missing.status_code == 403 and "required" in missing.text  # type: ignore[attr-defined]
    stale = _register(api_feed, "alice", body, code(alice_codes.secret, steps_ahead=-3))
    assert stale.status_code == 403 and "wrong or expired" in stale.text  # type: ignore[attr-defined]
    replay = _register(api_feed, "alice", body, code(alice_codes.secret))  # the enrolment code's step
    assert replay.status_code == 403 and "already used" in replay.text  # type: ignore[attr-defined]
    ok = _register(api_feed, "alice", body, alice_codes.fresh())
    assert ok.status_code == 201, ok.text  # type: ignore[attr-defined]
    got = ok.json()  # type: ignore[attr-defined]
    cert = dev.cert("author")
    assert got["fingerprint"] == sha256(body)
    assert got["subject"] == "O=nuseal development PKI, CN=nuseal dev author"
    assert got["issuer"] == "O=nuseal development PKI, CN=nuseal dev intermediate"
    assert datetime.fromisoformat(got["notAfter"]) == cert.not_valid_after_utc
    with api_feed.client() as c:
        listed = c.get("/api/account", headers=key).json()["certificates"]
        assert [x["fingerprint"] for x in listed] == [sha256(body)]
        gone = c.delete(f"/api/account/certificates/{sha256(body)}", headers=key)
        assert gone.status_code == 403
        gone = c.delete(f"/api/account/certificates/{sha256(body).upper()}", headers={**key, TOTP: alice_codes.fresh()})
        assert gone.status_code == 204, gone.text
        assert c.get("/api/account", headers=key).json()["certificates"] == []


def test_refused_certificates_name_the_reason_and_code(api_feed: Feed, dev: DevPki, alice_codes: Codes) -> None:
    r = _register(api_feed, "alice", der(dev, "rsa1024-signer"), alice_codes.fresh(), multipart=True)
    assert r.status_code == 400 and r.text.startswith("NU3014: ") and "1024" in r.text  # type: ignore[attr-defined]
    r = _register(api_feed, "alice", dev.cert_path("no-eku-signer").read_bytes(), alice_codes.fresh())
    assert r.status_code == 400 and r.text.startswith("NU3018: ") and "code signing" in r.text  # type: ignore[attr-defined]
    r = _register(api_feed, "alice", der(dev, "expired-signer"), alice_codes.fresh())
    assert r.status_code == 400 and r.text.startswith("NU3037: ") and "expired" in r.text  # type: ignore[attr-defined]
    r = _register(api_feed, "alice", dev.pfx_path("author").read_bytes(), alice_codes.fresh())
    assert r.status_code == 400 and "not a DER-encoded" in r.text  # type: ignore[attr-defined]


def test_admin_cli_register_list_remove(tmp_path: Path, dev: DevPki) -> None:
    data = tmp_path / "feed"
    run_admin(data, None, "create-user", "erin")
    cer = tmp_path / "author.cer"
    cer.write_bytes(der(dev, "author"))
    args = ["--data", str(data)]
    assert main(["admin", "register-certificate", "erin", str(cer), "--totp", "123456", *args]) == 2  # no 2FA yet
    codes = enable_2fa_cli(data, None, "erin")
    out = run_admin(data, None, "register-certificate", "erin", str(cer), "--totp", codes.fresh())
    assert sha256(cer.read_bytes()) in out
    listed = run_admin(data, None, "list-certificates", "erin")
    assert listed.startswith(sha256(cer.read_bytes())) and "CN=nuseal dev author" in listed
    assert main(["admin", "remove-certificate", "erin", sha256(cer.read_bytes()), "--totp", "000000", *args]) == 2
    run_admin(data, None, "remove-certificate", "erin", sha256(cer.read_bytes()), "--totp", codes.fresh())
    assert run_admin(data, None, "list-certificates", "erin", "--json") == "[]"
