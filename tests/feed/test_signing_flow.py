"""The feed's signing flow end to end (issue 5): certificate registration behind a fresh TOTP code, pushes that
the owners' registered certificates decide, repository signatures on everything served, `nuseal verify` with
trustedSigners and NuGet's own verifier over the served bytes, RepositorySignatures/5.0.0, and the flow on
PostgreSQL.

Everything runs for real: a dev PKI with its TSA/OCSP/CRL on loopback, `nuseal serve --signing` trusting only
that PKI's root (``--trust-bundle``) and repository-signing with its ``repository`` certificate. Fingerprints are
recomputed here with hashlib from the DER bytes; signatures in downloads are read with asn1crypto-independent
parsing (nuseal.signature) and with NuGet's verifier.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of

from .conftest import Feed, PgCluster, make_package, start_feed
from .signing_support import (
    Codes,
    SigningPki,
    admin_result,
    assert_not_visible,
    code,
    download,
    enable_2fa_cli,
    feed_index_url,
    nuseal_verify,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    start_signing_feed,
    trusted_signers_config,
)

TOTP = "X-NuSeal-TOTP"
USERS = ("alice", "bob", "carol", "dave", "erin")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def der(pki: SigningPki, name: str) -> bytes:
    return pki.dev.cert(name).public_bytes(Encoding.DER)


def fingerprint(pki: SigningPki, name: str) -> str:
    return sha256(der(pki, name))


def primary_of(package: bytes) -> PrimarySignature:
    return PrimarySignature.load(PackageArchive.from_bytes(package).read_signature())


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory, pki: SigningPki) -> Iterator[Feed]:
    f = start_signing_feed(
        tmp_path_factory.mktemp("feed"),
        *pki_feed_args(pki),
        "--advertise-repository-signatures",
        "always",
        env=pki_feed_env(pki),
        users=USERS,
    )
    yield f
    f.stop()


@pytest.fixture(scope="module")
def codes(feed: Feed) -> dict[str, Codes]:
    """alice, bob and carol have 2FA on (dave and erin do not)."""
    return {user: enable_2fa_cli(feed.data_dir, None, user) for user in ("alice", "bob", "carol")}


@pytest.fixture(scope="module")
def alice_fp(feed: Feed, pki: SigningPki, codes: dict[str, Codes], tmp_path_factory: pytest.TempPathFactory) -> str:
    """alice registers the dev ``author`` certificate (DER) with `nuseal admin register-certificate`."""
    path = tmp_path_factory.mktemp("cer") / "author.cer"
    path.write_bytes(der(pki, "author"))
    rc, out = admin_result(
        feed.data_dir, None, "register-certificate", "alice", str(path), "--totp", codes["alice"].fresh()
    )
    assert rc == 0, out
    assert f"registered {fingerprint(pki, 'author')} for alice" in out
    return fingerprint(pki, "author")


@pytest.fixture(scope="module")
def bob_fp(feed: Feed, pki: SigningPki, codes: dict[str, Codes]) -> str:
    """bob registers the dev ``revoked-signer`` certificate (PEM; never revoked in this module) over the API."""
    r = _api_register(feed, "bob", pki.dev.cert_path("revoked-signer").read_bytes(), codes["bob"].fresh())
    assert r.status_code == 201, r.text
    return str(r.json()["fingerprint"])


def _api_register(feed: Feed, user: str, body: bytes, totp: str | None) -> httpx.Response:
    headers = {"X-NuGet-ApiKey": feed.keys[user]}
    if totp is not None:
        headers[TOTP] = totp
    with feed.client() as c:
        return c.post("/api/account/certificates", headers=headers, content=body)


# ------------------------------------------------------------------------------------------------ registration
def test_register_certificate_cli_needs_a_fresh_totp_code(
    feed: Feed, pki: SigningPki, codes: dict[str, Codes], tmp_path: Path
) -> None:
    path = tmp_path / "author.pem"
    path.write_bytes(pki.dev.cert_path("author").read_bytes())
    secret = codes["carol"].secret
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path))
    assert rc == 2 and "--totp" in out  # the option is required
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path), "--totp", "")
    assert rc != 0 and "code" in out.lower(), out
    stale = code(secret, steps_ahead=-3)
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path), "--totp", stale)
    assert rc != 0 and "wrong or expired" in out, out
    rc, out = admin_result(feed.data_dir, None, "list-certificates", "carol", "--json")
    assert rc == 0 and fingerprint(pki, "author") not in out
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "dave", str(path), "--totp", "123456")
    assert rc != 0 and "not enabled" in out, out  # dave has no 2FA
    fresh = codes["carol"].fresh()
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path), "--totp", fresh)
    assert rc == 0 and fingerprint(pki, "author") in out, out
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path), "--totp", fresh)
    assert rc != 0 and "already used" in out, out  # the same code twice
    older = code(secret)  # the current step: not after the one just used (fresh() used the next step)
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "carol", str(path), "--totp", older)
    assert rc != 0 and "already used" in out, out
    rc, out = admin_result(feed.data_dir, None, "list-certificates", "carol", "--json")
    assert rc == 0 and fingerprint(pki, "author") in out


def test_register_certificate_api_needs_a_fresh_totp_code(
    feed: Feed, pki: SigningPki, codes: dict[str, Codes], bob_fp: str
) -> None:
    assert bob_fp == fingerprint(pki, "revoked-signer")
    body = der(pki, "author")
    missing = _api_register(feed, "bob", body, None)
    assert missing.status_code == 403 and "required" in missing.text
    stale = _api_register(feed, "bob", body, code(codes["bob"].secret, steps_ahead=-3))
    assert stale.status_code == 403 and "wrong or expired" in stale.text
    replayed = _api_register(feed, "bob", body, code(codes["bob"].secret))  # not after the step bob_fp used
    assert replayed.status_code == 403 and "already used" in replayed.text
    with feed.client() as c:
        listed = c.get("/api/account", headers={"X-NuGet-ApiKey": feed.keys["bob"]}).json()["certificates"]
    assert [x["fingerprint"] for x in listed] == [bob_fp]
    no_2fa = _api_register(feed, "dave", body, "123456")
    assert no_2fa.status_code == 403 and "not enabled" in no_2fa.text


# ------------------------------------------------------------------------------------------------ pushes
def test_pushes_are_decided_by_the_owners_registered_certificates(
    feed: Feed, pki: SigningPki, alice_fp: str, bob_fp: str
) -> None:
    pid = "Flow.Main"
    unsigned = make_package(pid, "1.0.0")
    r = feed.push(unsigned)
    assert r.status_code == 400 and r.text.startswith("NU3004: "), r.text
    assert alice_fp in r.text and bob_fp not in r.text and "not signed" in r.text
    assert alice_fp in r.headers["X-NuGet-Warning"]
    assert_not_visible(feed, pid, "1.0.0")

    foreign = pki.sign(unsigned, "repository")  # valid and trusted, but nobody registered it
    r = feed.push(foreign)
    assert r.status_code == 400 and r.text.startswith("NU3034: "), r.text
    assert alice_fp in r.text and "no owner of Flow.Main has registered" in r.text
    assert_not_visible(feed, pid, "1.0.0")

    by_bob = pki.sign(unsigned, "revoked-signer")  # bob's certificate: bob does not own Flow.Main yet
    r = feed.push(by_bob)
    assert r.status_code == 400 and r.text.startswith("NU3034: ") and bob_fp not in r.text, r.text
    assert_not_visible(feed, pid, "1.0.0")

    signed = pki.sign(unsigned)
    r = feed.push(signed)
    assert r.status_code == 201, r.text
    served = download(feed, pid, "1.0.0")
    primary = primary_of(served)
    assert primary.type is SignatureType.AUTHOR and primary.signer_certificate == pki.dev.cert("author")
    assert len(timestamps_of(primary)) == 1
    repo = primary.repository_countersignature()
    assert repo is not None and repo.signer_certificate == pki.dev.cert("repository")
    assert repo.v3_service_index_url == feed_index_url(feed)
    assert repo.package_owners == ("alice",)
    assert len(timestamps_of(repo)) == 1 and timestamps_of(repo)[0].signer_certificate == pki.dev.cert("tsa")
    # the author's signature is kept as pushed and the content is untouched
    assert primary.signature_value == primary_of(signed).signature_value
    assert PackageArchive.from_bytes(served).without_signature() == unsigned

    # a second owner's registered certificate is accepted for the same id
    feed.admin("add-owner", pid, "bob")
    by_bob2 = pki.sign(make_package(pid, "2.0.0"), "revoked-signer")
    r = feed.push(by_bob2, key="bob")
    assert r.status_code == 201, r.text
    repo2 = primary_of(download(feed, pid, "2.0.0")).repository_countersignature()
    assert repo2 is not None and repo2.package_owners == ("alice", "bob")
    r = feed.push(make_package(pid, "3.0.0"), key="bob")
    assert r.status_code == 400 and r.text.startswith("NU3004: ") and alice_fp in r.text and bob_fp in r.text
    assert "3.0.0" not in download_index(feed, pid)
    assert list((feed.data_dir / "staging").iterdir()) == []


def download_index(feed: Feed, package_id: str) -> list[str]:
    with feed.client() as c:
        r = c.get(f"/v3/flatcontainer/{package_id.lower()}/index.json")
    assert r.status_code == 200
    return list(r.json()["versions"])


# ------------------------------------------------------------------------------------------------ verify
@pytest.fixture(scope="module")
def served_signed(feed: Feed, pki: SigningPki, alice_fp: str) -> bytes:
    """Flow.Verify 1.0.0 pushed author-signed by alice, as the feed serves it."""
    r = feed.push(pki.sign(make_package("Flow.Verify", "1.0.0")))
    assert r.status_code == 201, r.text
    return download(feed, "Flow.Verify", "1.0.0")


@pytest.fixture(scope="module")
def served_unsigned(feed: Feed) -> bytes:
    """Flow.Unsigned 1.0.0 pushed unsigned by dave (no registered certificate), as the feed serves it."""
    r = feed.push(make_package("Flow.Unsigned", "1.0.0"), key="dave")
    assert r.status_code == 201, r.text
    assert "X-NuGet-Warning" not in r.headers and "warning" not in r.text
    return download(feed, "Flow.Unsigned", "1.0.0")


def test_nuseal_verify_trusts_the_feed_by_repository_certificate_and_owners(
    feed: Feed, pki: SigningPki, served_signed: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "flow.verify.1.0.0.nupkg"
    package.write_bytes(served_signed)
    good = trusted_signers_config(tmp_path / "good.config", feed, pki, "alice")
    rc, out = nuseal_verify(capsys, pki, package, good)
    assert rc == 0, out
    assert "Successfully verified package" in out
    wrong = trusted_signers_config(tmp_path / "wrong.config", feed, pki, "mallory")
    rc, out = nuseal_verify(capsys, pki, package, wrong)
    assert rc == 1 and "NU3034" in out, out
    # the author-signed original, without the feed's countersignature, is not trusted by that config either
    original = tmp_path / "original.nupkg"
    original.write_bytes(pki.sign(PackageArchive.from_bytes(served_signed).without_signature()))
    rc, out = nuseal_verify(capsys, pki, original, good)
    assert rc == 1 and "NU3034" in out, out


def test_unsigned_push_without_registered_certificates_is_served_repository_signed(
    feed: Feed, pki: SigningPki, served_unsigned: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary = primary_of(served_unsigned)
    assert primary.type is SignatureType.REPOSITORY
    assert primary.signer_certificate == pki.dev.cert("repository")
    assert primary.v3_service_index_url == feed_index_url(feed)
    assert primary.package_owners == ("dave",)
    assert len(timestamps_of(primary)) == 1
    assert primary.repository_countersignature() is None
    package = tmp_path / "flow.unsigned.1.0.0.nupkg"
    package.write_bytes(served_unsigned)
    rc, out = nuseal_verify(capsys, pki, package, trusted_signers_config(tmp_path / "c", feed, pki, "dave"))
    assert rc == 0, out


@pytest.mark.oracle
def test_nugets_verifier_accepts_what_the_feed_serves(
    pki: SigningPki, served_signed: bytes, served_unsigned: bytes
) -> None:
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    root = pki.dev.root_pem_path
    for label, data in (
        ("author + repository countersignature", served_signed),
        ("repository primary", served_unsigned),
    ):
        report = oracle.verify(data, trust_bundle=root, timestamp_bundle=root)
        assert report.fatal is None, (label, report.fatal)
        assert report.integrity == "ok", (label, report.integrity_error)
        require = report.policy("requireMode")
        assert require.is_valid and not require.error_codes, (label, require.codes, require.messages)
        verify = report.policy("verifyCommand")
        assert verify.is_valid and not verify.error_codes, (label, verify.codes, verify.messages)
        assert report.primary is not None
        if label.startswith("author"):
            assert report.primary.type == "Author" and report.countersignature is not None
            assert report.countersignature.type == "Repository"
            assert report.countersignature.package_owners == ("alice",)
        else:
            assert report.primary.type == "Repository" and report.primary.package_owners == ("dave",)


# ------------------------------------------------------------------------------------------------ warnings
def test_zip64_package_is_refused_with_nu3006(feed: Feed) -> None:
    """NuGet signs and verifies no ZIP64 package (NU3006), so a signing feed refuses one, signed or not, with
    NuGet's code, and nothing becomes visible."""
    buf = io.BytesIO(make_package("Flow.Zip64", "1.0.0"))
    with zipfile.ZipFile(buf, "a") as z, z.open("content/big.bin", "w", force_zip64=True) as f:
        f.write(b"x" * 100)
    r = feed.push(buf.getvalue(), key="dave")
    assert r.status_code == 400 and r.text.startswith("NU3006: ") and "ZIP64" in r.text, r.text
    assert_not_visible(feed, "Flow.Zip64", "1.0.0")


