"""The feed's signing rules against a PKI that is not ours: certomancer's certificates, OCSP responder, CRLs and
RFC 3161 TSA (its aiohttp Animator on loopback). Register with 2FA, pushes refused and accepted, the served
package verified, then the author certificate revoked by certomancer after publication and found by
revalidation."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nuseal.cli.main import main
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.signing import SigningTrust, sign_package
from nuseal.timestamp import timestamps_of
from nuseal.trust.online import HttpRevocationFetcher

from .certomancer_pki import PFX_PASSWORD, CertomancerPki, serve_certomancer
from .conftest import Feed, make_package
from .signing_support import Codes, enable_2fa_cli, start_signing_feed


@pytest.fixture(scope="module")
def cm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertomancerPki]:
    yield from serve_certomancer(tmp_path_factory.mktemp("certomancer"))


@pytest.fixture(scope="module")
def cm_feed(cm: CertomancerPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Feed, Codes]]:
    data = tmp_path_factory.mktemp("feed")
    feed = start_signing_feed(
        data,
        "--trust-bundle",
        str(cm.root_pem()),
        "--repository-pfx",
        str(cm.pfx("repository")),
        "--timestamper",
        cm.tsa_url,
        "--revalidate-seconds",
        "0",
        env={"NUSEAL_REPOSITORY_PFX_PASSWORD": PFX_PASSWORD},
    )
    try:
        yield feed, enable_2fa_cli(data, None, "alice")
    finally:
        feed.stop()


def _signed(cm: CertomancerPki, data: bytes, name: str) -> bytes:
    trust = SigningTrust.from_pem_files(cm.root_pem(), fetcher=HttpRevocationFetcher())
    return sign_package(data, cm.signer(name), timestamper_url=cm.tsa_url, now=datetime.now(UTC), trust=trust).data


def _download(feed: Feed, package_id: str, version: str) -> bytes:
    low = package_id.lower()
    with feed.client() as c:
        r = c.get(f"/v3/flatcontainer/{low}/{version}/{low}.{version}.nupkg")
    assert r.status_code == 200, r.text
    return r.content


def _leaf(feed: Feed, package_id: str, version: str) -> dict[str, object]:
    with feed.client() as c:
        r = c.get(f"/v3/registration-semver2/{package_id.lower()}/index.json")
    assert r.status_code == 200, r.text
    (leaf,) = [i for page in r.json()["items"] for i in page["items"] if i["catalogEntry"]["version"] == version]
    entry = leaf["catalogEntry"]
    assert isinstance(entry, dict)
    return entry


def test_certomancer_pki_register_push_verify_revoke(
    cm: CertomancerPki, cm_feed: tuple[Feed, Codes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed, codes = cm_feed
    feed.admin("register-certificate", "alice", str(cm.cer("author")), "--totp", codes.fresh())
    package_id = "Certomancer.Signed"

    unsigned = make_package(package_id, "1.0.0")
    refused = feed.push(unsigned)
    assert refused.status_code == 400, refused.text
    assert "NU3004" in refused.text and cm.cer("author").read_bytes() and "registered" in refused.text

    foreign = feed.push(_signed(cm, make_package(package_id, "1.0.0"), "other"))
    assert foreign.status_code == 400, foreign.text
    assert "NU3034" in foreign.text

    signed = _signed(cm, make_package(package_id, "1.0.0"), "author")
    accepted = feed.push(signed)
    assert accepted.status_code == 201, accepted.text

    served = _download(feed, package_id, "1.0.0")
    primary = PrimarySignature.load(PackageArchive.from_bytes(served).read_signature())
    assert primary.type is SignatureType.AUTHOR
    assert primary.signer_certificate == cm.cert("author")
    countersignature = primary.repository_countersignature()
    assert countersignature is not None and countersignature.signer_certificate == cm.cert("repository")
    assert timestamps_of(countersignature) and timestamps_of(countersignature)[0].signer_certificate == cm.cert("tsa")
    # the content is untouched: the served package without its signature is the pushed one without its signature
    unsigned_served = PackageArchive.from_bytes(served).without_signature()
    assert unsigned_served == PackageArchive.from_bytes(signed).without_signature()
    assert zipfile.ZipFile(io.BytesIO(served)).namelist()[-1] == ".signature.p7s"

    path = tmp_path / f"{package_id}.1.0.0.nupkg"
    path.write_bytes(served)
    roots = ["--code-signing-roots", str(cm.root_pem()), "--timestamping-roots", str(cm.root_pem())]
    assert main(["verify", "--all", str(path), *roots, "--revocation-mode", "online"]) == 0

    # certomancer now says the author key was compromised before the package was signed. The first run cached
    # certomancer's "good" answers on disk until their nextUpdate (as NuGet's platform caches do), so a run
    # that is to see the revocation at once asks with an empty cache.
    stamp = timestamps_of(primary)[0].gen_time
    cm.revoke("author", since=stamp - timedelta(minutes=5))
    monkeypatch.setenv("NUSEAL_CACHE", str(tmp_path / "cache-after-revocation"))
    assert main(["verify", "--all", str(path), *roots, "--revocation-mode", "online"]) == 1
    before = _leaf(feed, package_id, "1.0.0")["packageSigning"]
    assert isinstance(before, dict) and before["status"] == "valid" and before["signed"] and before["repositorySigned"]
    feed.admin("revalidate")
    entry = _leaf(feed, package_id, "1.0.0")
    assert entry["listed"] is False
    signing = entry["packageSigning"]
    assert isinstance(signing, dict) and signing["status"] == "revoked"
    author_fp = hashlib.sha256(cm.cer("author").read_bytes()).hexdigest()
    assert signing["revokedBecause"]["fingerprint"] == author_fp
    target = f"package:{package_id.lower()}/1.0.0"
    entries = json.loads(feed.admin("audit", "--target", target, "--json"))
    expected = ["package.signature-accepted", "package.repository-signed", "package.revoked"]
    assert [e["action"] for e in entries] == expected
    revoked = entries[-1]["details"]
    assert revoked["fingerprint"] == author_fp, revoked
    assert json.loads(feed.admin("audit", "--action", "package.revoked", "--json")) == [entries[-1]]
    text = feed.admin("audit", "--target", target)
    assert len(text.splitlines()) == 3 and "package.revoked" in text.splitlines()[-1]
    # nothing changes on a second run: no new audit rows
    feed.admin("revalidate")
    assert json.loads(feed.admin("audit", "--target", target, "--json")) == entries
    with feed.client() as c:
        page = c.get(f"/packages/{package_id}/1.0.0")
    assert page.status_code == 200 and "revoked" in page.text.lower()

