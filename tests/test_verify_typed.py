"""The typed facts of ``nuseal.verify`` results on the real nuget.org vectors: per signature and per timestamp,
kind, placement, intact / valid / trusted, certificate identities, genTime, revocation status and coded issues.

Expected values come from the packages themselves, read independently here with asn1crypto and ``cryptography``
(never from nuseal's parser), or from what a tamper case breaks. Judged at ``VECTOR_NOW`` (the vectors expire)
with a fresh revocation cache in offline mode (so revocation is "unknown", as NuGet reports offline).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.package import PackageArchive, append_signature
from nuseal.signature.builder import remove_repository_countersignatures
from nuseal.trust import RevocationCache, RevocationMode, TrustStore
from nuseal.verify import (
    AllowListEntry,
    Placement,
    RevocationStatus,
    SignatureKind,
    SignaturePlacement,
    VerificationPolicy,
    VerificationResult,
    VerificationTarget,
    Verifier,
)
from support import tamper
from support.clock import VECTOR_NOW

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
CODE_SIGNING = TrustStore.from_pem_file(SHARED / "trust" / "codesignctl.pem")
TIMESTAMPING = TrustStore.from_pem_file(SHARED / "trust" / "timestampctl.pem")
AUTHOR_SIGNED = SHARED / "vectors" / "nuget.org" / "system.memory.4.5.3.nupkg"  # author + nuget.org repository
REPOSITORY_SIGNED = SHARED / "vectors" / "nuget.org" / "RestSharp.106.11.4.nupkg"  # repository primary (nuget.org)
COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
COMMITMENT_TYPE = "1.2.840.113549.1.9.16.2.16"
AUTHOR_COMMITMENT = "1.2.840.113549.1.9.16.6.1"  # id-cti-ets-proofOfOrigin: author (NUGET-SIGNING.md §3)
REPOSITORY_COMMITMENT = "1.2.840.113549.1.9.16.6.2"  # id-cti-ets-proofOfReceipt: repository


def verify(
    data: bytes,
    policy: VerificationPolicy | None = None,
    *,
    code_signing: TrustStore = CODE_SIGNING,
) -> VerificationResult:
    verifier = Verifier(
        policy or VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=code_signing,
        timestamping_roots=TIMESTAMPING,
        cache=RevocationCache(),  # nothing cached: offline revocation is unknown
    )
    return verifier.verify_bytes(data, now=VECTOR_NOW)


# ------------------------------------------------------------------------------------------ independent reading
@dataclasses.dataclass(frozen=True)
class Expected:
    kind: SignatureKind
    signer: x509.Certificate
    gen_times: tuple[datetime, ...]
    tsa: tuple[x509.Certificate, ...]


def _find(certs: list[cms.Certificate], sid: cms.SignerIdentifier) -> x509.Certificate:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (cert.issuer.dump(), cert.serial_number) == (
                sid.chosen["issuer"].dump(),
                sid.chosen["serial_number"].native,
            ):
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise AssertionError("signer certificate not found")


def _attrs(attrs: object, oid: str) -> list[object]:
    if not isinstance(attrs, cms.CMSAttributes):
        return []
    return [v for a in attrs if a["type"].dotted == oid for v in a["values"]]


def _kind(signer: cms.SignerInfo) -> SignatureKind:
    values = _attrs(signer["signed_attrs"], COMMITMENT_TYPE)
    # CommitmentTypeIndication ::= SEQUENCE { commitmentTypeId OBJECT IDENTIFIER, ... } (RFC 5126 §5.11.1)
    oids = {core.ObjectIdentifier.load(core.Sequence.load(v.dump())[0].dump()).dotted for v in values}  # type: ignore[attr-defined]
    if oids == {AUTHOR_COMMITMENT}:
        return SignatureKind.AUTHOR
    if oids == {REPOSITORY_COMMITMENT}:
        return SignatureKind.REPOSITORY
    return SignatureKind.UNKNOWN


def _stamps(signer: cms.SignerInfo) -> tuple[tuple[datetime, ...], tuple[x509.Certificate, ...]]:
    times: list[datetime] = []
    tsas: list[x509.Certificate] = []
    for token in _attrs(signer["unsigned_attrs"], TIMESTAMP_TOKEN):
        signed = token["content"]  # type: ignore[index]
        # TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, ... } (RFC 3161 §2.4.2);
        # read by position (importing asn1crypto.tsp changes how asn1crypto parses CMS attributes process-wide)
        info = core.Sequence.load(signed["encap_content_info"]["content"].contents)
        times.append(core.GeneralizedTime.load(info[4].dump()).native)
        certs = [c.chosen for c in signed["certificates"]]
        tsas.append(_find(certs, signed["signer_infos"][0]["sid"]))
    return tuple(times), tuple(tsas)


def expected_signatures(data: bytes) -> list[Expected]:
    """The primary signer, then each countersigner, read with asn1crypto from the package's .signature.p7s."""
    signed = cms.ContentInfo.load(zipfile.ZipFile(io.BytesIO(data)).read(".signature.p7s"))["content"]
    certs = [c.chosen for c in signed["certificates"]]
    primary = signed["signer_infos"][0]
    out = [Expected(_kind(primary), _find(certs, primary["sid"]), *_stamps(primary))]
    for counter in _attrs(primary["unsigned_attrs"], COUNTERSIGNATURE):
        out.append(Expected(_kind(counter), _find(certs, counter["sid"]), *_stamps(counter)))  # type: ignore[arg-type]
    return out


def sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex().upper()


# ------------------------------------------------------------------------------------------ the vectors
@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_every_signature_of_a_real_package_is_intact_valid_and_trusted(path: Path) -> None:
    data = path.read_bytes()
    result = verify(data)
    expected = expected_signatures(data)
    assert result.valid, [str(i) for i in result.errors]
    assert [s.placement for s in result.signatures] == [Placement.PRIMARY] + [Placement.COUNTERSIGNATURE] * (
        len(expected) - 1
    )
    assert result.primary is result.signatures[0]
    assert result.primary.other_countersignatures == 0
    for info, want in zip(result.signatures, expected, strict=True):
        assert info.kind is want.kind
        assert (info.intact, info.valid, info.trusted, info.checked) == (True, True, True, True), info.issues
        assert info.revocation is RevocationStatus.UNKNOWN  # offline, nothing cached
        assert info.signer is not None
        assert info.signer.sha256_fingerprint == sha256(want.signer)
        assert info.signer.serial_number == want.signer.serial_number
        assert info.signer.not_after == want.signer.not_valid_after_utc
        assert info.signer.der == want.signer.public_bytes(Encoding.DER)
        assert info.fingerprints["SHA256"] == info.signer.sha256_fingerprint  # the report field agrees
        assert not {i.code for i in info.issues if i.code is not None}
        assert [t.gen_time for t in info.timestamp_details] == list(want.gen_times)
        assert [t.gen_time for t in info.timestamp_details] == [t for t, _ in info.timestamps]
        for stamp, tsa in zip(info.timestamp_details, want.tsa, strict=True):
            assert (stamp.intact, stamp.valid, stamp.trusted, stamp.checked) == (True, True, True, True)
            assert stamp.revocation is RevocationStatus.UNKNOWN
            assert stamp.authority is not None
            assert stamp.authority.sha256_fingerprint == sha256(tsa)
            assert stamp.authority.serial_number == tsa.serial_number


def test_author_and_repository_kinds_on_one_package() -> None:
    result = verify(AUTHOR_SIGNED.read_bytes())
    assert result.primary is not None and result.repository_countersignature is not None
    assert result.primary.kind is SignatureKind.AUTHOR
    assert result.repository_countersignature.kind is SignatureKind.REPOSITORY
    assert result.repository_countersignature.v3_service_index_url == "https://api.nuget.org/v3/index.json"


def test_author_signature_stays_intact_without_its_repository_countersignature() -> None:
    """``remove_repository_countersignatures`` (the feed strips them before signing again) keeps the author
    signature's bytes: the result has no countersignature and the author signature is still trusted."""
    archive = PackageArchive.from_bytes(AUTHOR_SIGNED.read_bytes())
    der, urls = remove_repository_countersignatures(archive.read_signature())
    assert urls == ("https://api.nuget.org/v3/index.json",)
    result = verify(append_signature(archive.without_signature(), der, when=VECTOR_NOW))
    assert result.valid and result.repository_countersignature is None
    assert result.primary is not None and result.primary.trusted and result.primary.other_countersignatures == 0
    assert remove_repository_countersignatures(der) == (der, ())  # nothing left to remove


def test_untrusted_root_is_valid_but_not_trusted_unless_a_trusted_signer_allows_it() -> None:
    """With an empty code-signing store the nuget.org repository chain ends in a root nobody trusts (NU3018);
    a trustedSigners entry with ``allowUntrustedRoot`` for that certificate makes the signature trusted."""
    data = REPOSITORY_SIGNED.read_bytes()
    result = verify(data, code_signing=TrustStore.empty())
    primary = result.primary
    assert not result.valid and primary is not None
    assert (primary.intact, primary.valid, primary.trusted) == (True, True, False), primary.issues
    assert NuCode.NU3018 in primary.codes
    assert all(t.trusted for t in primary.timestamp_details)  # the TSA still chains to the timestamping roots
    signer = expected_signatures(data)[0].signer
    entry = AllowListEntry(
        fingerprint=sha256(signer),
        target=VerificationTarget.REPOSITORY,
        placement=SignaturePlacement.ANY,
        allow_untrusted_root=True,
    )
    policy = VerificationPolicy.verify(trusted_signers=(entry,), revocation_mode=RevocationMode.OFFLINE)
    allowed = verify(data, policy, code_signing=TrustStore.empty())
    assert allowed.valid and allowed.primary is not None
    assert (allowed.primary.intact, allowed.primary.valid, allowed.primary.trusted) == (True, True, True)


