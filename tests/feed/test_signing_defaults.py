"""`nuseal serve` with no signing option at all (what `make serve` runs): the dev PKI is made in DATA/devpki on
the first start, its TSA/OCSP/CRL served by the feed process, every accepted package repository-signed with
its repository certificate; the same PKI is found again after a restart. `--no-signing` stores packages as
pushed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.main import main
from nuseal.devpki import DevPki
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of

from .conftest import Feed, make_package, start_feed


def _served(feed: Feed, package_id: str, version: str) -> bytes:
    low = package_id.lower()
    with feed.client() as c:
        r = c.get(f"/v3/flatcontainer/{low}/{version}/{low}.{version}.nupkg")
    assert r.status_code == 200, r.text
    return r.content


def _start_default(data: Path, users: tuple[str, ...] = ("alice",)) -> Feed:
    # start_feed(signing=True) passes --signing and nothing else: the defaults decide key, TSA and trust
    return start_feed(data, users=users, signing=True)


def test_embedded_defaults_make_a_dev_pki_and_repository_sign(tmp_path: Path) -> None:
    data = tmp_path / "feed"
    feed = _start_default(data)
    try:
        dev = DevPki.load(data / "devpki")
        with httpx.Client(timeout=10) as c:  # the feed process serves the dev PKI's responders
            assert c.get(dev.crl_url).status_code == 200
        unsigned = make_package("Defaults.Lib", "1.0.0")
        pushed = feed.push(unsigned)
        assert pushed.status_code == 201, pushed.text
        served = _served(feed, "Defaults.Lib", "1.0.0")
    finally:
        feed.stop()
    archive = PackageArchive.from_bytes(served)
    assert archive.without_signature() == unsigned
    primary = PrimarySignature.load(archive.read_signature())
    assert primary.type is SignatureType.REPOSITORY
    assert primary.signer_certificate == dev.cert("repository")
    assert timestamps_of(primary) and timestamps_of(primary)[0].signer_certificate == dev.cert("tsa")
    package = tmp_path / "Defaults.Lib.1.0.0.nupkg"
    package.write_bytes(served)
    root = str(dev.root_pem_path)
    args = ["verify", "--all", str(package), "--code-signing-roots", root, "--timestamping-roots", root]
    assert main([*args, "--revocation-mode", "offline"]) == 0

    # a restart on the same data keeps the same PKI (same repository certificate, same responders' port)
    again = _start_default(data, users=())
    try:
        assert DevPki.load(data / "devpki").cert("repository") == dev.cert("repository")
        pushed = again.push(make_package("Defaults.Lib", "1.0.1"), key=feed.keys["alice"])
        assert pushed.status_code == 201, pushed.text
        served_again = _served(again, "Defaults.Lib", "1.0.1")
        second = PrimarySignature.load(PackageArchive.from_bytes(served_again).read_signature())
        assert second.signer_certificate == dev.cert("repository")
        with again.client() as c:
            index = c.get("/v3/repository-signatures/index.json")
        assert index.status_code == 200
        listed = json.loads(index.content)["signingCertificates"]
        repository_der = dev.cert("repository").public_bytes(Encoding.DER)
        fingerprints = [c["fingerprints"]["2.16.840.1.101.3.4.2.1"] for c in listed]
        assert fingerprints == [hashlib.sha256(repository_der).hexdigest()]
    finally:
        again.stop()


def test_no_signing_stores_packages_as_pushed(tmp_path: Path) -> None:
    feed = start_feed(tmp_path / "feed", users=("alice",))  # --no-signing
    try:
        unsigned = make_package("Plain.Lib", "1.0.0")
        assert feed.push(unsigned).status_code == 201
        assert _served(feed, "Plain.Lib", "1.0.0") == unsigned
        assert not (tmp_path / "feed" / "devpki").exists()
    finally:
        feed.stop()