def test_package_too_large_to_sign_without_zip64_is_refused_as_the_packages_problem(feed: Feed) -> None:
    """65534 entries (+ the signature would need ZIP64): NuGet cannot sign it (NU3039), so the feed cannot give it
    its repository signature. That is the package's problem (400 with NuGet's code), not the feed's (503)."""
    files = {f"content/{i:05}": b"" for i in range(0xFFFE - 4)}  # + the 4 entries of make_package
    data = make_package("Flow.Crowded", "1.0.0", files=files)
    r = feed.push(data, key="dave")
    assert r.status_code == 400 and r.text.startswith("NU3039: "), r.text
    assert_not_visible(feed, "Flow.Crowded", "1.0.0")


def test_unsigned_version_after_author_signed_ones_is_accepted_with_a_warning(
    feed: Feed, pki: SigningPki, codes: dict[str, Codes]
) -> None:
    """erin registers, pushes a signed version, removes her certificate; her next unsigned version is accepted
    with nuget.org's warning (``CheckForUnsignedPushAfterAuthorSignedAsync``)."""
    erin = enable_2fa_cli(feed.data_dir, None, "erin")
    r = _api_register(feed, "erin", der(pki, "author"), erin.fresh())
    assert r.status_code == 201, r.text
    fp = r.json()["fingerprint"]
    r = feed.push(pki.sign(make_package("Flow.Warn", "1.0.0")), key="erin")
    assert r.status_code == 201 and "warning" not in r.text, r.text
    with feed.client() as c:
        gone = c.delete(
            f"/api/account/certificates/{fp}", headers={"X-NuGet-ApiKey": feed.keys["erin"], TOTP: erin.fresh()}
        )
    assert gone.status_code == 204, gone.text
    r = feed.push(make_package("Flow.Warn", "2.0.0"), key="erin")
    assert r.status_code == 201, r.text
    warning = r.headers["X-NuGet-Warning"]
    assert "Flow.Warn 2.0.0 is not signed" in warning and "author-signed" in warning
    assert "warning: Flow.Warn 2.0.0 is not signed" in r.text
    served = primary_of(download(feed, "Flow.Warn", "2.0.0"))
    assert served.type is SignatureType.REPOSITORY and served.package_owners == ("erin",)


