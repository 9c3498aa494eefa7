"""Verification cases that need our own signer: certificates and structures nuseal refuses to sign with, made
by bypassing the pre-sign checks (what a broken or hostile signer could produce), then judged by nuseal's
verifier and, where NuGet's verifier can judge them (its oracle runs with offline revocation), by NuGet too.

NuGet's client rules (NUGET-SIGNING.md §4.2, §4.3): a revoked signing certificate is an error whatever the
timestamp (NU3012); a timestamp outside the signer's validity is NU3037; an expired signer with a timestamp
inside its validity passes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nuseal.codes import NuCode
from nuseal.devpki import DevPki, serve
from nuseal.errors import SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import create_primary_signature
from nuseal.signing import SigningTrust, repository_sign_package, sign_package
from nuseal.trust import RevocationCache, RevocationMode
from nuseal.verify import RevocationStatus, VerificationPolicy, VerificationResult

from .conftest import (
    REPO_URL,
    CrlOnly,
    Pki,
    countersign_by_hand,
    oracle_verify,
    timestamper_at,
    unsigned_package,
)

ORACLE_POLICY = "verifyCommand"


def forced(pki: Pki, name: str, timestamper: Callable[[bytes], bytes] | None, *,
           at: datetime | None = None) -> bytes:
    """Author-signed with certificate ``name``, none of the pre-sign checks applied."""
    unsigned = unsigned_package()
    when = at or datetime.now(UTC)
    der = create_primary_signature(package_hash=HashAlgorithm.SHA256.digest(unsigned),
                                   hash_algorithm=HashAlgorithm.SHA256, signer=pki.signer(name),
                                   signature_type=SignatureType.AUTHOR, signing_time=when, timestamper=timestamper)
    return append_signature(unsigned, der, when=when)


def codes(result: VerificationResult) -> set[NuCode | None]:
    return {i.code for i in result.errors}


def oracle_error_codes(pki: Pki, data: bytes) -> set[str]:
    report = oracle_verify(pki, data)
    assert report.fatal is None, report.fatal
    return set(report.policy(ORACLE_POLICY).error_codes)


def test_not_yet_valid_signer_is_nu3017(pki: Pki) -> None:
    data = forced(pki, "not-yet-valid-signer", timestamper_at(pki, datetime.now(UTC)))
    result = pki.verify(data)
    assert not result.valid and NuCode.NU3017 in codes(result), [str(i) for i in result.errors]


def test_timestamp_outside_the_signers_validity_is_nu3037(pki: Pki) -> None:
    data = forced(pki, "expired-signer", timestamper_at(pki, datetime.now(UTC)))
    result = pki.verify(data)
    assert not result.valid and codes(result) == {NuCode.NU3037}, [str(i) for i in result.errors]


def test_expired_without_timestamp_is_nu3037(pki: Pki) -> None:
    result = pki.verify(forced(pki, "expired-signer", None))
    assert not result.valid and codes(result) == {NuCode.NU3037}, [str(i) for i in result.errors]


def test_expired_signer_with_a_timestamp_inside_its_validity_passes(tmp_path: Path) -> None:
    dev = DevPki.create(tmp_path / "aged", now=datetime.now(UTC) - timedelta(days=800))
    then = datetime.now(UTC) - timedelta(days=790)
    with serve(dev) as server:
        pki = Pki(dev, server)
        server.clock_offset = then - datetime.now(UTC)  # the TSA answers as it would have 790 days ago
        trust = SigningTrust.from_pem_files(dev.root_pem_path, revocation_mode=RevocationMode.OFFLINE)
        data = sign_package(unsigned_package(), pki.signer(), timestamper_url=dev.tsa_url, now=then,
                            trust=trust).data
        repo = repository_sign_package(data, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                       owners=["alice"], timestamper_url=dev.tsa_url, now=then, trust=trust).data
    assert pki.dev.cert("author").not_valid_after_utc < datetime.now(UTC)  # expired today
    for package in (data, repo):
        result = pki.verify(package)
        assert result.valid and not result.errors, [str(i) for i in result.errors]
        assert result.signatures[0].timestamps[0][0] < pki.dev.cert("author").not_valid_after_utc


@pytest.mark.oracle
def test_nuget_agrees_on_validity_periods(tmp_path: Path, pki: Pki) -> None:
    aged = DevPki.create(tmp_path / "aged", now=datetime.now(UTC) - timedelta(days=800))
    then = datetime.now(UTC) - timedelta(days=790)
    with serve(aged) as server:
        old = Pki(aged, server)
        expired_but_stamped = forced(old, "author", timestamper_at(old, then), at=then)
        assert old.verify(expired_but_stamped).valid
        assert oracle_error_codes(old, expired_but_stamped) == set()
    assert oracle_error_codes(pki, forced(pki, "expired-signer", timestamper_at(pki, datetime.now(UTC)))) == {
        "NU3037"}
    assert oracle_error_codes(pki, forced(pki, "expired-signer", None)) == {"NU3037"}
    assert "NU3017" in oracle_error_codes(pki, forced(pki, "not-yet-valid-signer", timestamper_at(
        pki, datetime.now(UTC))))


def _revoked_case(fresh_pki: Pki, *, before_timestamp: bool) -> bytes:
    """Signed (validly) by revoked-signer with a timestamp 12 hours old (the certificates are a day old), then
    revoked 6 hours before or 6 hours after that timestamp."""
    stamped_at = datetime.now(UTC) - timedelta(hours=12)
    data = forced(fresh_pki, "revoked-signer", timestamper_at(fresh_pki, stamped_at), at=stamped_at)
    fresh_pki.server.revoke("revoked-signer", at=stamped_at + timedelta(hours=-6 if before_timestamp else 6))
    return data


@pytest.mark.parametrize("before_timestamp", [True, False], ids=["revoked-before-timestamp",
                                                                 "revoked-after-timestamp"])
@pytest.mark.parametrize("transport", ["ocsp", "crl"])
def test_revoked_signer_is_nu3012_whatever_the_timestamp(fresh_pki: Pki, before_timestamp: bool,
                                                         transport: str) -> None:
    data = _revoked_case(fresh_pki, before_timestamp=before_timestamp)
    offline = fresh_pki.verify(data)
    assert offline.valid, [str(i) for i in offline.issues]  # nothing to see without asking
    fetcher = CrlOnly() if transport == "crl" else None
    online = fresh_pki.verify(data, VerificationPolicy.verify(revocation_mode=RevocationMode.ONLINE),
                              fetcher=fetcher, cache=RevocationCache())
    assert not online.valid and NuCode.NU3012 in codes(online), [str(i) for i in online.issues]
    primary = online.primary
    assert primary is not None and primary.revocation is RevocationStatus.REVOKED and not primary.valid
    assert NuCode.NU3012 in primary.codes and offline.primary is not None
    assert offline.primary.revocation is not RevocationStatus.REVOKED
    if isinstance(fetcher, CrlOnly):
        assert fetcher.crls


def test_tsa_without_timestamping_eku_is_nu3028(pki: Pki) -> None:
    data = forced(pki, "author", timestamper_at(pki, datetime.now(UTC), tsa="tsa-no-eku"))
    result = pki.verify(data)
    assert not result.valid and NuCode.NU3028 in codes(result), [str(i) for i in result.errors]


@pytest.mark.oracle
def test_nuget_agrees_on_the_tsa_without_timestamping_eku(pki: Pki) -> None:
    data = forced(pki, "author", timestamper_at(pki, datetime.now(UTC), tsa="tsa-no-eku"))
    assert {c for c in codes(pki.verify(data)) if c} == {NuCode(c) for c in oracle_error_codes(pki, data)}


def _repository_primary_with_countersignature(pki: Pki) -> bytes:
    primary = repository_sign_package(unsigned_package(), pki.signer("repository"), v3_service_index_url=REPO_URL,
                                      owners=["alice"], timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                      trust=pki.strict_trust()).data
    archive = PackageArchive.from_bytes(primary)
    return append_signature(archive.without_signature(), countersign_by_hand(archive.read_signature(), pki),
                            when=datetime.now(UTC))


def _two_countersignatures(pki: Pki) -> bytes:
    author = sign_package(unsigned_package(), pki.signer(), timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                          trust=pki.strict_trust()).data
    once = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                   owners=["alice"], timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                   trust=pki.strict_trust()).data
    archive = PackageArchive.from_bytes(once)
    return append_signature(archive.without_signature(), countersign_by_hand(archive.read_signature(), pki),
                            when=datetime.now(UTC))


# NuGet's verifier never looks for countersignatures on a repository primary signature
# (SignatureUtility.HasRepositoryCountersignature is false for it): NU3033 exists only when signing.
STRUCTURES = [("repository primary + countersignature", _repository_primary_with_countersignature, None),
              ("two repository countersignatures", _two_countersignatures, NuCode.NU3032)]


@pytest.mark.parametrize(("name", "make", "code"), STRUCTURES, ids=[s[0] for s in STRUCTURES])
def test_forbidden_structures(pki: Pki, name: str, make: Callable[[Pki], bytes], code: NuCode | None) -> None:
    data = make(pki)
    result = pki.verify(data)
    if code is None:
        assert result.valid and [s.placement for s in result.signatures] == ["primary"]
        with pytest.raises(SigningError) as refused:  # and nuseal will not add one
            repository_sign_package(data, pki.signer("repository"), v3_service_index_url=REPO_URL, owners=None,
                                    timestamper_url=None, now=datetime.now(UTC), trust=pki.strict_trust())
        assert refused.value.code is NuCode.NU3033
    else:
        assert not result.valid and code in codes(result), [str(i) for i in result.issues]


@pytest.mark.oracle
@pytest.mark.parametrize(("name", "make", "code"), STRUCTURES, ids=[s[0] for s in STRUCTURES])
def test_nuget_agrees_on_forbidden_structures(pki: Pki, name: str, make: Callable[[Pki], bytes],
                                              code: NuCode | None) -> None:
    data = make(pki)
    verdict = oracle_verify(pki, data).policy(ORACLE_POLICY)
    ours = pki.verify(data)
    assert verdict.is_valid is ours.valid is (code is None)
    assert {NuCode(c) for c in verdict.error_codes} == {c for c in codes(ours) if c}, verdict.codes


FORCED = ["rsa1024-signer", "no-eku-signer", "untrusted-signer", "self-signed-signer",
          "not-yet-valid-signer", "expired-signer"]


@pytest.mark.oracle
@pytest.mark.parametrize("name", FORCED)
@pytest.mark.parametrize("stamped", [True, False], ids=["timestamped", "no-timestamp"])
def test_nuget_and_nuseal_agree_on_bad_signers(pki: Pki, name: str, stamped: bool) -> None:
    """The same package, judged by both verifiers under NuGet's verify and accept policies: same validity, same
    error and warning codes."""
    data = forced(pki, name, timestamper_at(pki, datetime.now(UTC)) if stamped else None)
    report = oracle_verify(pki, data)
    assert report.fatal is None
    policies = {
        "verifyCommand": VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE),
        "acceptMode": VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
    }  # the oracle's requireMode runs without the trusted-signers list nuseal's require preset carries (NU3034)
    for policy_name, policy in policies.items():
        verdict = report.policy(policy_name)
        ours = pki.verify(data, policy)
        assert ours.valid is verdict.is_valid, (policy_name, verdict.codes, [str(i) for i in ours.issues])
        assert {c.value for c in codes(ours) if c} == set(verdict.error_codes), (policy_name, verdict.codes)
        assert {w.code.value for w in ours.warnings if w.code} == set(verdict.warning_codes), (
            policy_name, verdict.codes, [str(i) for i in ours.warnings])
