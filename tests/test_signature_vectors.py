"""PrimarySignature / RepositoryCountersignature / Timestamp on the 12 real nuget.org packages.

Expected values come from independent sources: the table in ``vectors/README.md`` (type, signer,
countersignature, TSA, timestamp date), nuseal.package's hash of the package, asn1crypto's own decoding
of the same DER, hashlib, and the repository certificate fingerprints nuget.org publishes
(NUGET-SIGNING.md §4.5/§4.6).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, RepositoryCountersignature, SignatureType
from nuseal.timestamp import Timestamp, timestamp_errors_of, timestamps_of

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTOR_DIR = SHARED / "vectors" / "nuget.org"
VECTORS = sorted(VECTOR_DIR.glob("*.nupkg"))

# nuget.org's repository signing certificates (RepositorySignatures/5.0.0; NUGET-SIGNING.md §4.5).
NUGET_ORG_REPOSITORY_CERTS = {
    "0E5F38F57DC1BCC806D8494F4F90FBCEDD988B46760709CBEEC6F4219AA6157D",
    "5A2901D6ADA3D18260B9C6DFE2133C95D74B9EEF6AE0E5DC334C8454D1477DF4",
    "1F4B311D9ACC115C8DC8018B5A49E00FCE6DA8E2855F9F014CA6F34570BC482D",
}
COUNTERSIGNATURE_OID = "1.2.840.113549.1.9.6"
TIMESTAMP_OID = "1.2.840.113549.1.9.16.2.14"


@dataclass(frozen=True)
class Row:
    primary: str
    signer: str
    countersigned: str
    tsa: str
    timestamped: date


def _readme_table() -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for line in (SHARED / "vectors" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].endswith(".nupkg"):
            rows[cells[0]] = Row(cells[1], cells[2], cells[3], cells[4], date.fromisoformat(cells[5]))
    return rows


README = _readme_table()


def _cn(cert: x509.Certificate | None) -> str:
    assert cert is not None
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _load(path: Path) -> tuple[PackageArchive, bytes, PrimarySignature]:
    archive = PackageArchive.from_path(path)
    der = archive.read_signature()
    return archive, der, PrimarySignature.load(der)


def test_readme_table_covers_every_vector() -> None:
    assert sorted(README) == [p.name for p in VECTORS]
    assert len(VECTORS) == 12


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_primary_signature_matches_readme(path: Path) -> None:
    row = README[path.name]
    archive, der, sig = _load(path)
    assert sig.type is SignatureType(row.primary.capitalize())
    assert _cn(sig.signer_certificate) == row.signer
    assert sig.content.hash_algorithm is HashAlgorithm.SHA256
    assert sig.content.hash_value == archive.package_hash(HashAlgorithm.SHA256)
    assert sig.der == der
    assert sig.verify_signature_value()
    assert timestamp_errors_of(sig) == ()
    assert len(timestamps_of(sig)) == 1
    stamp = timestamps_of(sig)[0]
    assert stamp.gen_time.date() == row.timestamped
    assert _cn(stamp.signer_certificate) == row.tsa
    assert stamp.check(sig.signature_value, now=stamp.upper_limit, signature_name=sig.friendly_name) == []


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_repository_signature_attributes(path: Path) -> None:
    row = README[path.name]
    _, _, sig = _load(path)
    countersignature = sig.repository_countersignature()
    assert (countersignature is not None) == row.countersigned.startswith("yes")
    assert sig.has_repository_countersignature() == (countersignature is not None)
    repository: PrimarySignature | RepositoryCountersignature | None = (
        sig if sig.type is SignatureType.REPOSITORY else countersignature
    )
    if sig.type is SignatureType.AUTHOR:
        assert sig.v3_service_index_url is None
        assert sig.package_owners is None
    assert repository is not None  # every vector is repository signed one way or the other
    assert repository.v3_service_index_url is not None
    assert repository.package_owners
    assert all(owner.strip() for owner in repository.package_owners)
    fingerprint = repository.signer_certificate.fingerprint(hashes.SHA256()).hex().upper()  # type: ignore[union-attr]
    if "uipath" in row.countersigned.lower():
        assert repository.v3_service_index_url == "https://gallery.uipath.com/api/v3/index.json"
        assert fingerprint not in NUGET_ORG_REPOSITORY_CERTS
    else:
        assert repository.v3_service_index_url == "https://api.nuget.org/v3/index.json"
        assert urlsplit(repository.v3_service_index_url).hostname == "api.nuget.org"
        assert fingerprint in NUGET_ORG_REPOSITORY_CERTS


COUNTERSIGNED = [p for p in VECTORS if README[p.name].countersigned.startswith("yes")]


@pytest.mark.parametrize("path", COUNTERSIGNED, ids=lambda p: p.name)
def test_countersignature_is_intact_and_timestamped(path: Path) -> None:
    _, _, sig = _load(path)
    counter = sig.repository_countersignature()
    assert counter is not None
    assert counter.primary is sig
    assert counter.type is SignatureType.REPOSITORY
    assert counter.issues == ()
    assert counter.verify_signature_value()
    assert counter.nuget_signature_value == counter.signature_value
    assert counter.signing_time is not None
    assert timestamp_errors_of(counter) == ()
    assert len(timestamps_of(counter)) == 1
    stamp = timestamps_of(counter)[0]
    # The countersignature was applied after the author signature was timestamped.
    assert stamp.gen_time > timestamps_of(sig)[0].gen_time
    assert stamp.check(counter.signature_value, now=stamp.upper_limit, signature_name=counter.friendly_name) == []
    # Its message-digest is H(primary signature value) (RFC 5652 §11.4), computed here with hashlib.
    assert counter.digest_algorithm_oid == HashAlgorithm.SHA256.oid
    assert stamp.message_imprint == hashlib.sha256(counter.signature_value).digest()


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_model_agrees_with_asn1crypto(path: Path) -> None:
    _, der, sig = _load(path)
    signed_data = cms.ContentInfo.load(der)["content"]
    signer = signed_data["signer_infos"][0]
    assert sig.signature_value == signer["signature"].native
    assert sig.digest_algorithm_oid == signer["digest_algorithm"]["algorithm"].dotted
    assert sig.signature_algorithm_oid == signer["signature_algorithm"]["algorithm"].dotted
    assert sig.signed_attribute_oids == tuple(a["type"].dotted for a in signer["signed_attrs"])
    assert sig.unsigned_attribute_oids == tuple(a["type"].dotted for a in signer["unsigned_attrs"])
    signing_time = next(a for a in signer["signed_attrs"] if a["type"].native == "signing_time")
    assert sig.signing_time == signing_time["values"][0].native
    certs = [c.chosen.dump() for c in signed_data["certificates"]]
    assert [c.public_bytes(encoding=Encoding.DER) for c in sig.certificates] == certs
    assert sig.signer_id_type == "SubjectKeyIdentifier"
    assert sig.friendly_name == f"{sig.type.value.lower()} primary signature"
    stamp = timestamps_of(sig)[0]
    token = next(a for a in signer["unsigned_attrs"] if a["type"].dotted == TIMESTAMP_OID)["values"][0]
    tst = token["content"]["encap_content_info"]["content"].parsed
    assert stamp.token_der == token.dump()
    assert stamp.serial_number == tst["serial_number"].native
    assert stamp.policy_oid == tst["policy"].dotted
    assert stamp.nonce == tst["nonce"].native
    assert stamp.imprint_algorithm_oid == HashAlgorithm.SHA256.oid
    assert stamp.message_imprint == hashlib.sha256(sig.signature_value).digest()
    assert [c.public_bytes(encoding=Encoding.DER) for c in stamp.certificates] == [
        c.chosen.dump() for c in token["content"]["certificates"]
    ]
    if COUNTERSIGNATURE_OID in sig.unsigned_attribute_oids:
        counter_attr = next(a for a in signer["unsigned_attrs"] if a["type"].dotted == COUNTERSIGNATURE_OID)
        counter_info = counter_attr["values"][0]
        counter = sig.repository_countersignature()
        assert counter is not None
        assert counter.signature_value == counter_info["signature"].native
        assert counter.signed_attribute_oids == tuple(a["type"].dotted for a in counter_info["signed_attrs"])


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_accuracy_and_limits_follow_nuget(path: Path) -> None:
    _, _der, sig = _load(path)
    stamps: list[Timestamp] = list(timestamps_of(sig))
    counter = sig.repository_countersignature()
    if counter is not None:
        stamps.extend(timestamps_of(counter))
    for stamp in stamps:
        tst = cms.ContentInfo.load(stamp.token_der)["content"]["encap_content_info"]["content"].parsed
        accuracy = tst["accuracy"].native
        if accuracy is None:
            expected_us = 1_000_000 if stamp.policy_oid == "0.4.0.2023.1.1" else 0
        else:
            expected_us = (
                (accuracy.get("seconds") or 0) * 1_000_000
                + (accuracy.get("millis") or 0) * 1000
                + (accuracy.get("micros") or 0)
            )
        assert stamp.accuracy.total_seconds() * 1_000_000 == expected_us
        assert stamp.lower_limit == stamp.gen_time - stamp.accuracy
        assert stamp.upper_limit == stamp.gen_time + stamp.accuracy
        assert stamp.gen_time == tst["gen_time"].native
        assert stamp.gen_time.utcoffset() is not None


def test_duplicate_and_stale_certificates_are_kept() -> None:
    # Newtonsoft.Json 12.0.3 still carries nuget.org's old repository certificate next to UiPath's chain.
    _, der, sig = _load(VECTOR_DIR / "Newtonsoft.Json.12.0.3.nupkg")
    fingerprints = [c.fingerprint(hashes.SHA256()).hex().upper() for c in sig.certificates]
    assert len(fingerprints) == len(cms.ContentInfo.load(der)["content"]["certificates"])
    assert NUGET_ORG_REPOSITORY_CERTS & set(fingerprints)
    counter = sig.repository_countersignature()
    assert counter is not None
    assert counter.signer_certificate is not None
    assert counter.signer_certificate.fingerprint(hashes.SHA256()).hex().upper() not in NUGET_ORG_REPOSITORY_CERTS