# ------------------------------------------------------------------------------------------------ RepositorySignatures
def test_repository_signatures_resource(feed: Feed, pki: SigningPki, served_unsigned: bytes) -> None:
    cert = pki.dev.cert("repository")
    with feed.client() as c:
        index = c.get("/v3/index.json").json()
        found = [r for r in index["resources"] if r["@type"] == "RepositorySignatures/5.0.0"]
        assert len(found) == 1, index["resources"]
        doc = c.get(found[0]["@id"]).json()
        assert set(doc) == {"allRepositorySigned", "signingCertificates"}
        assert doc["allRepositorySigned"] is True
        assert len(doc["signingCertificates"]) == 1
        entry = doc["signingCertificates"][0]
        assert set(entry) == {"fingerprints", "subject", "issuer", "notBefore", "notAfter", "contentUrl"}
        assert entry["fingerprints"] == {"2.16.840.1.101.3.4.2.1": fingerprint(pki, "repository")}
        assert entry["subject"] == "O=nuseal development PKI, CN=nuseal dev repository"
        assert entry["issuer"] == "O=nuseal development PKI, CN=nuseal dev intermediate"
        assert datetime.fromisoformat(entry["notBefore"]) == cert.not_valid_before_utc
        assert datetime.fromisoformat(entry["notAfter"]) == cert.not_valid_after_utc
        assert entry["contentUrl"].startswith(feed.base_url + "/")
        content = c.get(entry["contentUrl"])
        assert content.status_code == 200 and content.content == der(pki, "repository")
    # the certificate that signed what the feed serves is the one listed
    served = primary_of(served_unsigned).signer_certificate
    assert served is not None and sha256(served.public_bytes(Encoding.DER)) == fingerprint(pki, "repository")


