"""Revalidation (issue 5 items 5 and 6): `nuseal admin revalidate` and the background task recheck the revocation
of the certificates the feed's signatures use, through the dev PKI's real OCSP responder and CRLs on loopback,
and the web page and registration leaf show each version's signing status.

Revocations are made in the responders with ``DevPkiServer.revoke(name, at=..., reason=...)`` (OCSP and CRL at
once). Signing timestamps are read here from the downloaded package with nuseal.signature; fingerprints are
recomputed with hashlib; the audit log is read from the feed's database.
"""

from __future__ import annotations

import hashlib
import html as html_mod
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.devpki import DevPki, DevPkiServer
from nuseal.feed.config import FeedConfig
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.signing.revalidation import LEASE_SETTING, release_lease, try_acquire_lease
from nuseal.feed.store.audit import AuditRecord, read_audit
from nuseal.feed.store.database import Database
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of
from nuseal.trust import dotnet_name

from .conftest import Feed, PgCluster, make_package
from .signing_support import (
    SigningPki,
    admin_result,
    download,
    enable_2fa_cli,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    start_signing_feed,
)

USERS = ("alice", "bob", "carol")


# ------------------------------------------------------------------------------------------------ helpers
def fingerprint(pki: SigningPki, name: str) -> str:
    return hashlib.sha256(pki.dev.cert(name).public_bytes(Encoding.DER)).hexdigest()


@dataclass
class SignedFeed:
    """A running signing feed over a served dev PKI; alice registered ``author``, bob ``revoked-signer``
    (carol has no certificate)."""

    pki: SigningPki
    feed: Feed

    def stop(self) -> None:
        self.feed.stop()


def _register(feed: Feed, user: str, pki: SigningPki, name: str, tmp: Path) -> None:
    codes = enable_2fa_cli(feed.data_dir, feed.database_url, user)
    path = tmp / f"{name}.cer"
    path.write_bytes(pki.dev.cert(name).public_bytes(Encoding.DER))
    rc, out = admin_result(
        feed.data_dir, feed.database_url, "register-certificate", user, str(path), "--totp", codes.fresh()
    )
    assert rc == 0, out


def open_signed_feed(
    pki: SigningPki, tmp: Path, *serve_args: str, workers: int = 1, database_url: str | None = None
) -> SignedFeed:
    feed = start_signing_feed(
        tmp / "feed",
        *pki_feed_args(pki),
        *serve_args,
        env=pki_feed_env(pki),
        users=USERS,
        workers=workers,
        database_url=database_url,
    )
    _register(feed, "alice", pki, "author", tmp)
    _register(feed, "bob", pki, "revoked-signer", tmp)
    return SignedFeed(pki, feed)


def publish_signed(sf: SignedFeed, package_id: str, user: str, cert: str, version: str = "1.0.0") -> datetime:
    """Push a package author-signed with ``cert``; returns the signing timestamp (genTime) of the served bytes."""
    r = sf.feed.push(sf.pki.sign(make_package(package_id, version), cert), key=user)
    assert r.status_code == 201, r.text
    primary = PrimarySignature.load(PackageArchive.from_bytes(download(sf.feed, package_id, version)).read_signature())
    assert primary.type is SignatureType.AUTHOR and len(timestamps_of(primary)) == 1
    return timestamps_of(primary)[0].gen_time


def revalidate(feed: Feed) -> dict[str, Any]:
    rc, out = admin_result(feed.data_dir, feed.database_url, "revalidate", "--json")
    assert rc == 0, out
    return dict(json.loads(out))


def audit_rows(feed: Feed, target: str) -> list[AuditRecord]:
    db = Database(feed.database_url or f"sqlite:///{feed.data_dir / 'feed.db'}")
    try:
        with db.read() as session:
            return read_audit(session, target=target)
    finally:
        db.dispose()


def leaf(feed: Feed, package_id: str, version: str, view: str = "registration") -> dict[str, Any]:
    with feed.client() as c:
        r = c.get(f"/v3/{view}/{package_id.lower()}/{version.lower()}.json")
    assert r.status_code == 200, r.text
    return dict(r.json())


