"""`nuseal admin repository-sign`: a feed that ran without signing, restarted with signing, repository-signs the
versions it stored before (unsigned -> repository primary, author-signed -> repository countersignature, a
repository primary by another service index -> the feed's own), leaves an author signature that does not
verify as it is, and recomputes allRepositorySigned. Against the dev PKI's real TSA/OCSP/CRL on loopback, with
the feed serving while the command runs.

The content-hash check is NuGet's own rule: a package's content hash (what `.nupkg.metadata` and lock files
record) is the hash of the package without its signature, so it must equal the SHA-512 of the unsigned file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of
from nuseal.trust import dotnet_name

from .conftest import Feed, PgCluster, make_package, start_feed
from .signing_support import (
    OTHER_REPOSITORY_URL,
    SigningPki,
    admin_result,
    download,
    feed_index_url,
    nuseal_verify,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    start_signing_feed,
    trusted_signers_config,
)

USERS = ("alice", "carol")


def _primary(data: bytes) -> PrimarySignature:
    return PrimarySignature.load(PackageArchive.from_bytes(data).read_signature())


def _fingerprint(pki: SigningPki, name: str) -> str:
    return hashlib.sha256(pki.dev.cert(name).public_bytes(Encoding.DER)).hexdigest()


def _sha512_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _backfill(feed: Feed, *args: str) -> dict[str, Any]:
    rc, out = admin_result(feed.data_dir, feed.database_url, "repository-sign", "--json", *args)
    assert rc == 0, out
    return dict(json.loads(out))


def _repository_signatures(feed: Feed) -> dict[str, Any]:
    with feed.client() as c:
        return dict(c.get("/v3/repository-signatures/index.json").json())


def _leaf(feed: Feed, package_id: str, version: str) -> dict[str, Any]:
    with feed.client() as c:
        r = c.get(f"/v3/registration/{package_id.lower()}/{version}.json")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _restarted_with_signing(
    pki: SigningPki, data_dir: Path, pushes: list[tuple[bytes, str]], database_url: str | None = None
) -> Feed:
    """Push each ``(package, user)`` to a `--no-signing` feed in ``data_dir``, stop it, and start the same data
    folder again with signing (the PKI's root trusted, its repository certificate); the users keep their keys."""
    plain = start_feed(data_dir, users=USERS, database_url=database_url)
    try:
        for data, user in pushes:
            r = plain.push(data, key=user)
            assert r.status_code == 201, r.text
    finally:
        plain.stop()
    feed = start_signing_feed(data_dir, *pki_feed_args(pki), env=pki_feed_env(pki), users=(), database_url=database_url)
    feed.keys = plain.keys
    return feed


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path / "pki")


