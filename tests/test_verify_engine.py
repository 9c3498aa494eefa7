"""nuseal.verify on the 12 real nuget.org packages: presets, unsigned copies, allow lists, trust, revocation."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import Level, NuCode
from nuseal.errors import NetworkError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import (
    AllowListEntry,
    RevocationStatus,
    SignaturePlacement,
    VerificationPolicy,
    VerificationTarget,
    Verifier,
)
from support.clock import VECTOR_NOW

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
BY_NAME = {p.name: p for p in VECTORS}
CODE_SIGNING = TrustStore.from_pem_file(SHARED / "trust" / "codesignctl.pem")
TIMESTAMPING = TrustStore.from_pem_file(SHARED / "trust" / "timestampctl.pem")
OFFLINE = RevocationMode.OFFLINE
NOW = VECTOR_NOW  # the real vectors expire: judged at the frozen instant (support/clock.py)
AUTHOR_SIGNED = "system.memory.4.5.3.nupkg"  # author (Microsoft) + nuget.org repository countersignature
REPO_SIGNED = "RestSharp.106.11.4.nupkg"  # repository primary signature by nuget.org


def verifier(policy: VerificationPolicy, **stores: TrustStore) -> Verifier:
    return Verifier(
        policy,
        code_signing_roots=stores.get("code_signing", CODE_SIGNING),
        timestamping_roots=stores.get("timestamping", TIMESTAMPING),
    )


def signer_certificates(path: Path) -> list[x509.Certificate]:
    """Primary signer certificate first, then the countersigner's, found independently with asn1crypto."""
    signed = cms.ContentInfo.load(zipfile.ZipFile(path).read(".signature.p7s"))["content"]
    certs = {c.chosen.dump(): c.chosen for c in signed["certificates"]}

    def find(sid: cms.SignerIdentifier) -> x509.Certificate:
        for cert in certs.values():
            if sid.name == "issuer_and_serial_number":
                if (cert.issuer.dump(), cert.serial_number) == (
                    sid.chosen["issuer"].dump(),
                    sid.chosen["serial_number"].native,
                ):
                    return x509.load_der_x509_certificate(cert.dump())
            elif cert.key_identifier == sid.chosen.native:
                return x509.load_der_x509_certificate(cert.dump())
        raise AssertionError("signer certificate not found")

    signer = signed["signer_infos"][0]
    found = [find(signer["sid"])]
    for attr in signer["unsigned_attrs"] or []:
        if attr["type"].dotted == "1.2.840.113549.1.9.6":
            found.extend(find(v["sid"]) for v in attr["values"])
    return found


def sha256_hex(cert: x509.Certificate, alg: str = "sha256") -> str:
    return hashlib.new(alg, cert.public_bytes(Encoding.DER)).hexdigest().upper()


def unsigned_copy(path: Path) -> bytes:
    return PackageArchive.from_path(path).without_signature()


PRESETS = {
    "verify": VerificationPolicy.verify(revocation_mode=OFFLINE),
    "accept": VerificationPolicy.accept(revocation_mode=OFFLINE),
    "require": VerificationPolicy.require(revocation_mode=OFFLINE).evolve(allow_lists=()),
}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_every_vector_verifies_without_warnings(path: Path, preset: str) -> None:
    result = verifier(PRESETS[preset]).verify_path(str(path), now=NOW)
    assert result.valid, [str(i) for i in result.issues]
    assert result.is_signed
    assert not result.errors and not result.warnings, [str(i) for i in result.errors + result.warnings]
    assert result.content_hash is None  # not asked for
    hashed = Verifier(PRESETS[preset], code_signing_roots=CODE_SIGNING, timestamping_roots=TIMESTAMPING,
                      with_content_hash=True).verify_path(str(path), now=NOW)
    assert hashed.content_hash == PackageArchive.from_path(path).content_hash()


def test_countersignature_details_are_reported() -> None:
    result = verifier(PRESETS["verify"]).verify_path(str(BY_NAME["Newtonsoft.Json.12.0.3.nupkg"]), now=NOW)
    primary, counter = result.signatures
    assert (primary.placement, primary.type, counter.type) == ("primary", "Author", "Repository")
    assert counter.v3_service_index_url == "https://gallery.uipath.com/api/v3/index.json"
    certs = signer_certificates(BY_NAME["Newtonsoft.Json.12.0.3.nupkg"])
    assert primary.fingerprints["SHA256"] == sha256_hex(certs[0])
    assert counter.fingerprints["SHA256"] == sha256_hex(certs[1])


