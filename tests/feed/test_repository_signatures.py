"""``allRepositorySigned`` in ``RepositorySignatures/5.0.0`` (``nuseal.feed.protocol.repository_signatures``) follows
the stored versions after every publish, not only at start, and does not follow listing: true on a feed that signed
every version it stores (checked against the served bytes), false for good once a version without the feed's
repository signature is stored (pushed with signing off: versions are never re-signed or deleted).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.feed.accounts.keys import authenticate, create_api_key, create_user
from nuseal.feed.compose import build_feed
from nuseal.feed.config import PFX_PASSWORD_ENV_VAR, FeedConfig, SigningConfig
from nuseal.feed.publish.pipeline import default_pipeline
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.submission import Submission
from nuseal.feed.publish.upload import StagedUpload
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType

from .conftest import Feed, make_package, start_feed
from .signing_support import (
    SigningPki,
    admin_result,
    download,
    enable_2fa_cli,
    feed_index_url,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    signature_entry,
    start_signing_feed,
)

RESOURCE = "RepositorySignatures/5.0.0"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


def _signing_feed(data_dir: Path, pki: SigningPki, users: tuple[str, ...]) -> Feed:
    return start_signing_feed(
        data_dir, *pki_feed_args(pki), "--advertise-repository-signatures", "always", env=pki_feed_env(pki), users=users
    )


def _document(feed: Feed) -> dict[str, Any]:
    with feed.client() as c:
        index = c.get("/v3/index.json").json()
        url = next(r["@id"] for r in index["resources"] if r["@type"] == RESOURCE)
        doc: dict[str, Any] = c.get(url).json()
    return doc


def _unlist_and_relist(feed: Feed, user: str, package_id: str, version: str) -> list[bool]:
    """``allRepositorySigned`` after unlisting, then after relisting."""
    seen = []
    headers = {"X-NuGet-ApiKey": feed.keys[user]}
    with feed.client() as c:
        assert c.delete(f"/api/v2/package/{package_id}/{version}", headers=headers).status_code == 204
        seen.append(_document(feed)["allRepositorySigned"])
        assert c.post(f"/api/v2/package/{package_id}/{version}", headers=headers).status_code == 200
        seen.append(_document(feed)["allRepositorySigned"])
    return seen


def _carries_the_feeds_repository_signature(feed: Feed, package: bytes, pki: SigningPki) -> bool:
    archive = PackageArchive.from_bytes(package)
    if not archive.is_signed:
        return False
    primary = PrimarySignature.load(signature_entry(package))
    repo = primary if primary.type is SignatureType.REPOSITORY else primary.repository_countersignature()
    return (
        repo is not None
        and repo.signer_certificate == pki.dev.cert("repository")
        and repo.v3_service_index_url == feed_index_url(feed)
    )


def test_false_for_good_after_an_unsigned_version_from_a_plain_feed(pki: SigningPki, tmp_path: Path) -> None:
    """Signing off, a push; signing on: false at start, still false after signed publishes (a publish of a
    repository-signed version does not make it true), after unlisting and relisting, and after a restart."""
    data_dir = tmp_path / "feed"
    plain = start_feed(data_dir, users=("dave",))
    try:
        assert plain.push(make_package("Sig.Old", "1.0.0"), key="dave").status_code == 201
    finally:
        plain.stop()
    f = _signing_feed(data_dir, pki, ())
    try:
        assert _document(f)["allRepositorySigned"] is False
        f.keys["dave"] = plain.keys["dave"]
        for version in ("2.0.0", "3.0.0"):
            r = f.push(make_package("Sig.Old", version), key="dave")
            assert r.status_code == 201, r.text
            assert _carries_the_feeds_repository_signature(f, download(f, "Sig.Old", version), pki)
            assert _document(f)["allRepositorySigned"] is False
        assert _unlist_and_relist(f, "dave", "Sig.Old", "1.0.0") == [False, False]  # even with the old one hidden
        assert not _carries_the_feeds_repository_signature(f, download(f, "Sig.Old", "1.0.0"), pki)
    finally:
        f.stop()
    again = _signing_feed(data_dir, pki, ())
    try:
        assert _document(again)["allRepositorySigned"] is False
    finally:
        again.stop()


def test_true_while_every_stored_version_is_repository_signed(pki: SigningPki, tmp_path: Path) -> None:
    """A feed with signing from its first version: true before any push and after each publish (unsigned ->
    repository primary, author-signed -> repository countersignature), unlisting and relisting; and every
    version it serves does carry its repository signature."""
    f = _signing_feed(tmp_path / "feed", pki, ("alice",))
    try:
        assert _document(f)["allRepositorySigned"] is True
        pushed = [
            ("1.0.0", make_package("Sig.New", "1.0.0")),  # unsigned: before alice registers a certificate
            ("2.0.0", pki.sign(make_package("Sig.New", "2.0.0"))),
        ]
        for version, data in pushed:
            if version == "2.0.0":
                codes = enable_2fa_cli(f.data_dir, None, "alice")
                cer = tmp_path / "author.cer"
                cer.write_bytes(pki.dev.cert("author").public_bytes(Encoding.DER))
                rc, out = admin_result(
                    f.data_dir, None, "register-certificate", "alice", str(cer), "--totp", codes.fresh()
                )
                assert rc == 0, out
            r = f.push(data, key="alice")
            assert r.status_code == 201, r.text
            assert _document(f)["allRepositorySigned"] is True
        assert _unlist_and_relist(f, "alice", "Sig.New", "1.0.0") == [True, True]
        served = {v: download(f, "Sig.New", v) for v, _ in pushed}
        assert all(_carries_the_feeds_repository_signature(f, data, pki) for data in served.values())
        assert PrimarySignature.load(signature_entry(served["2.0.0"])).type is SignatureType.AUTHOR
    finally:
        f.stop()


def test_a_publish_without_the_repository_signature_turns_it_false_at_once(
    pki: SigningPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the signing hooks installed, but a version published through a pipeline without the
    repository-signing stage (what any future publish path that skipped it would store). The document says
    false right after that publish, without a restart, and the next start agrees."""
    monkeypatch.setenv(PFX_PASSWORD_ENV_VAR, pki.dev.pfx_password)
    config = FeedConfig(
        data_dir=tmp_path / "feed",
        base_url="http://127.0.0.1:1",
        signing=SigningConfig(
            enabled=True,
            trust_bundle=str(pki.dev.root_pem_path),
            repository_pfx=str(pki.dev.pfx_path("repository")),
            timestamper_url=pki.dev.tsa_url,
        ),
    )
    now = datetime.now(UTC)

    def document(_service: FeedService) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((config.storage_dir / "v3/repository-signatures/index.json").read_bytes())
        return doc

    feed = build_feed(config)
    service = feed.service
    service.setup()
    with service.db.write() as s:
        create_user(s, "alice", now=now)
        key = create_api_key(s, "alice", now=now).key
    with service.db.read() as s:
        principal = authenticate(s, key, now=now)

    def submit(name: str, version: str) -> Submission:
        data = make_package(name, version)
        path = config.staging_dir / f"{name}-{version}.nupkg"
        path.write_bytes(data)
        return Submission(StagedUpload(path, len(data), ""), principal, now)

    try:
        signed_pipeline = feed.pipeline
        signed_pipeline.run(submit("Hook.Pkg", "1.0.0"))
        assert document(service)["allRepositorySigned"] is True
        default_pipeline(service).run(submit("Hook.Pkg", "2.0.0"))  # stored without a repository signature
        assert document(service)["allRepositorySigned"] is False
        stored = config.storage_dir / "v3/flatcontainer/hook.pkg/2.0.0/hook.pkg.2.0.0.nupkg"
        assert not PackageArchive.from_bytes(stored.read_bytes()).is_signed
        signed_pipeline.run(submit("Hook.Pkg", "3.0.0"))
        assert document(service)["allRepositorySigned"] is False
    finally:
        service.db.dispose()
    restarted = build_feed(config).service
    try:
        restarted.setup()
        assert document(restarted)["allRepositorySigned"] is False
    finally:
        restarted.db.dispose()