def test_countersignature_the_policy_does_not_judge_is_marked_unchecked() -> None:
    """Accept mode judges the repository countersignature only when the primary needs it (NuGet's
    IfExistsAndIsNecessary): its integrity is still established, validity and trust are not."""
    result = verify(AUTHOR_SIGNED.read_bytes(), VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE))
    counter = result.repository_countersignature
    assert counter is not None
    assert (counter.intact, counter.valid, counter.trusted, counter.checked) == (True, False, False, False)
    assert counter.revocation is RevocationStatus.NOT_CHECKED
    assert all(t.intact and not t.checked for t in counter.timestamp_details)


# ------------------------------------------------------------------------------------------ broken packages
def test_changed_content_breaks_only_the_primary_signature() -> None:
    result = verify(tamper.entry_data_byte(AUTHOR_SIGNED.read_bytes()))
    assert result.primary is not None and result.repository_countersignature is not None
    assert not result.primary.intact and not result.primary.valid and not result.primary.trusted
    assert NuCode.NU3008 in result.primary.codes
    assert result.repository_countersignature.intact  # it signs the primary's signature value, still unchanged


def test_changed_primary_signature_value_is_not_intact_nor_its_timestamp() -> None:
    result = verify(tamper.signature_value_byte(AUTHOR_SIGNED.read_bytes()))
    primary = result.primary
    assert primary is not None
    assert (primary.intact, primary.valid, primary.trusted) == (False, False, False)
    assert NuCode.NU3012 in {i.code for i in primary.issues}
    (stamp,) = primary.timestamp_details
    assert not stamp.intact and NuCode.NU3019 in {i.code for i in stamp.issues}  # imprint of the old value
    assert result.repository_countersignature is not None
    assert not result.repository_countersignature.intact  # it signed the old value too


def _countersignature_value_flipped(data: bytes) -> bytes:
    """As ``tamper.signature_countersignature_value_byte`` (one byte in the middle of the repository
    countersignature's signature value XOR 0x01), by offset: the tamper module's asn1crypto re-encoding of the
    unsigned attributes takes half a minute here."""
    archive = PackageArchive.from_bytes(data)
    der = archive.read_signature()
    signer = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    (counter,) = _attrs(signer["unsigned_attrs"], COUNTERSIGNATURE)
    value = bytes(counter["signature"].contents)  # type: ignore[index]
    at = der.index(value) + len(value) // 2
    assert der.count(value) == 1
    flipped = der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]
    return append_signature(archive.without_signature(), flipped, when=VECTOR_NOW)


def test_changed_countersignature_value_leaves_the_primary_intact() -> None:
    result = verify(_countersignature_value_flipped(AUTHOR_SIGNED.read_bytes()))
    assert result.primary is not None and result.primary.intact and result.primary.trusted
    counter = result.repository_countersignature
    assert counter is not None and not counter.intact and not counter.valid
    assert NuCode.NU3012 in counter.codes


def _without_primary_timestamp(data: bytes) -> bytes:
    archive = PackageArchive.from_bytes(data)
    info = cms.ContentInfo.load(archive.read_signature())
    signer = info["content"]["signer_infos"][0]
    kept = [a for a in signer["unsigned_attrs"] if a["type"].dotted != TIMESTAMP_TOKEN]
    signer["unsigned_attrs"] = cms.CMSAttributes(kept) if kept else core.Void()
    return append_signature(archive.without_signature(), info.dump(), when=VECTOR_NOW)


def test_expired_signer_without_a_timestamp_is_intact_but_not_valid() -> None:
    """Without its timestamp the author certificate (expired before VECTOR_NOW) is judged now: NU3037."""
    data = _without_primary_timestamp(AUTHOR_SIGNED.read_bytes())
    signer = expected_signatures(data)[0].signer
    assert signer.not_valid_after_utc < VECTOR_NOW
    result = verify(data)
    primary = result.primary
    assert primary is not None and primary.timestamp_details == ()
    assert (primary.intact, primary.valid, primary.trusted) == (True, False, False)
    assert {NuCode.NU3027, NuCode.NU3037} <= primary.codes
    assert primary.signer is not None and primary.signer.not_after == signer.not_valid_after_utc


def test_structure_findings_are_typed_and_reported() -> None:
    result = verify(tamper.absurd_central_sizes(AUTHOR_SIGNED.read_bytes()))
    assert result.structure and not result.valid
    assert result.structure_codes == {p.code for p in result.structure}
    unsafe = [i for i in result.errors if i.code is None]
    assert [i.message for i in unsafe] == [f"The package archive is unsafe: {p.message}" for p in result.structure]