def test_unsigned_copy_under_each_policy() -> None:
    data = unsigned_copy(BY_NAME[AUTHOR_SIGNED])
    verify = verifier(PRESETS["verify"]).verify_bytes(data, now=NOW)
    assert not verify.valid and [i.code for i in verify.errors] == [NuCode.NU3004]
    accept = verifier(PRESETS["accept"]).verify_bytes(data, now=NOW)
    assert accept.valid and not accept.issues
    require = verifier(VerificationPolicy.require(revocation_mode=OFFLINE)).verify_bytes(data, now=NOW)
    assert not require.valid and [i.code for i in require.errors] == [NuCode.NU3004]
    assert "signatureValidationMode is set to require" in require.errors[0].message


@pytest.mark.parametrize("alg", ["sha256", "sha384", "sha512"])
def test_certificate_fingerprint_match(alg: str) -> None:
    cert = signer_certificates(BY_NAME[AUTHOR_SIGNED])[0]
    entry = AllowListEntry(fingerprint=sha256_hex(cert, alg).lower(), hash_algorithm=HashAlgorithm.parse(alg))
    result = verifier(VerificationPolicy.verify(fingerprints=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(BY_NAME[AUTHOR_SIGNED]), now=NOW
    )
    assert result.valid and not result.errors


def test_certificate_fingerprint_mismatch_is_nu3034() -> None:
    other = signer_certificates(BY_NAME["dockpanelsuite.3.1.0.nupkg"])[0]
    entry = AllowListEntry(fingerprint=sha256_hex(other))
    result = verifier(VerificationPolicy.verify(fingerprints=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(BY_NAME[AUTHOR_SIGNED]), now=NOW
    )
    assert not result.valid
    assert [(i.code, i.level) for i in result.errors] == [(NuCode.NU3034, Level.ERROR)]
    expected = "The package signature did not match any of the allowed certificate fingerprints."
    assert result.errors[0].message == expected


def test_fingerprint_of_the_countersigner_does_not_match_primary_placement() -> None:
    repo_cert = signer_certificates(BY_NAME[AUTHOR_SIGNED])[1]
    entry = AllowListEntry(fingerprint=sha256_hex(repo_cert))
    result = verifier(VerificationPolicy.verify(fingerprints=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(BY_NAME[AUTHOR_SIGNED]), now=NOW
    )
    assert [i.code for i in result.errors] == [NuCode.NU3034]


def _repository_entry(cert: x509.Certificate, owners: set[str] | None) -> AllowListEntry:
    return AllowListEntry(
        fingerprint=sha256_hex(cert),
        target=VerificationTarget.REPOSITORY,
        placement=SignaturePlacement.ANY,
        owners=frozenset(owners) if owners else None,
    )


def test_trusted_repository_signer_with_matching_owners() -> None:
    path = BY_NAME[AUTHOR_SIGNED]
    owners = set(verifier(PRESETS["verify"]).verify_path(str(path), now=NOW).signatures[1].package_owners or ())
    assert owners, "nuget.org countersignatures carry the owners"
    entry = _repository_entry(signer_certificates(path)[1], {sorted(owners)[0], "someone-else"})
    result = verifier(VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(path), now=NOW
    )
    assert result.valid and not result.errors


def test_trusted_repository_signer_whose_owners_do_not_match_is_nu3034() -> None:
    path = BY_NAME[AUTHOR_SIGNED]
    entry = _repository_entry(signer_certificates(path)[1], {"not-an-owner"})
    result = verifier(VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(path), now=NOW
    )
    assert not result.valid
    assert [i.code for i in result.errors] == [NuCode.NU3034]
    assert result.errors[0].message == "This package is signed but not by a trusted signer."


def test_owners_are_case_sensitive() -> None:
    path = BY_NAME[AUTHOR_SIGNED]
    owners = verifier(PRESETS["verify"]).verify_path(str(path), now=NOW).signatures[1].package_owners or ()
    entry = _repository_entry(signer_certificates(path)[1], {o.swapcase() for o in owners})
    result = verifier(VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(path), now=NOW
    )
    assert [i.code for i in result.errors] == [NuCode.NU3034]


def test_repository_primary_signature_with_trusted_repository_signer() -> None:
    path = BY_NAME[REPO_SIGNED]
    entry = _repository_entry(signer_certificates(path)[0], None)
    ok = verifier(VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(path), now=NOW
    )
    assert ok.valid
    as_author = AllowListEntry(fingerprint=entry.fingerprint, target=VerificationTarget.AUTHOR)
    bad = verifier(VerificationPolicy.verify(trusted_signers=(as_author,), revocation_mode=OFFLINE)).verify_path(
        str(path), now=NOW
    )
    assert [i.code for i in bad.errors] == [NuCode.NU3034]


def test_require_mode_without_trusted_signers_is_nu3034() -> None:
    result = verifier(VerificationPolicy.require(revocation_mode=OFFLINE)).verify_path(
        str(BY_NAME[AUTHOR_SIGNED]), now=NOW
    )
    assert not result.valid and [i.code for i in result.errors] == [NuCode.NU3034]


def test_accept_mode_trusted_signer_mismatch_is_a_warning() -> None:
    entry = AllowListEntry(fingerprint="00" * 32)
    result = verifier(VerificationPolicy.accept(trusted_signers=(entry,), revocation_mode=OFFLINE)).verify_path(
        str(BY_NAME[AUTHOR_SIGNED]), now=NOW
    )
    assert result.valid
    assert [(i.code, i.level) for i in result.warnings] == [(NuCode.NU3034, Level.WARNING)]


def test_untrusted_root_is_nu3018_and_nu3042() -> None:
    empty = TrustStore.empty()
    result = verifier(PRESETS["verify"], code_signing=empty).verify_path(str(BY_NAME[REPO_SIGNED]), now=NOW)
    assert not result.valid
    assert NuCode.NU3018 in {i.code for i in result.errors}
    assert NuCode.NU3042 in {i.code for i in result.warnings}
    accept = verifier(PRESETS["accept"], code_signing=empty).verify_path(str(BY_NAME[REPO_SIGNED]), now=NOW)
    assert accept.valid and NuCode.NU3018 in {i.code for i in accept.warnings}


def test_untrusted_timestamp_root_is_nu3028() -> None:
    result = verifier(PRESETS["verify"], timestamping=TrustStore.empty()).verify_path(
        str(BY_NAME[REPO_SIGNED]), now=NOW
    )
    assert not result.valid
    assert NuCode.NU3028 in {i.code for i in result.errors}


def test_allow_untrusted_root_needs_upper_case_fingerprint() -> None:
    """NuGet's quirk: ``allowUntrustedRoot`` is matched ordinally against upper-case hex."""
    path = BY_NAME[REPO_SIGNED]
    cert = signer_certificates(path)[0]
    empty = TrustStore.empty()
    for fp, expect_valid in ((sha256_hex(cert), True), (sha256_hex(cert).lower(), False)):
        entry = AllowListEntry(
            fingerprint=fp,
            target=VerificationTarget.REPOSITORY,
            placement=SignaturePlacement.ANY,
            allow_untrusted_root=True,
        )
        policy = VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=OFFLINE)
        result = verifier(policy, code_signing=empty).verify_path(str(path), now=NOW)
        assert result.valid is expect_valid, [str(i) for i in result.errors]


class UnreachableFetcher:
    """A revocation transport whose servers never answer (the machine is offline)."""

    def __init__(self) -> None:
        self.calls = 0

    def fetch_ocsp(self, url: str, request: bytes) -> bytes:
        self.calls += 1
        raise NetworkError(f"{url}: unreachable")

    def fetch_crl(self, url: str) -> bytes:
        self.calls += 1
        raise NetworkError(f"{url}: unreachable")


def test_online_mode_with_unreachable_revocation_servers_warns_nu3018() -> None:
    fetcher = UnreachableFetcher()
    policy = VerificationPolicy.verify(revocation_mode=RevocationMode.ONLINE)
    v = Verifier(policy, code_signing_roots=CODE_SIGNING, timestamping_roots=TIMESTAMPING, fetcher=fetcher)
    result = v.verify_path(str(BY_NAME[REPO_SIGNED]), now=NOW)
    assert fetcher.calls > 0
    assert result.valid
    assert {i.code for i in result.warnings} == {NuCode.NU3018, NuCode.NU3028}
    primary = result.primary
    assert primary is not None and primary.revocation is RevocationStatus.UNKNOWN and primary.valid
    assert [t.revocation for t in primary.timestamp_details] == [RevocationStatus.UNKNOWN]
    assert NuCode.NU3018 in primary.codes and NuCode.NU3028 in {i.code for i in primary.timestamp_details[0].issues}


def test_not_a_zip_is_an_invalid_result_not_an_exception() -> None:
    result = verifier(PRESETS["verify"]).verify_bytes(b"hello", now=NOW, source="hello.nupkg")
    assert not result.valid and result.errors and "not a valid" in result.errors[0].message
