"""nuseal and NuGet sign each other's packages: repository countersignatures over the other's author
signatures, every hash algorithm for repository signatures and timestamps, and every output checked by
tools other than nuseal's verifier (openssl, a from-spec hash, NuGet's verifier)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signing import repository_sign_package, sign_package

from .conftest import (
    REPO_URL,
    TIMESTAMP_TOKEN_OID,
    Pki,
    independent_checks,
    oracle_sign,
    oracle_verify,
    signed_data,
    unsigned_attribute,
    unsigned_package,
)


@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_repository_signatures_per_hash_algorithm(pki: Pki, algorithm: HashAlgorithm, tmp_path: Path) -> None:
    unsigned = unsigned_package(f"Repo.{algorithm.nuget_name}")
    now = datetime.now(UTC)
    primary = repository_sign_package(unsigned, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                      owners=["alice", "Bob"], timestamper_url=pki.dev.tsa_url, now=now,
                                      hash_algorithm=algorithm, timestamp_hash_algorithm=algorithm,
                                      trust=pki.strict_trust()).data
    author = sign_package(unsigned, pki.signer(), timestamper_url=pki.dev.tsa_url, now=now, hash_algorithm=algorithm,
                          timestamp_hash_algorithm=algorithm, trust=pki.strict_trust()).data
    countersigned = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                            owners=["alice"], timestamper_url=pki.dev.tsa_url, now=now,
                                            hash_algorithm=algorithm, timestamp_hash_algorithm=algorithm,
                                            trust=pki.strict_trust()).data
    for package in (primary, countersigned):
        result = pki.verify(package)
        assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
        independent_checks(pki, package, unsigned, tmp_path)
    # a countersignature changes nothing before the signature entry, nor the author signer info
    cd_offset = PackageArchive.from_bytes(author).signature_record().local_header_offset
    assert countersigned[:cd_offset] == author[:cd_offset]
    before, after = signed_data(author)["signer_infos"][0], signed_data(countersigned)["signer_infos"][0]
    for field in ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature"):
        assert before[field].dump() == after[field].dump()
    assert unsigned_attribute(before, TIMESTAMP_TOKEN_OID)[0].dump() == unsigned_attribute(
        after, TIMESTAMP_TOKEN_OID)[0].dump()


@pytest.mark.oracle
@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_nuget_accepts_nuseal_repository_signatures(pki: Pki, algorithm: HashAlgorithm) -> None:
    now = datetime.now(UTC)
    unsigned = unsigned_package(f"Repo.{algorithm.nuget_name}")
    packages = {
        "repository primary": repository_sign_package(
            unsigned, pki.signer("repository"), v3_service_index_url=REPO_URL, owners=["alice"],
            timestamper_url=pki.dev.tsa_url, now=now, hash_algorithm=algorithm, timestamp_hash_algorithm=algorithm,
            trust=pki.strict_trust()).data,
        "repository primary, no timestamp": repository_sign_package(
            unsigned, pki.signer("repository"), v3_service_index_url=REPO_URL, owners=None, timestamper_url=None,
            now=now, hash_algorithm=algorithm, trust=pki.strict_trust()).data,
    }
    author = sign_package(unsigned, pki.signer(), timestamper_url=pki.dev.tsa_url, now=now, hash_algorithm=algorithm,
                          timestamp_hash_algorithm=algorithm, trust=pki.strict_trust()).data
    packages["author + countersignature"] = repository_sign_package(
        author, pki.signer("repository"), v3_service_index_url=REPO_URL, owners=["alice", "bob"],
        timestamper_url=pki.dev.tsa_url, now=now, hash_algorithm=algorithm, timestamp_hash_algorithm=algorithm,
        trust=pki.strict_trust()).data
    for name, data in packages.items():
        report = oracle_verify(pki, data)
        assert report.fatal is None, (name, report.fatal)
        ours = pki.verify(data)
        for policy, verdict in report.verdicts.items():
            assert verdict.is_valid and not verdict.error_codes, (name, policy, verdict.codes)
            if "no timestamp" not in name:
                assert not verdict.warning_codes, (name, policy, verdict.codes)
        verify_warnings = report.policy("verifyCommand").warning_codes
        assert {w.code.value for w in ours.warnings if w.code} == set(verify_warnings), (name, verify_warnings)
        assert report.primary is not None
        assert report.primary.type == ("Author" if "author" in name else "Repository")


@pytest.mark.oracle
def test_nuget_countersigns_what_nuseal_signed(pki: Pki, tmp_path: Path) -> None:
    unsigned = unsigned_package("Cross.One")
    author = sign_package(unsigned, pki.signer(), timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                          trust=pki.strict_trust()).data
    both, report = oracle_sign(pki, author, tmp_path, name="repository", kind="repository")
    assert both is not None, report
    result = pki.verify(both)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert [(s.placement, s.type) for s in result.signatures] == [("primary", "Author"),
                                                                  ("countersignature", "Repository")]
    assert result.signatures[1].package_owners == ("alice", "bob")
    # NuGet kept nuseal's author signer info byte for byte
    assert signed_data(both)["signer_infos"][0]["signature"].native == signed_data(author)["signer_infos"][0][
        "signature"].native
    independent_checks(pki, both, unsigned, tmp_path)


@pytest.mark.oracle
def test_nuseal_countersigns_what_nuget_signed(pki: Pki, tmp_path: Path) -> None:
    unsigned = unsigned_package("Cross.Two")
    author, report = oracle_sign(pki, unsigned, tmp_path)
    assert author is not None, report
    both = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                   owners=["alice"], timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                   trust=pki.strict_trust()).data
    verdicts = oracle_verify(pki, both)
    assert verdicts.fatal is None
    for policy, verdict in verdicts.verdicts.items():
        assert verdict.is_valid and not set(verdict.codes) - {("info", "NU3000")}, (policy, verdict.codes)
    assert verdicts.countersignature is not None
    assert pki.verify(both).valid
    independent_checks(pki, both, unsigned, tmp_path)


@pytest.mark.oracle
@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_nuseal_verifies_nuget_repository_signatures(pki: Pki, tmp_path: Path, algorithm: HashAlgorithm) -> None:
    unsigned = unsigned_package(f"Nuget.{algorithm.nuget_name}")
    signed, report = oracle_sign(pki, unsigned, tmp_path, name="repository", kind="repository",
                                 hash_name=algorithm.nuget_name)
    assert signed is not None, report
    result = pki.verify(signed)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert result.signatures[0].type == "Repository" and result.signatures[0].hash_algorithm == algorithm.nuget_name
    independent_checks(pki, signed, unsigned, tmp_path)
