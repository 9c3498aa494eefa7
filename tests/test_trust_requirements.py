"""NuGet's certificate requirements (NU3013/NU3014/NU3015/NU3017 and NU3022/NU3023/NU3025)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from nuseal.codes import NuCode
from nuseal.errors import UsageError
from nuseal.signature import oids
from nuseal.trust import (
    CertificatePurpose,
    RequirementKind,
    TrustStore,
    check_certificate_requirements,
    requirement_code,
)
from support.trust import CODESIGN_BUNDLE, NOW, Pki, ec_key, rsa_key

SIGN = CertificatePurpose.CODE_SIGNING
STAMP = CertificatePurpose.TIMESTAMPING
LIFETIME = ObjectIdentifier(oids.LIFETIME_SIGNING_EKU)


def codes(cert: x509.Certificate, purpose: CertificatePurpose, now: dt.datetime = NOW) -> list[NuCode]:
    return [failure.code for failure in check_certificate_requirements(cert, purpose=purpose, now=now)]


@pytest.fixture(scope="module")
def pki_root():  # type: ignore[no-untyped-def]
    pki = Pki()
    return pki, pki.issue("Root", ca=True)


def test_good_rsa_2048_sha256_certificate(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert codes(leaf.cert, SIGN) == []
    assert codes(leaf.cert, STAMP) == []


@pytest.mark.parametrize("algorithm", [hashes.SHA384(), hashes.SHA512()])
def test_sha384_and_sha512_with_rsa_are_supported(pki_root, algorithm: hashes.HashAlgorithm) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    assert codes(pki.issue("Signer", issuer=root, hash_algorithm=algorithm).cert, SIGN) == []


def test_rsa_1024_signer(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    leaf = pki.issue("Weak", issuer=root, key=rsa_key("weak", 1024))
    assert codes(leaf.cert, SIGN) == [NuCode.NU3014]
    assert codes(leaf.cert, STAMP) == [NuCode.NU3023]
    failure = check_certificate_requirements(leaf.cert, purpose=SIGN, now=NOW)[0]
    assert failure.kind is RequirementKind.WEAK_PUBLIC_KEY
    assert failure.message == "The signing certificate does not meet a minimum public key length requirement."
    assert "1024" in failure.detail


def test_ec_key_fails_the_key_requirement(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    leaf = pki.issue("EC Signer", issuer=root, key=ec_key("ec leaf"))
    assert codes(leaf.cert, SIGN) == [NuCode.NU3014]


def test_ec_signed_and_pss_signed_certificates_have_unsupported_algorithms() -> None:
    pki = Pki()
    ec_root = pki.issue("EC Root", ca=True, key=ec_key("ec root"))
    by_ec = pki.issue("Signer", issuer=ec_root)
    assert codes(by_ec.cert, SIGN) == [NuCode.NU3013]
    assert codes(by_ec.cert, STAMP) == [NuCode.NU3022]
    rsa_root = pki.issue("Root", ca=True)
    by_pss = pki.issue("PSS Signer", issuer=rsa_root, pss=True)
    assert codes(by_pss.cert, SIGN) == [NuCode.NU3013]


def test_real_sha1_signed_certificate_is_unsupported() -> None:
    # Roots in Microsoft's list signed with sha1WithRSA (e.g. DigiCert Assured ID Root CA) fail NU3013 as
    # leaves; as chain roots they are fine, since NuGet checks only the signing certificate.
    sha1_signed = [
        c
        for c in TrustStore.from_pem_file(CODESIGN_BUNDLE).certificates
        if c.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"
    ]
    assert sha1_signed
    assert NuCode.NU3013 in codes(sha1_signed[0], SIGN)


def test_lifetime_signing_eku_only_for_signing(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    leaf = pki.issue("Lifetime", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING, LIFETIME])
    assert codes(leaf.cert, SIGN) == [NuCode.NU3015]
    assert codes(leaf.cert, STAMP) == []


def test_not_yet_valid_is_strict(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    starts = NOW + dt.timedelta(days=1)
    leaf = pki.issue("Future", issuer=root, not_before=starts)
    assert codes(leaf.cert, SIGN, now=NOW) == [NuCode.NU3017]
    assert codes(leaf.cert, STAMP, now=NOW) == [NuCode.NU3025]
    assert codes(leaf.cert, SIGN, now=starts) == []  # now < notBefore, strictly


def test_expired_is_not_a_requirement_failure(pki_root) -> None:  # type: ignore[no-untyped-def]
    pki, root = pki_root
    leaf = pki.issue("Old", issuer=root, not_after=NOW - dt.timedelta(days=1))
    assert codes(leaf.cert, SIGN) == []  # expiry is judged against the timestamp (NU3037), elsewhere


def test_all_failures_are_reported_in_nuget_order() -> None:
    pki = Pki()
    ec_root = pki.issue("EC Root", ca=True, key=ec_key("ec root"))
    leaf = pki.issue(
        "Everything Wrong",
        issuer=ec_root,
        key=rsa_key("weak", 1024),
        eku=[LIFETIME],
        not_before=NOW + dt.timedelta(days=1),
    )
    assert codes(leaf.cert, SIGN) == [NuCode.NU3013, NuCode.NU3014, NuCode.NU3015, NuCode.NU3017]
    assert codes(leaf.cert, STAMP) == [NuCode.NU3022, NuCode.NU3023, NuCode.NU3025]


def test_code_mapping_and_misuse() -> None:
    assert requirement_code(RequirementKind.NOT_YET_VALID, SIGN) is NuCode.NU3017
    with pytest.raises(UsageError):
        requirement_code(RequirementKind.LIFETIME_SIGNING_EKU, STAMP)
    pki = Pki()
    with pytest.raises(UsageError):
        check_certificate_requirements(pki.issue("Root", ca=True).cert, purpose=SIGN, now=NOW.replace(tzinfo=None))