# ------------------------------------------------------------------------------------------------ PostgreSQL
@pytest.mark.postgres
def test_signing_flow_on_postgresql(pg_cluster: PgCluster, pki: SigningPki, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    f = start_signing_feed(tmp_path / "feed", *pki_feed_args(pki), database_url=url, env=pki_feed_env(pki))
    try:
        codes = enable_2fa_cli(f.data_dir, url, "alice")
        cer = tmp_path / "author.cer"
        cer.write_bytes(der(pki, "author"))
        rc, out = admin_result(f.data_dir, url, "register-certificate", "alice", str(cer), "--totp", codes.fresh())
        assert rc == 0, out
        unsigned = make_package("Pg.Signed", "1.0.0")
        r = f.push(unsigned)
        assert r.status_code == 400 and r.text.startswith("NU3004: ") and fingerprint(pki, "author") in r.text
        r = f.push(pki.sign(unsigned, "repository"))
        assert r.status_code == 400 and r.text.startswith("NU3034: "), r.text
        assert_not_visible(f, "Pg.Signed", "1.0.0")
        r = f.push(pki.sign(unsigned))
        assert r.status_code == 201, r.text
        primary = primary_of(download(f, "Pg.Signed", "1.0.0"))
        assert primary.type is SignatureType.AUTHOR
        repo = primary.repository_countersignature()
        assert repo is not None and repo.package_owners == ("alice",)
        assert repo.v3_service_index_url == feed_index_url(f)
        r = f.push(make_package("Pg.Plain", "1.0.0"), key="bob")
        assert r.status_code == 201, r.text
        assert primary_of(download(f, "Pg.Plain", "1.0.0")).type is SignatureType.REPOSITORY
    finally:
        f.stop()


# ------------------------------------------------------------------------------------------------ signing failures
def _dead_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_is_published_when_the_feed_cannot_repository_sign(pki: SigningPki, tmp_path: Path) -> None:
    """The TSA is unreachable, then the repository certificate is revoked: the push fails with 503 (the feed's
    problem, not the package's), nothing becomes visible and nothing is left in staging."""
    args = pki_feed_args(pki)
    args[args.index("--timestamper") + 1] = f"http://127.0.0.1:{_dead_port()}/tsa"
    f = start_signing_feed(tmp_path / "no-tsa", *args, env=pki_feed_env(pki), users=("dave",))
    try:
        r = f.push(make_package("Flow.NoTsa", "1.0.0"), key="dave")
        assert r.status_code == 503, r.text
        assert "could not repository-sign" in r.text
        assert_not_visible(f, "Flow.NoTsa", "1.0.0")
        assert list((f.data_dir / "staging").iterdir()) == []
    finally:
        f.stop()
    pki.server.revoke("repository", at=datetime.now(UTC) - timedelta(hours=1))
    try:
        f = start_signing_feed(tmp_path / "revoked", *pki_feed_args(pki), env=pki_feed_env(pki), users=("dave",))
        try:
            r = f.push(make_package("Flow.Revoked", "1.0.0"), key="dave")
            assert r.status_code == 503, r.text
            assert "revoked" in r.text.lower(), r.text
            assert_not_visible(f, "Flow.Revoked", "1.0.0")
            assert list((f.data_dir / "staging").iterdir()) == []
        finally:
            f.stop()
    finally:
        pki.server.unrevoke("repository")


def test_repository_signatures_after_signing_was_turned_on(pki: SigningPki, tmp_path: Path) -> None:
    """Versions published by a plain feed are not repository-signed, so ``allRepositorySigned`` is false once the
    same data is served with signing; restarts list the repository certificate once."""
    data_dir = tmp_path / "feed"
    plain = start_feed(data_dir, users=("dave",))
    try:
        assert plain.push(make_package("Flow.Old", "1.0.0"), key="dave").status_code == 201
    finally:
        plain.stop()
    for _ in range(2):
        f = start_signing_feed(
            data_dir,
            *pki_feed_args(pki),
            "--advertise-repository-signatures",
            "always",
            env=pki_feed_env(pki),
            users=(),
        )
        try:
            with f.client() as c:
                index = c.get("/v3/index.json").json()
                url = next(r["@id"] for r in index["resources"] if r["@type"] == "RepositorySignatures/5.0.0")
                doc = c.get(url).json()
            assert doc["allRepositorySigned"] is False
            assert [e["fingerprints"] for e in doc["signingCertificates"]] == [
                {"2.16.840.1.101.3.4.2.1": fingerprint(pki, "repository")}
            ]
            old = download(f, "Flow.Old", "1.0.0")
            assert not PackageArchive.from_bytes(old).is_signed  # served as it was published
        finally:
            f.stop()