def index_entry(feed: Feed, package_id: str, version: str) -> dict[str, Any]:
    with feed.client() as c:
        r = c.get(f"/v3/registration-semver2/{package_id.lower()}/index.json")
    assert r.status_code == 200, r.text
    items = [i for page in r.json()["items"] for i in page["items"]]
    return dict(next(i["catalogEntry"] for i in items if i["catalogEntry"]["version"] == version))


def page(feed: Feed, package_id: str, version: str) -> str:
    with feed.client() as c:
        r = c.get(f"/packages/{package_id}/{version}")
    assert r.status_code == 200, r.text
    return r.text


def signature_rows(html: str) -> dict[str, str]:
    """The web page's signature table rows by kind (their text, tags removed)."""
    rows = re.findall(r'<tr class="signature" data-kind="(\w+)" data-status="(\w+)">(.*?)</tr>', html, re.DOTALL)
    return {
        kind: f"status={status} " + " ".join(html_mod.unescape(re.sub(r"<[^>]+>", " ", body)).split())
        for kind, status, body in rows
    }


def search_hits(feed: Feed, package_id: str) -> int:
    with feed.client() as c:
        return int(c.get("/v3/search", params={"q": f"packageid:{package_id}"}).json()["totalHits"])


def wait_for_certificates_good(feed: Feed, package_id: str, version: str, seconds: float = 30) -> None:
    """Poll the registration leaf until every signature's certificate status is ``good`` (at most ``seconds``);
    the caller asserts what it shows then."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sigs = leaf(feed, package_id, version)["packageSigning"]["signatures"]
        if all(s["certificateStatus"] == "good" for s in sigs):
            return
        time.sleep(0.25)


def wait_until_past(moment: datetime) -> None:
    while datetime.now(UTC) <= moment:
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedFeed]:
    """No background task (``--revalidate-seconds 0``): only `nuseal admin revalidate` rechecks."""
    gen = served_pki(tmp_path_factory.mktemp("pki"))
    pki = next(gen)
    f = open_signed_feed(pki, tmp_path_factory.mktemp("revalidate"), "--revalidate-seconds", "0")
    yield f
    f.stop()
    f.pki.server.stop()  # a test may have restarted it
    gen.close()


# ------------------------------------------------------------------------------------------------ tests
def test_signing_status_of_a_signed_and_an_unsigned_push(sf: SignedFeed) -> None:
    """Web page and registration leaf of an author-signed push (author signature + the feed's repository
    countersignature) and of an unsigned push (the feed's repository primary signature): signer subjects and
    SHA-256 fingerprints, timestamps, status; the certificates' revocation shows "unknown" until revalidation
    asked, then "good" (the leaves are rewritten on the status change)."""
    feed, pki = sf.feed, sf.pki
    stamp = publish_signed(sf, "Rv.Signed", "alice", "author")
    r = feed.push(make_package("Rv.Plain", "2.0.0"), key="carol")
    assert r.status_code == 201, r.text
    fp, repo_fp = fingerprint(pki, "author"), fingerprint(pki, "repository")
    served = PrimarySignature.load(PackageArchive.from_bytes(download(feed, "Rv.Signed", "1.0.0")).read_signature())
    counter = served.repository_countersignature()
    assert counter is not None and timestamps_of(counter)
    repo_stamp = timestamps_of(counter)[0].gen_time

    signing = leaf(feed, "Rv.Signed", "1.0.0")["packageSigning"]
    assert signing["signed"] is True and signing["repositorySigned"] is True and signing["status"] == "valid"
    assert signing["revokedBecause"] is None
    by_type = {s["type"]: s for s in signing["signatures"]}
    assert by_type["author"]["placement"] == "primary"
    assert by_type["author"]["fingerprints"] == {"2.16.840.1.101.3.4.2.1": fp}
    assert by_type["author"]["subject"] == dotnet_name(pki.dev.cert("author").subject)
    assert by_type["author"]["timestamp"] == stamp.astimezone(UTC).isoformat()
    assert by_type["author"]["timestampAuthority"] == dotnet_name(pki.dev.cert("tsa").subject)
    assert by_type["repository"]["placement"] == "countersignature"
    assert by_type["repository"]["fingerprints"] == {"2.16.840.1.101.3.4.2.1": repo_fp}
    assert by_type["repository"]["timestamp"] == repo_stamp.astimezone(UTC).isoformat()
    assert {s["certificateStatus"] for s in signing["signatures"]} == {"unknown"}
    html = page(feed, "Rv.Signed", "1.0.0")
    assert "Signed</span>: author-signed, repository-signed" in html
    rows = signature_rows(html)
    assert fp in rows["author"] and repo_fp in rows["repository"] and "status=valid" in rows["author"]
    assert stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in rows["author"]
    assert repo_stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in rows["repository"]
    assert "not known yet" in rows["author"]

    plain = leaf(feed, "Rv.Plain", "2.0.0")["packageSigning"]
    assert plain["signed"] is False and plain["repositorySigned"] is True and plain["status"] == "valid"
    assert [(s["type"], s["placement"]) for s in plain["signatures"]] == [("repository", "primary")]
    assert plain["signatures"][0]["fingerprints"] == {"2.16.840.1.101.3.4.2.1": repo_fp}
    html = page(feed, "Rv.Plain", "2.0.0")
    assert "Signed</span>: repository-signed" in html
    assert set(signature_rows(html)) == {"repository"}

    with feed.client() as c:
        listing = c.get("/packages", params={"q": "rv."}).text
    blocks = {re.search(r">(Rv\.\w+)</a>", b).group(1): b for b in listing.split('<div class="pkg">')[1:]}  # type: ignore[union-attr]
    assert '<span class="signing">author-signed, repository-signed</span>' in blocks["Rv.Signed"]
    assert '<span class="signing">repository-signed</span>' in blocks["Rv.Plain"]

    summary = revalidate(feed)
    assert summary["packagesRevoked"] == [] and summary["unknown"] == 0
    assert {c["role"] for c in summary["certificates"]} == {"author", "repository", "timestamp"}
    signing = leaf(feed, "Rv.Signed", "1.0.0")["packageSigning"]
    assert {s["certificateStatus"] for s in signing["signatures"]} == {"good"}
    assert leaf(feed, "Rv.Plain", "2.0.0")["packageSigning"]["signatures"][0]["certificateStatus"] == "good"
    rows = signature_rows(page(feed, "Rv.Signed", "1.0.0"))
    assert "valid: the certificate is not revoked" in rows["author"] and "OCSP" in rows["author"]
    assert "valid: the certificate is not revoked" in rows["repository"]


def test_revoked_before_the_timestamp_revokes_and_unlists(sf: SignedFeed) -> None:
    """The main case: alice's certificate is revoked as of one hour before the package's signing timestamp (a key
    compromise dated back); `nuseal admin revalidate` asks OCSP, marks the version revoked and unlisted, audits it
    with the evidence; registration leaf, index, search and web page show it; a second run changes nothing."""
    feed, pki = sf.feed, sf.pki
    stamp = publish_signed(sf, "Rv.Main", "alice", "author")
    fp = fingerprint(pki, "author")
    before = leaf(feed, "Rv.Main", "1.0.0")["packageSigning"]
    assert before["status"] == "valid" and before["signed"] and before["repositorySigned"]
    assert search_hits(feed, "Rv.Main") == 1

    revoked_at = (stamp - timedelta(hours=1)).replace(microsecond=0)
    pki.server.revoke("author", at=revoked_at, reason="key_compromise")
    asked = len(pki.server.requests)
    summary = revalidate(feed)
    ocsp_asked = [p for m, p, s in pki.server.requests[asked:] if p.startswith("/ocsp")]
    assert ocsp_asked, pki.server.requests[asked:]

    assert {"id": "Rv.Main", "version": "1.0.0"} in summary["packagesRevoked"]
    author = next(c for c in summary["certificates"] if c["fingerprint"] == fp)
    assert author["status"] == "revoked" and author["changed"] and author["method"] == "OCSP"
    assert author["revocationTime"] == revoked_at.isoformat() and author["reason"] == "key_compromise"
    assert author["source"] == pki.dev.ocsp_url
    assert summary["statusChanges"] >= 1

    # audit: the certificate's status change and the package's revocation, with the evidence
    cert_rows = [r for r in audit_rows(feed, f"certificate:{fp}") if r.action == "certificate.status-changed"]
    assert [r.details["status"] for r in cert_rows][-1:] == ["revoked"]
    assert [r.details["status"] for r in cert_rows].count("revoked") == 1
    ev = cert_rows[-1].details
    assert ev["status"] == "revoked" and ev["method"] == "OCSP" and ev["responder"] == pki.dev.ocsp_url
    assert ev["revocation_time"] == revoked_at.isoformat() and ev["reason"] == "key_compromise"
    assert ev["role"] == "author" and cert_rows[-1].actor == "feed"
    pkg_rows = [r for r in audit_rows(feed, "package:rv.main/1.0.0") if r.action == "package.revoked"]
    assert len(pkg_rows) == 1
    ev = pkg_rows[0].details
    assert ev["fingerprint"] == fp and ev["revocation_time"] == revoked_at.isoformat()
    assert ev["timestamp"] == stamp.astimezone(UTC).isoformat() and ev["method"] == "OCSP"
    assert ev["responder"] == pki.dev.ocsp_url and ev["reason"] == "key_compromise" and ev["unlisted"] is True
    assert "at or after" in ev["rule"]

    # registration leaf, index entry, search
    doc = leaf(feed, "Rv.Main", "1.0.0")
    signing = doc["packageSigning"]
    assert doc["listed"] is False and signing["status"] == "revoked"
    assert signing["revokedBecause"]["fingerprint"] == fp
    assert signing["revokedBecause"]["time"] == revoked_at.isoformat()
    assert "key_compromise" in signing["revokedBecause"]["detail"]
    by_type = {s["type"]: s for s in signing["signatures"]}
    assert by_type["author"]["status"] == "revoked" and by_type["author"]["certificateStatus"] == "revoked"
    assert by_type["author"]["certificateRevocation"]["time"] == revoked_at.isoformat()
    assert by_type["repository"]["status"] == "valid"
    entry = index_entry(feed, "Rv.Main", "1.0.0")
    assert entry["listed"] is False and entry["packageSigning"]["status"] == "revoked"
    assert leaf(feed, "Rv.Main", "1.0.0", "registration-semver2")["packageSigning"]["status"] == "revoked"
    assert search_hits(feed, "Rv.Main") == 0

    # web page
    html = page(feed, "Rv.Main", "1.0.0")
    assert 'class="revoked">Revoked</span>' in html and "(unlisted)" in html
    rows = signature_rows(html)
    assert "status=revoked" in rows["author"] and fp in rows["author"]
    assert revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC") in rows["author"]
    assert "key_compromise" in rows["author"]
    assert "REVOKED: author-signed, repository-signed" in html

    # second run: nothing changes, no new audit rows, the documents stay as they are
    documents = {k: v for k, v in feed.snapshot().items() if "/rv.main/" in k}
    audit_before = audit_rows(feed, f"certificate:{fp}") + audit_rows(feed, "package:rv.main/1.0.0")
    again = revalidate(feed)
    assert again["statusChanges"] == 0 and again["packagesRevoked"] == []
    assert audit_rows(feed, f"certificate:{fp}") + audit_rows(feed, "package:rv.main/1.0.0") == audit_before
    assert {k: v for k, v in feed.snapshot().items() if "/rv.main/" in k} == documents


def test_revoked_after_the_timestamp_keeps_the_package_valid(sf: SignedFeed) -> None:
    """bob's certificate is revoked one second after the package's timestamp: the signature predates the
    revocation, so the version stays valid and listed; only the certificate's status is recorded (and shown)."""
    feed, pki = sf.feed, sf.pki
    stamp = publish_signed(sf, "Rv.Later", "bob", "revoked-signer")
    fp = fingerprint(pki, "revoked-signer")
    revoked_at = stamp.replace(microsecond=0) + timedelta(seconds=2)
    wait_until_past(revoked_at + timedelta(seconds=1))
    pki.server.revoke("revoked-signer", at=revoked_at, reason="superseded")

    summary = revalidate(feed)
    assert {"id": "Rv.Later", "version": "1.0.0"} not in summary["packagesRevoked"]
    assert summary["signaturesKept"] >= 1
    check = next(c for c in summary["certificates"] if c["fingerprint"] == fp)
    assert check["status"] == "revoked" and check["changed"] and check["reason"] == "superseded"
    assert [r.action for r in audit_rows(feed, f"certificate:{fp}")].count("certificate.status-changed") == 1
    assert [r.action for r in audit_rows(feed, "package:rv.later/1.0.0")].count("package.revoked") == 0

    doc = leaf(feed, "Rv.Later", "1.0.0")
    assert doc["listed"] is True and doc["packageSigning"]["status"] == "valid"
    assert doc["packageSigning"]["revokedBecause"] is None
    author = next(s for s in doc["packageSigning"]["signatures"] if s["type"] == "author")
    assert author["status"] == "valid" and author["certificateStatus"] == "revoked"
    assert author["certificateRevocation"]["time"] == revoked_at.isoformat()
    assert search_hits(feed, "Rv.Later") == 1
    rows = signature_rows(page(feed, "Rv.Later", "1.0.0"))
    assert "status=valid" in rows["author"] and "after this signature's timestamp" in rows["author"]

    again = revalidate(feed)
    assert again["statusChanges"] == 0 and again["packagesRevoked"] == []
    assert [r.action for r in audit_rows(feed, f"certificate:{fp}")].count("certificate.status-changed") == 1


def test_unreachable_responders_change_nothing(sf: SignedFeed) -> None:
    """With the responders down every answer is unknown: recorded as the status detail (shown on the web page),
    not an error, no status change, no audit row; the stored statuses stay."""
    feed, pki = sf.feed, sf.pki
    r = feed.push(make_package("Rv.Down", "1.0.0"), key="carol")
    assert r.status_code == 201, r.text
    repo_fp = fingerprint(pki, "repository")
    before = leaf(feed, "Rv.Down", "1.0.0")
    audit_before = audit_rows(feed, f"certificate:{repo_fp}")
    pki.server.stop()  # responders down: every answer unknown
    try:
        summary = revalidate(feed)
        rc, text = admin_result(feed.data_dir, feed.database_url, "revalidate")
    finally:
        sf.pki.server = _restart(pki.dev, pki.server)
    n = summary["certificatesChecked"]
    assert n >= 2  # the repository and the timestamping certificate at least
    assert all(c["status"] == "unknown" and not c["changed"] and c["method"] is None for c in summary["certificates"])
    check = next(c for c in summary["certificates"] if c["fingerprint"] == repo_fp)
    assert "could not be reached" in check["detail"], check
    assert summary["statusChanges"] == 0 and summary["packagesRevoked"] == [] and summary["unknown"] == n
    assert rc == 0, text
    assert f"checked {n} certificate(s), 0 status change(s), 0 package(s) revoked ({n} with unknown" in text, text
    assert f"unknown  same    repository {repo_fp}" in text, text
    assert leaf(feed, "Rv.Down", "1.0.0") == before  # stored statuses stay; documents untouched
    assert audit_rows(feed, f"certificate:{repo_fp}") == audit_before
    assert "could not be reached" in signature_rows(page(feed, "Rv.Down", "1.0.0"))["repository"]


class _OcspDown(DevPkiServer):
    """The dev responders with OCSP answering HTTP 503 (the CRLs still served): a real server, made to fail."""

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        if path.startswith("/ocsp"):
            return 503, b"OCSP responder down", "text/plain"
        return super()._route(method, path, body)


def _restart(dev: DevPki, old: DevPkiServer, cls: type[DevPkiServer] = DevPkiServer) -> DevPkiServer:
    """Stop ``old`` and serve ``dev`` again on its port with ``cls``, carrying the revocations over."""
    old.stop()
    new = cls(dev)
    new.revoked.update(old.revoked)
    new.reasons.update(old.reasons)
    return new


def test_ocsp_down_falls_back_to_the_crl(tmp_path: Path) -> None:
    """With the OCSP responder failing, revalidation takes the CRL's word: the package is revoked, the evidence
    names the CRL URL. The feed's repository certificate revoked too: recorded and audited (role repository), its
    signatures stay valid (the feed does not re-sign)."""
    gen = served_pki(tmp_path / "pki")
    pki = next(gen)
    sf = open_signed_feed(pki, tmp_path, "--revalidate-seconds", "0")
    try:
        stamp = publish_signed(sf, "Rv.Crl", "alice", "author")
        revoked_at = (stamp - timedelta(minutes=10)).replace(microsecond=0)
        pki.server = _restart(pki.dev, pki.server, _OcspDown)
        pki.server.revoke("author", at=revoked_at, reason="key_compromise")
        pki.server.revoke("repository", at=datetime.now(UTC).replace(microsecond=0), reason="cessation_of_operation")
        summary = revalidate(sf.feed)
        asked = [(p, s) for _m, p, s in pki.server.requests]
        assert any(p.startswith("/ocsp") and s == 503 for p, s in asked), asked
        assert any(p == "/crl/intermediate.crl" and s == 200 for p, s in asked), asked

        crl_url = pki.dev.crl_url_for("intermediate")
        assert {"id": "Rv.Crl", "version": "1.0.0"} in summary["packagesRevoked"]
        author = next(c for c in summary["certificates"] if c["fingerprint"] == fingerprint(pki, "author"))
        assert author["method"] == "CRL" and author["source"] == crl_url and author["reason"] == "key_compromise"
        ev = next(r for r in audit_rows(sf.feed, "package:rv.crl/1.0.0") if r.action == "package.revoked").details
        assert ev["method"] == "CRL" and ev["responder"] == crl_url
        assert ev["revocation_time"] == revoked_at.isoformat()

        repo_fp = fingerprint(pki, "repository")
        repo = next(c for c in summary["certificates"] if c["fingerprint"] == repo_fp)
        assert repo["role"] == "repository" and repo["status"] == "revoked" and repo["method"] == "CRL"
        rows = [r for r in audit_rows(sf.feed, f"certificate:{repo_fp}") if r.action == "certificate.status-changed"]
        assert len(rows) == 1 and rows[0].details["role"] == "repository"
        assert rows[0].details["reason"] == "cessation_of_operation"
        sigs = {s["type"]: s for s in leaf(sf.feed, "Rv.Crl", "1.0.0")["packageSigning"]["signatures"]}
        assert sigs["repository"]["status"] == "valid" and sigs["repository"]["certificateStatus"] == "revoked"

        # the timestamping certificate was found in the package and checked (good)
        tsa = next(c for c in summary["certificates"] if c["fingerprint"] == fingerprint(pki, "tsa"))
        assert tsa["role"] == "timestamp" and tsa["status"] == "good" and tsa["method"] == "CRL"
        assert summary["timestampCertificatesFound"] == 1
        assert revalidate(sf.feed)["statusChanges"] == 0
    finally:
        sf.stop()
        pki.server.stop()
        gen.close()


def test_revoked_intermediate_revokes_every_signature_under_it(tmp_path: Path) -> None:
    """The intermediate CA revoked (in the root's OCSP answers and CRL) after the package was signed: the chain has
    the Revoked flag, so the signature is revoked whatever its timestamp (nuget.org's SignatureDeciderFactory);
    the evidence names the revoked CA, the revocation time of the signer itself is unknown."""
    gen = served_pki(tmp_path / "pki")
    pki = next(gen)
    sf = open_signed_feed(pki, tmp_path, "--revalidate-seconds", "0")
    try:
        stamp = publish_signed(sf, "Rv.Ca", "alice", "author")
        wait_until_past(stamp + timedelta(seconds=1))
        pki.server.revoke("intermediate", at=datetime.now(UTC).replace(microsecond=0), reason="ca_compromise")
        summary = revalidate(sf.feed)
        ca = dotnet_name(pki.dev.cert("intermediate").subject)
        assert {"id": "Rv.Ca", "version": "1.0.0"} in summary["packagesRevoked"]
        author = next(c for c in summary["certificates"] if c["fingerprint"] == fingerprint(pki, "author"))
        assert author["status"] == "revoked" and author["revocationTime"] is None and author["method"] == "OCSP"
        assert author["reason"] == "ca_compromise" and ca in author["detail"]
        ev = next(r for r in audit_rows(sf.feed, "package:rv.ca/1.0.0") if r.action == "package.revoked").details
        assert ev["revocation_time"] is None and ev["timestamp"] == stamp.astimezone(UTC).isoformat()
        assert "issuing CA" in ev["rule"] and ca in ev["answer"]
        change = next(
            r
            for r in audit_rows(sf.feed, f"certificate:{fingerprint(pki, 'author')}")
            if r.action == "certificate.status-changed"
        )
        assert change.details["revoked_issuer"] == ca and change.details["status"] == "revoked"
        signing = leaf(sf.feed, "Rv.Ca", "1.0.0")["packageSigning"]
        assert signing["status"] == "revoked" and signing["revokedBecause"]["time"] is None
        assert ca in signing["revokedBecause"]["detail"]
        assert "at a time not known" in signature_rows(page(sf.feed, "Rv.Ca", "1.0.0"))["author"]
        again = revalidate(sf.feed)
        assert again["statusChanges"] == 0 and again["packagesRevoked"] == []
    finally:
        sf.stop()
        pki.server.stop()
        gen.close()


def test_background_task_picks_up_a_revocation(tmp_path: Path) -> None:
    """`nuseal serve --revalidate-seconds 1` with two workers: the task asks by itself (unknown -> good), then
    finds a revocation by itself, once (one package.revoked row, one change to revoked) although both workers'
    tasks keep running."""
    gen = served_pki(tmp_path / "pki")
    pki = next(gen)
    sf = open_signed_feed(pki, tmp_path, "--revalidate-seconds", "1", workers=2)
    feed = sf.feed
    try:
        stamp = publish_signed(sf, "Rv.Bg", "alice", "author")
        r = feed.push(make_package("Rv.Other", "2.0.0"), key="carol")
        assert r.status_code == 201, r.text
        fp = fingerprint(pki, "author")
        # the certificates become "good" once the task has asked (leaves rewritten on the status change)
        wait_for_certificates_good(feed, "Rv.Bg", "1.0.0")
        assert {s["certificateStatus"] for s in leaf(feed, "Rv.Bg", "1.0.0")["packageSigning"]["signatures"]} == {
            "good"
        }

        pki.server.revoke("author", at=(stamp - timedelta(hours=2)).replace(microsecond=0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and leaf(feed, "Rv.Bg", "1.0.0")["listed"]:
            time.sleep(0.5)
        doc = leaf(feed, "Rv.Bg", "1.0.0")
        assert doc["listed"] is False and doc["packageSigning"]["status"] == "revoked"
        time.sleep(3)  # more runs by both workers: still one row each
        assert [r.action for r in audit_rows(feed, "package:rv.bg/1.0.0")].count("package.revoked") == 1
        changes = [r for r in audit_rows(feed, f"certificate:{fp}") if r.action == "certificate.status-changed"]
        assert [c.details["status"] for c in changes] == ["good", "revoked"]
        assert leaf(feed, "Rv.Other", "2.0.0")["listed"] is True
    finally:
        feed.stop()
        pki.server.stop()
        gen.close()


def test_a_push_has_its_new_certificates_asked_in_seconds(tmp_path: Path) -> None:
    """With the default hourly period, a push wakes the background task for a run over the certificates never
    asked: within seconds the author and repository certificates are "good" on the leaf and the web page, with
    one status-change audit row each; a second push signed with the same certificate asks nothing new."""
    gen = served_pki(tmp_path / "pki")
    pki = next(gen)
    sf = open_signed_feed(pki, tmp_path, "--revalidate-seconds", "3600")
    feed = sf.feed
    try:
        publish_signed(sf, "Rv.Soon", "alice", "author")
        wait_for_certificates_good(feed, "Rv.Soon", "1.0.0")
        sigs = leaf(feed, "Rv.Soon", "1.0.0")["packageSigning"]["signatures"]
        assert {(s["type"], s["certificateStatus"]) for s in sigs} == {("author", "good"), ("repository", "good")}
        rows = signature_rows(page(feed, "Rv.Soon", "1.0.0"))
        assert "valid: the certificate is not revoked; checked" in rows["author"], rows["author"]
        fp = fingerprint(pki, "author")
        changes = [r for r in audit_rows(feed, f"certificate:{fp}") if r.action == "certificate.status-changed"]
        assert [(c.details["status"], c.details["method"]) for c in changes] == [("good", "OCSP")]

        publish_signed(sf, "Rv.Soon", "alice", "author", version="1.0.1")
        time.sleep(4)  # past the task's delay after a push, and its run
        again = [r for r in audit_rows(feed, f"certificate:{fp}") if r.action == "certificate.status-changed"]
        assert again == changes
        sigs = leaf(feed, "Rv.Soon", "1.0.1")["packageSigning"]["signatures"]
        assert {s["certificateStatus"] for s in sigs} == {"good"}  # known from the first push's check
    finally:
        feed.stop()
        pki.server.stop()
        gen.close()


def test_revalidate_refuses_a_feed_without_signing(tmp_path: Path) -> None:
    from .conftest import start_feed  # noqa: PLC0415

    feed = start_feed(tmp_path / "plain")
    try:
        rc, out = admin_result(feed.data_dir, None, "revalidate")
        assert rc != 0 and "signing" in out, out
    finally:
        feed.stop()


def test_lease_lets_one_holder_run_at_a_time(tmp_path: Path) -> None:
    """The background task's lease on SQLite: a second owner is refused while the first holds it, takes it once
    it expired or was released."""
    config = FeedConfig(data_dir=tmp_path / "lease", base_url="http://127.0.0.1:1")
    service = FeedService.open(config)
    service.setup()
    try:
        t0 = datetime.now(UTC)
        assert try_acquire_lease(service, "a", seconds=60, now=t0)
        assert not try_acquire_lease(service, "b", seconds=60, now=t0 + timedelta(seconds=59))
        assert try_acquire_lease(service, "a", seconds=60, now=t0 + timedelta(seconds=30))  # renewal
        assert not try_acquire_lease(service, "b", seconds=60, now=t0 + timedelta(seconds=89))
        assert try_acquire_lease(service, "b", seconds=60, now=t0 + timedelta(seconds=91))  # expired
        release_lease(service, "a")  # not the holder: nothing happens
        assert not try_acquire_lease(service, "a", seconds=60, now=t0 + timedelta(seconds=92))
        release_lease(service, "b")
        assert try_acquire_lease(service, "a", seconds=60, now=t0 + timedelta(seconds=93))
        with service.db.read() as session:
            from nuseal.feed.store.models import FeedSetting  # noqa: PLC0415

            row = session.get(FeedSetting, LEASE_SETTING)
            assert row is not None and json.loads(row.value)["owner"] == "a"
    finally:
        service.db.dispose()


@pytest.mark.postgres
def test_revalidation_and_lease_on_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    """The same revocation flow and the lease on PostgreSQL (row locks instead of SQLite's writer lock)."""
    url = pg_cluster.new_database()
    gen = served_pki(tmp_path / "pki")
    pki = next(gen)
    sf = open_signed_feed(pki, tmp_path, "--revalidate-seconds", "0", database_url=url)
    try:
        stamp = publish_signed(sf, "Rv.Pg", "alice", "author")
        pki.server.revoke("author", at=(stamp - timedelta(hours=1)).replace(microsecond=0))
        summary = revalidate(sf.feed)
        assert summary["packagesRevoked"] == [{"id": "Rv.Pg", "version": "1.0.0"}]
        doc = leaf(sf.feed, "Rv.Pg", "1.0.0")
        assert doc["listed"] is False and doc["packageSigning"]["status"] == "revoked"
        assert [r.action for r in audit_rows(sf.feed, "package:rv.pg/1.0.0")].count("package.revoked") == 1
        again = revalidate(sf.feed)
        assert again["statusChanges"] == 0 and again["packagesRevoked"] == []

        service = FeedService.open(
            FeedConfig(data_dir=tmp_path / "other", base_url="http://127.0.0.1:1", database_url=url)
        )
        try:
            t0 = datetime.now(UTC)
            assert try_acquire_lease(service, "a", seconds=60, now=t0)
            assert not try_acquire_lease(service, "b", seconds=60, now=t0 + timedelta(seconds=30))
            assert try_acquire_lease(service, "b", seconds=60, now=t0 + timedelta(seconds=61))
        finally:
            service.db.dispose()
    finally:
        sf.stop()
        pki.server.stop()
        gen.close()
