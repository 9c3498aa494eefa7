"""Negative cases: real signatures mutated with asn1crypto, re-encoded, and read back.

Each case states the NU code nuseal gives and where (load, countersignature, timestamp, signature
check). The ``oracle`` test puts every mutated signature back into its package and asks Microsoft's
NuGet.Packaging (../shared/tools/nuget-oracle) for its codes: both must agree.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError
from nuseal.package import PackageArchive, append_signature
from nuseal.signature import MAX_SIGNATURE_SIZE, PrimarySignature, SignatureType, oids
from nuseal.signature.attributes import encode_attribute
from nuseal.timestamp import timestamp_errors_of, timestamps_of

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTOR_DIR = SHARED / "vectors" / "nuget.org"
ORACLE = SHARED / "tools" / "nuget-oracle" / "run-oracle.sh"
AUTHOR = "Newtonsoft.Json.12.0.3.nupkg"  # author + (UiPath) repository countersignature
REPOSITORY = "NUnitTestAdapter.2.3.0.nupkg"  # repository primary


HASH_KEY = b"2.16.840.1.101.3.4.2.1-Hash"


def _signature(vector: str) -> bytes:
    return PackageArchive.from_path(VECTOR_DIR / vector).read_signature()


def _commitment(oid: str) -> core.Sequence:
    return core.Sequence.load(core.Sequence(contents=core.ObjectIdentifier(oid).dump()).dump())


def _signer(ci: cms.ContentInfo) -> cms.SignerInfo:
    return ci["content"]["signer_infos"][0]


def _attr(attrs: cms.CMSAttributes, oid: str) -> cms.CMSAttribute:
    return next(a for a in attrs if a["type"].dotted == oid)


def _remove(attrs: cms.CMSAttributes, oid: str) -> None:
    index = next(i for i, a in enumerate(attrs) if a["type"].dotted == oid)
    del attrs[index]


def _countersigner(ci: cms.ContentInfo) -> cms.SignerInfo:
    return _attr(_signer(ci)["unsigned_attrs"], oids.COUNTERSIGNATURE)["values"][0]


def _token(signer: cms.SignerInfo) -> cms.ContentInfo:
    return _attr(signer["unsigned_attrs"], oids.TIMESTAMP_TOKEN)["values"][0]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _set_content(ci: cms.ContentInfo, transform: Callable[[bytes], bytes]) -> None:
    encap = ci["content"]["encap_content_info"]
    encap["content"] = cms.ParsableOctetString(transform(encap["content"].native))


# --------------------------------------------------------------------------- mutations
def two_signer_infos(ci: cms.ContentInfo) -> None:
    infos = ci["content"]["signer_infos"]
    infos.append(cms.SignerInfo.load(infos[0].dump()))


def no_signer_infos(ci: cms.ContentInfo) -> None:
    ci["content"]["signer_infos"] = cms.SignerInfos([])


def both_commitment_types(ci: cms.ContentInfo) -> None:
    _attr(_signer(ci)["signed_attrs"], oids.COMMITMENT_TYPE_INDICATION)["values"].append(
        _commitment(oids.PROOF_OF_RECEIPT)
    )


def no_certificates(ci: cms.ContentInfo) -> None:
    ci["content"]["certificates"] = cms.CertificateSet([])


def signer_certificate_removed(ci: cms.ContentInfo) -> None:
    signer_fp = PrimarySignature.load(ci.dump()).signer_certificate
    assert signer_fp is not None
    der = signer_fp.public_bytes(Encoding.DER)
    ci["content"]["certificates"] = cms.CertificateSet([c for c in ci["content"]["certificates"] if c.dump() != der])


def signing_time_removed(ci: cms.ContentInfo) -> None:
    _remove(_signer(ci)["signed_attrs"], oids.SIGNING_TIME)


def ess_v2_removed(ci: cms.ContentInfo) -> None:
    _remove(_signer(ci)["signed_attrs"], oids.SIGNING_CERTIFICATE_V2)


def ess_v1_added(ci: cms.ContentInfo) -> None:
    cert = PrimarySignature.load(ci.dump()).signer_certificate
    assert cert is not None
    value = tsp.SigningCertificate({"certs": [{"cert_hash": hashlib.sha1(cert.public_bytes(Encoding.DER)).digest()}]})
    encoded = encode_attribute(oids.SIGNING_CERTIFICATE, [value.dump()])
    _signer(ci)["signed_attrs"].append(cms.CMSAttribute.load(encoded))


def _edit_ess_v2(ci: cms.ContentInfo, edit: Callable[[tsp.SigningCertificateV2], None]) -> None:
    attr = _attr(_signer(ci)["signed_attrs"], oids.SIGNING_CERTIFICATE_V2)
    value = tsp.SigningCertificateV2.load(attr["values"][0].dump())
    edit(value)
    attr["values"][0] = tsp.SigningCertificateV2.load(value.dump(force=True))


def ess_v2_hash_changed(ci: cms.ContentInfo) -> None:
    def edit(value: tsp.SigningCertificateV2) -> None:
        ess = value["certs"][0]
        ess["cert_hash"] = core.OctetString(_flip(ess["cert_hash"].native, 0))

    _edit_ess_v2(ci, edit)


def ess_v2_issuer_serial_removed(ci: cms.ContentInfo) -> None:
    def edit(value: tsp.SigningCertificateV2) -> None:
        ess = value["certs"][0]
        value["certs"][0] = tsp.ESSCertIDv2({"hash_algorithm": {"algorithm": "sha256"}, "cert_hash": ess["cert_hash"]})

    _edit_ess_v2(ci, edit)


def ess_v2_sha1(ci: cms.ContentInfo) -> None:
    def edit(value: tsp.SigningCertificateV2) -> None:
        value["certs"][0]["hash_algorithm"] = {"algorithm": "sha1"}

    _edit_ess_v2(ci, edit)


def ess_v2_twice(ci: cms.ContentInfo) -> None:
    attrs = _signer(ci)["signed_attrs"]
    attrs.append(cms.CMSAttribute.load(_attr(attrs, oids.SIGNING_CERTIFICATE_V2).dump()))


def version_2(ci: cms.ContentInfo) -> None:
    _set_content(ci, lambda c: c.replace(b"Version:1", b"Version:2"))


def sha1_hash_property(ci: cms.ContentInfo) -> None:
    _set_content(ci, lambda c: c.replace(HASH_KEY, b"1.3.14.3.2.26-Hash"))


def url_removed(ci: cms.ContentInfo) -> None:
    _remove(_signer(ci)["signed_attrs"], oids.NUGET_V3_SERVICE_INDEX_URL)


def url_http(ci: cms.ContentInfo) -> None:
    _attr(_signer(ci)["signed_attrs"], oids.NUGET_V3_SERVICE_INDEX_URL)["values"][0] = core.IA5String(
        "http://api.nuget.org/v3/index.json"
    )


def url_twice(ci: cms.ContentInfo) -> None:
    attrs = _signer(ci)["signed_attrs"]
    attrs.append(cms.CMSAttribute.load(_attr(attrs, oids.NUGET_V3_SERVICE_INDEX_URL).dump()))


def blank_owner(ci: cms.ContentInfo) -> None:
    attrs = _signer(ci)["signed_attrs"]
    value = core.SequenceOf(spec=core.UTF8String, value=["nuget", "  "]).dump()
    _remove(attrs, oids.NUGET_PACKAGE_OWNERS)
    attrs.append(cms.CMSAttribute.load(encode_attribute(oids.NUGET_PACKAGE_OWNERS, [value])))


def countersignature_twice(ci: cms.ContentInfo) -> None:
    values = _attr(_signer(ci)["unsigned_attrs"], oids.COUNTERSIGNATURE)["values"]
    values.append(cms.SignerInfo.load(values[0].dump()))


def countersignature_without_signing_time(ci: cms.ContentInfo) -> None:
    _remove(_countersigner(ci)["signed_attrs"], oids.SIGNING_TIME)


def countersignature_without_url(ci: cms.ContentInfo) -> None:
    _remove(_countersigner(ci)["signed_attrs"], oids.NUGET_V3_SERVICE_INDEX_URL)


def countersignature_both_commitment_types(ci: cms.ContentInfo) -> None:
    _attr(_countersigner(ci)["signed_attrs"], oids.COMMITMENT_TYPE_INDICATION)["values"].append(
        _commitment(oids.PROOF_OF_ORIGIN)
    )


def countersignature_without_ess_v2(ci: cms.ContentInfo) -> None:
    _remove(_countersigner(ci)["signed_attrs"], oids.SIGNING_CERTIFICATE_V2)


def repository_primary_countersigned(ci: cms.ContentInfo) -> None:
    other = cms.ContentInfo.load(_signature(AUTHOR))
    counter = _attr(_signer(other)["unsigned_attrs"], oids.COUNTERSIGNATURE)
    _signer(ci)["unsigned_attrs"].append(cms.CMSAttribute.load(counter.dump()))


def author_countersignature_first(ci: cms.ContentInfo) -> None:
    attr = _attr(_signer(ci)["unsigned_attrs"], oids.COUNTERSIGNATURE)
    values = attr["values"]
    fake = cms.SignerInfo.load(values[0].dump())
    _attr(fake["signed_attrs"], oids.COMMITMENT_TYPE_INDICATION)["values"][0] = _commitment(oids.PROOF_OF_ORIGIN)
    fake["signature"] = core.OctetString(_flip(fake["signature"].native, 5))
    attr["values"] = cms.SignerInfos([fake, *(cms.SignerInfo.load(v.dump()) for v in values)])


def imprint_changed(ci: cms.ContentInfo) -> None:
    encap = _token(_signer(ci))["content"]["encap_content_info"]
    info = encap["content"].parsed
    imprint = info["message_imprint"]
    imprint["hashed_message"] = core.OctetString(_flip(imprint["hashed_message"].native, 0))
    encap["content"] = cms.ParsableOctetString(info.dump(force=True))


def token_certificates_removed(ci: cms.ContentInfo) -> None:
    _token(_signer(ci))["content"]["certificates"] = cms.CertificateSet([])


def token_not_signed_data(ci: cms.ContentInfo) -> None:
    _attr(_signer(ci)["unsigned_attrs"], oids.TIMESTAMP_TOKEN)["values"][0] = cms.ContentInfo(
        {"content_type": "data", "content": core.OctetString(b"x")}
    )


def signature_value_changed(ci: cms.ContentInfo) -> None:
    signer = _signer(ci)
    signer["signature"] = core.OctetString(_flip(signer["signature"].native, 10))


def econtent_byte_changed(ci: cms.ContentInfo) -> None:
    _set_content(ci, lambda c: _flip(c, 40))  # inside the base64 hash value


def commitment_type_removed(ci: cms.ContentInfo) -> None:
    _remove(_signer(ci)["signed_attrs"], oids.COMMITMENT_TYPE_INDICATION)
    _remove(_signer(ci)["signed_attrs"], oids.SIGNING_TIME)


def unchanged(ci: cms.ContentInfo) -> None:
    pass


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """``where``: load | countersignature | countersignature-issue | has-countersignature | timestamp |
    countersignature-timestamp | timestamp-error | signature | none. ``oracle``: the code NuGet reports
    (``None``: NuGet reports nothing)."""

    mutate: Callable[[cms.ContentInfo], None]
    vector: str
    where: str
    code: NuCode | None
    oracle: str | None
    suffix: bytes = b""
    raw: bytes | None = None

    @property
    def id(self) -> str:
        return self.mutate.__name__ if self.raw is None else "not-der"

    def build(self) -> bytes:
        if self.raw is not None:
            return self.raw
        ci = cms.ContentInfo.load(_signature(self.vector))
        self.mutate(ci)
        return ci.dump() + self.suffix  # mutated subtrees are re-encoded; force=True re-encodes all (very slow)


A, R = AUTHOR, REPOSITORY
CASES = [
    Case(unchanged, A, "load", NuCode.NU3003, "NU3003", raw=b"this is not DER"),
    Case(two_signer_infos, A, "load", NuCode.NU3009, "NU3009"),
    Case(no_signer_infos, A, "load", NuCode.NU3009, "NU3009"),
    Case(both_commitment_types, A, "load", NuCode.NU3000, "NU3000"),
    Case(no_certificates, A, "load", NuCode.NU3010, "NU3010"),
    Case(signer_certificate_removed, A, "load", NuCode.NU3010, "NU3010"),
    Case(signing_time_removed, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v2_removed, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v1_added, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v2_hash_changed, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v2_issuer_serial_removed, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v2_sha1, A, "load", NuCode.NU3011, "NU3011"),
    Case(ess_v2_twice, A, "load", NuCode.NU3011, "NU3011"),
    Case(version_2, A, "load", NuCode.NU3007, "NU3007"),
    Case(sha1_hash_property, A, "load", NuCode.NU3000, "NU3000"),
    Case(url_removed, R, "load", NuCode.NU3000, "NU3000"),
    Case(url_http, R, "load", NuCode.NU3000, "NU3000"),
    Case(url_twice, R, "load", NuCode.NU3003, "NU3003"),
    Case(blank_owner, R, "load", NuCode.NU3000, "NU3000"),
    Case(countersignature_twice, A, "countersignature", NuCode.NU3032, "NU3032"),
    Case(countersignature_without_signing_time, A, "countersignature", NuCode.NU3031, "NU3031"),
    Case(countersignature_without_url, A, "countersignature", NuCode.NU3000, "NU3000"),
    Case(countersignature_both_commitment_types, A, "has-countersignature", NuCode.NU3000, "NU3000"),
    # NuGet's client checks the countersignature's ESS attributes only on nuget.org (issue), but the
    # removal breaks its CMS signature: NU3012 at verification.
    Case(countersignature_without_ess_v2, A, "countersignature-issue", NuCode.NU3031, "NU3012"),
    # GetRepositoryCountersignature raises NU3033, but NuGet's verifier never asks for a repository
    # primary's countersignature (HasRepositoryCountersignature is false): no code at verification.
    Case(repository_primary_countersigned, R, "countersignature", NuCode.NU3033, None),
    # NuGet hashes the *first* countersigner's value for the repository countersignature's timestamp.
    Case(author_countersignature_first, A, "countersignature-timestamp", NuCode.NU3019, "NU3019"),
    Case(imprint_changed, A, "timestamp", NuCode.NU3021, "NU3021"),  # the token's own signature breaks first
    Case(token_certificates_removed, A, "timestamp", NuCode.NU3020, "NU3020"),
    Case(token_not_signed_data, A, "timestamp-error", NuCode.NU3003, "NU3003"),
    Case(signature_value_changed, A, "timestamp", NuCode.NU3019, "NU3019"),
    Case(signature_value_changed, A, "signature", None, "NU3012"),
    Case(econtent_byte_changed, A, "signature", None, "NU3012"),
    Case(commitment_type_removed, A, "signature", None, "NU3012"),  # loads as Unknown; signature broken
    Case(unchanged, A, "none", None, None, suffix=b"\x00\x00"),  # trailing bytes are ignored
]
IDS = [f"{c.id}-{c.where}" for c in CASES]


def _code_of(error: pytest.ExceptionInfo[SignatureFormatError]) -> NuCode | None:
    return error.value.code


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mutation(case: Case) -> None:
    der = case.build()
    if case.where == "load":
        with pytest.raises(SignatureFormatError) as error:
            PrimarySignature.load(der)
        assert _code_of(error) == case.code
        return
    sig = PrimarySignature.load(der)
    now = timestamps_of(sig)[0].upper_limit if timestamps_of(sig) else datetime.now().astimezone()
    if case.where == "countersignature":
        with pytest.raises(SignatureFormatError) as error:
            sig.repository_countersignature()
        assert _code_of(error) == case.code
    elif case.where == "has-countersignature":
        with pytest.raises(SignatureFormatError) as error:
            sig.has_repository_countersignature()
        assert _code_of(error) == case.code
    elif case.where == "countersignature-issue":
        counter = sig.repository_countersignature()
        assert counter is not None
        assert [i.code for i in counter.issues] == [case.code]
        assert not counter.verify_signature_value()
    elif case.where == "countersignature-timestamp":
        counter = sig.repository_countersignature()
        assert counter is not None
        assert counter.nuget_signature_value != counter.signature_value
        stamp = timestamps_of(counter)[0]
        assert stamp.check(counter.signature_value, now=now) == []
        assert [i.code for i in stamp.check(counter.nuget_signature_value, now=now)] == [case.code]
    elif case.where == "timestamp":
        assert [i.code for i in timestamps_of(sig)[0].check(sig.signature_value, now=now)] == [case.code]
    elif case.where == "timestamp-error":
        assert timestamps_of(sig) == ()
        assert [i.code for i in timestamp_errors_of(sig)] == [case.code]
    elif case.where == "signature":
        assert not sig.verify_signature_value()
    else:
        assert case.where == "none"
        assert sig.verify_signature_value()
        assert timestamps_of(sig)[0].check(sig.signature_value, now=now) == []


def test_unknown_type_loads_without_signing_time_or_ess() -> None:
    ci = cms.ContentInfo.load(_signature(AUTHOR))
    for oid in (oids.COMMITMENT_TYPE_INDICATION, oids.SIGNING_TIME, oids.SIGNING_CERTIFICATE_V2):
        _remove(_signer(ci)["signed_attrs"], oid)
    sig = PrimarySignature.load(ci.dump(force=True))
    assert sig.type is SignatureType.UNKNOWN
    assert sig.friendly_name == "primary signature"
    assert sig.signing_time is None
    assert not sig.verify_signature_value()


def test_unmodified_reencoding_is_byte_identical() -> None:
    # Guards the mutation harness: asn1crypto's forced re-encoding changes nothing by itself.
    for vector in (AUTHOR, REPOSITORY):
        der = _signature(vector)
        assert cms.ContentInfo.load(der).dump(force=True) == der


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x03\x02\x01", cms.ContentInfo({"content_type": "data", "content": core.OctetString(b"x")}).dump()],
    ids=["empty", "truncated", "content-type-data"],
)
def test_undecodable_is_nu3003(der: bytes) -> None:
    with pytest.raises(SignatureFormatError) as error:
        PrimarySignature.load(der)
    assert error.value.code == NuCode.NU3003


def test_truncated_real_signature_is_nu3003() -> None:
    der = _signature(AUTHOR)
    with pytest.raises(SignatureFormatError) as error:
        PrimarySignature.load(der[: len(der) // 2])
    assert error.value.code == NuCode.NU3003


def test_size_is_bounded() -> None:
    with pytest.raises(SignatureFormatError) as error:
        PrimarySignature.load(b"\x30" * (MAX_SIGNATURE_SIZE + 1))
    assert error.value.code == NuCode.NU3003
    assert str(MAX_SIGNATURE_SIZE) in error.value.message


# --------------------------------------------------------------------------- NuGet's verdict
def _oracle_codes(package: Path) -> list[str]:
    """NU codes NuGet reports under its verify-command policy (offline revocation, SDK trust bundles)."""
    result = subprocess.run(
        [
            "bash",
            str(ORACLE),
            "verify",
            str(package),
            "--trust-bundle",
            str(SHARED / "trust" / "codesignctl.pem"),
            "--timestamp-bundle",
            str(SHARED / "trust" / "timestampctl.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        # The oracle's inspection step lets NuGet's exception escape and stops mid-document; the
        # exception is what PackageSignatureVerifier would report (CryptographicException -> NU3003).
        fatal = re.search(r'"fatal": "([^"]*)"', result.stdout)
        assert fatal, result.stdout[-2000:] + result.stderr[-2000:]
        codes = re.findall(r"NU3\d{3}", fatal.group(1))
        return codes[:1] if codes else (["NU3003"] if "CryptographicException" in fatal.group(1) else [])
    policy = next(v for v in document["verification"] if v["policy"] == "verifyCommand")
    return [c.split(":", 1)[1] for c in policy["codes"]]


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nuget_reports_the_same_code(case: Case, tmp_path: Path) -> None:
    unsigned = PackageArchive.from_path(VECTOR_DIR / case.vector).without_signature()
    package = tmp_path / "mutated.nupkg"
    package.write_bytes(append_signature(unsigned, case.build(), when=datetime(2024, 1, 2, 3, 4, 6)))
    codes = _oracle_codes(package)
    if case.oracle is None:
        assert codes == []
    else:
        assert case.oracle in codes, codes