def test_repository_sign_backfills_versions_stored_while_signing_was_off(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "feed"
    pushed = {
        "Bf.Plain": make_package("Bf.Plain", "1.0.0"),
        "Bf.Authored": pki.sign(make_package("Bf.Authored", "1.0.0"), "author"),
        "Bf.Untrusted": pki.forced(make_package("Bf.Untrusted", "1.0.0"), "untrusted-signer"),
        "Bf.Elsewhere": pki.repository_sign(make_package("Bf.Elsewhere", "1.0.0"), url=OTHER_REPOSITORY_URL),
    }
    pushes = [(data, "carol" if package_id == "Bf.Plain" else "alice") for package_id, data in pushed.items()]
    feed = _restarted_with_signing(pki, data_dir, pushes)
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    try:
        assert _repository_signatures(feed)["allRepositorySigned"] is False
        before = {k: v for k, v in feed.snapshot().items() if k.endswith(".nupkg")}

        dry = _backfill(feed, "--dry-run")
        assert (dry["wouldSign"], dry["signed"], dry["skipped"]) == (3, 0, 1), dry
        assert {k: v for k, v in feed.snapshot().items() if k.endswith(".nupkg")} == before  # nothing changed

        run = _backfill(feed)
        outcomes = {v["id"]: v for v in run["versions"]}
        assert run["repositoryCertificate"] == _fingerprint(pki, "repository")
        assert {k: v["action"] for k, v in outcomes.items()} == {
            "Bf.Plain": "signed",
            "Bf.Authored": "signed",
            "Bf.Untrusted": "skipped",
            "Bf.Elsewhere": "signed",
        }
        assert outcomes["Bf.Plain"]["before"] == "unsigned" and outcomes["Bf.Plain"]["placement"] == "primary"
        assert (
            outcomes["Bf.Authored"]["before"] == "author" and outcomes["Bf.Authored"]["placement"] == "countersignature"
        )
        assert outcomes["Bf.Elsewhere"]["before"] == f"repository {_fingerprint(pki, 'repository')}"
        assert "NU3018" in outcomes["Bf.Untrusted"]["reason"], outcomes["Bf.Untrusted"]
        assert run["allRepositorySigned"] is False  # Bf.Untrusted is still without one
        assert _repository_signatures(feed)["allRepositorySigned"] is False

        # unsigned -> the feed's repository primary signature; NuGet's content hash is the old file's SHA-512
        served = download(feed, "Bf.Plain", "1.0.0")
        primary = _primary(served)
        assert primary.type is SignatureType.REPOSITORY
        assert primary.v3_service_index_url == feed_index_url(feed) and primary.package_owners == ("carol",)
        assert PackageArchive.from_bytes(served).content_hash() == _sha512_b64(pushed["Bf.Plain"])
        # author-signed -> alice's signature kept to the byte, the feed's countersignature added
        served = download(feed, "Bf.Authored", "1.0.0")
        primary = _primary(served)
        original = _primary(pushed["Bf.Authored"])
        assert primary.type is SignatureType.AUTHOR and primary.signature_value == original.signature_value
        counter = primary.repository_countersignature()
        assert counter is not None and counter.v3_service_index_url == feed_index_url(feed)
        assert counter.package_owners == ("alice",) and timestamps_of(counter)
        # a repository primary naming another service index -> replaced with the feed's
        primary = _primary(download(feed, "Bf.Elsewhere", "1.0.0"))
        assert primary.type is SignatureType.REPOSITORY and primary.v3_service_index_url == feed_index_url(feed)
        # the skipped one is byte-for-byte as pushed
        assert download(feed, "Bf.Untrusted", "1.0.0") == pushed["Bf.Untrusted"]

        # nuseal verify (require mode, trustedSigners = the feed's repository certificate) passes the re-signed
        config = trusted_signers_config(tmp_path / "nuget.config", feed, pki, "alice")
        package = tmp_path / "bf.authored.1.0.0.nupkg"
        package.write_bytes(download(feed, "Bf.Authored", "1.0.0"))
        rc, out = nuseal_verify(capsys, pki, package, config)
        assert rc == 0, out

        # the registration leaf, V2's PackageHash and the audit log agree with the new bytes
        signing = _leaf(feed, "Bf.Authored", "1.0.0")["packageSigning"]
        assert [(s["type"], s["placement"]) for s in signing["signatures"]] == [
            ("author", "primary"),
            ("repository", "countersignature"),
        ]
        assert _leaf(feed, "Bf.Untrusted", "1.0.0")["packageSigning"]["repositorySigned"] is False
        with feed.client() as c:
            v2 = c.get("/api/v2/Search()", params={"searchTerm": "'Bf.Plain'"}).text
        assert _sha512_b64(download(feed, "Bf.Plain", "1.0.0")) in v2
        audit = json.loads(feed.admin("audit", "--target", "package:bf.plain/1.0.0", "--json"))
        [entry] = [e for e in audit if e["action"] == "package.repository-signed"]
        assert entry["details"]["backfill"] is True and entry["details"]["before"] == "unsigned"
        assert entry["details"]["previous_sha512"] == _sha512_b64(pushed["Bf.Plain"])
        # what was recorded is what the served bytes carry: the repository countersignature from the signing call's
        # result, the author signature from the engine's (neither parsed again by the feed)
        recorded = {
            e["action"]: e["details"]
            for e in json.loads(feed.admin("audit", "--target", "package:bf.authored/1.0.0", "--json"))
        }
        for action, placement, signer, signature in (
            ("package.repository-signed", "countersignature", "repository", counter),
            ("package.signature-accepted", "primary", "author", original),
        ):
            [stamp] = timestamps_of(signature)
            assert stamp.signer_certificate is not None
            assert recorded[action]["placement"] == placement
            assert recorded[action]["fingerprint"] == _fingerprint(pki, signer)
            assert recorded[action]["timestamp"] == stamp.gen_time.astimezone(UTC).isoformat()
            assert recorded[action]["timestamp_authority"] == dotnet_name(stamp.signer_certificate.subject)

        # a second run signs nothing new
        signed_files = {k: v for k, v in feed.snapshot().items() if k.endswith(".nupkg")}
        again = _backfill(feed)
        assert (again["signed"], again["skipped"]) == (0, 1), again
        assert {k: v for k, v in feed.snapshot().items() if k.endswith(".nupkg")} == signed_files
    finally:
        feed.stop()


def _all_repository_signed_after_backfill(pki: SigningPki, tmp_path: Path, database_url: str | None) -> None:
    pushes = [(make_package("Bf.All", version), "carol") for version in ("1.0.0", "1.1.0")]
    feed = _restarted_with_signing(pki, tmp_path / "feed", pushes, database_url)
    try:
        assert _repository_signatures(feed)["allRepositorySigned"] is False
        run = _backfill(feed, "--limit", "1")
        assert (run["signed"], run["morePending"], run["allRepositorySigned"]) == (1, True, False), run
        run = _backfill(feed)
        assert (run["signed"], run["morePending"], run["allRepositorySigned"]) == (1, False, True), run
        assert _repository_signatures(feed)["allRepositorySigned"] is True
        r = feed.push(make_package("Bf.All", "2.0.0"), key="carol")  # a push keeps it true
        assert r.status_code == 201, r.text
        assert _repository_signatures(feed)["allRepositorySigned"] is True
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            assert _primary(download(feed, "Bf.All", version)).type is SignatureType.REPOSITORY
    finally:
        feed.stop()


def test_repository_sign_makes_all_repository_signed_true(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stored version good to sign, two runs (``--limit 1``): allRepositorySigned turns true in the served
    resource and a later push keeps it true."""
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    _all_repository_signed_after_backfill(pki, tmp_path, None)


@pytest.mark.postgres
def test_repository_sign_on_postgres(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_cluster: PgCluster
) -> None:
    """The same on PostgreSQL (the id's advisory lock instead of SQLite's writer lock)."""
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    _all_repository_signed_after_backfill(pki, tmp_path, pg_cluster.new_database())


def test_repository_sign_refuses_a_feed_that_never_signed(tmp_path: Path) -> None:
    plain = start_feed(tmp_path / "plain")
    try:
        rc, out = admin_result(plain.data_dir, None, "repository-sign")
        assert rc != 0 and "signing" in out and "Traceback" not in out, out
    finally:
        plain.stop()


def test_repository_sign_after_a_repository_key_rotation(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packages the feed signed with its first repository certificate are signed again with the new one after
    the feed restarts with another key (the resource spec's rule after a key compromise); the resource keeps
    listing both certificates."""
    data_dir = tmp_path / "feed"
    first = start_signing_feed(data_dir, *pki_feed_args(pki), env=pki_feed_env(pki), users=USERS)
    try:
        assert first.push(make_package("Bf.Rot", "1.0.0"), key="carol").status_code == 201
    finally:
        first.stop()
    old_fp, new_fp = _fingerprint(pki, "repository"), _fingerprint(pki, "author")
    rotated = [
        a if a != str(pki.dev.pfx_path("repository")) else str(pki.dev.pfx_path("author")) for a in pki_feed_args(pki)
    ]
    feed = start_signing_feed(data_dir, *rotated, env=pki_feed_env(pki), users=())
    feed.keys = first.keys
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    try:
        listed = [
            c["fingerprints"]["2.16.840.1.101.3.4.2.1"] for c in _repository_signatures(feed)["signingCertificates"]
        ]
        assert listed == [old_fp, new_fp]
        assert _repository_signatures(feed)["allRepositorySigned"] is True  # signed, by the old certificate
        run = _backfill(feed)
        [outcome] = run["versions"]
        assert (outcome["action"], outcome["before"]) == ("signed", f"repository {old_fp}"), outcome
        primary = _primary(download(feed, "Bf.Rot", "1.0.0"))
        assert primary.type is SignatureType.REPOSITORY and primary.signer_certificate is not None
        assert hashlib.sha256(primary.signer_certificate.public_bytes(Encoding.DER)).hexdigest() == new_fp
        sigs = _leaf(feed, "Bf.Rot", "1.0.0")["packageSigning"]["signatures"]
        assert [s["fingerprints"]["2.16.840.1.101.3.4.2.1"] for s in sigs] == [new_fp]
        assert _backfill(feed)["versions"] == []  # nothing left
    finally:
        feed.stop()


def test_a_failed_replacement_leaves_the_version_as_it_was(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real fault after the new .nupkg is in place (a folder where the version's registration leaf must be
    written): the transaction rolls back, the old file is put back, the command says where it stopped, and a
    run after the fault is gone signs the version."""
    data_dir = tmp_path / "feed"
    original = make_package("Bf.Fault", "1.0.0")
    feed = _restarted_with_signing(pki, data_dir, [(original, "carol")])
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    try:
        leaf = data_dir / "storage/v3/registration/bf.fault/1.0.0.json"
        saved = leaf.read_bytes()
        leaf.unlink()
        leaf.mkdir()
        (leaf / "x").write_text("blocks the rename")
        rc, out = admin_result(feed.data_dir, None, "repository-sign")
        assert rc != 0 and "stopped at Bf.Fault 1.0.0, which is unchanged" in out and "Traceback" not in out, out
        (leaf / "x").unlink()
        leaf.rmdir()
        leaf.write_bytes(saved)
        assert download(feed, "Bf.Fault", "1.0.0") == original
        assert _leaf(feed, "Bf.Fault", "1.0.0")["packageSigning"]["repositorySigned"] is False
        audit = json.loads(feed.admin("audit", "--target", "package:bf.fault/1.0.0", "--json"))
        assert not [e for e in audit if e["action"] == "package.repository-signed"]

        run = _backfill(feed)
        assert run["signed"] == 1 and run["allRepositorySigned"] is True, run
        assert _primary(download(feed, "Bf.Fault", "1.0.0")).type is SignatureType.REPOSITORY
    finally:
        feed.stop()


@pytest.mark.oracle
def test_nugets_verifier_accepts_backfilled_packages(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Microsoft's NuGet.Packaging (../shared/tools/nuget-oracle, trusting the dev root) accepts what the
    backfill wrote, in require mode and as `nuget verify`: a repository primary signature on a package pushed
    unsigned, and a repository countersignature on one pushed author-signed."""
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    pushes = [
        (make_package("Bf.Or.Plain", "1.0.0"), "carol"),
        (pki.sign(make_package("Bf.Or.Authored", "1.0.0"), "author"), "alice"),
    ]
    feed = _restarted_with_signing(pki, tmp_path / "feed", pushes)
    monkeypatch.setenv("NUSEAL_REPOSITORY_PFX_PASSWORD", pki.dev.pfx_password)
    try:
        assert _backfill(feed)["signed"] == 2
        root = pki.dev.root_pem_path
        for package_id, kind, owners in (
            ("Bf.Or.Plain", "Repository", ("carol",)),
            ("Bf.Or.Authored", "Author", ("alice",)),
        ):
            report = oracle.verify(download(feed, package_id, "1.0.0"), trust_bundle=root, timestamp_bundle=root)
            assert report.fatal is None and report.integrity == "ok", (package_id, report.fatal, report.integrity_error)
            for policy in ("requireMode", "verifyCommand"):
                result = report.policy(policy)
                assert result.is_valid and not result.error_codes, (package_id, policy, result.codes, result.messages)
            assert report.primary is not None and report.primary.type == kind
            repo = report.primary if kind == "Repository" else report.countersignature
            assert repo is not None and repo.type == "Repository" and repo.package_owners == owners
    finally:
        feed.stop()
