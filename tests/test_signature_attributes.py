"""nuseal.signature.attributes: the writers reproduce NuGet's bytes; the readers apply NuGet's rules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType, oids
from nuseal.signature.attributes import (
    encode_attribute,
    encode_commitment_type_indication,
    encode_package_owners,
    encode_signing_certificate_v2,
    encode_signing_time,
    encode_v3_service_index_url,
    read_commitment_type,
    read_package_owners,
    read_signing_certificate_v2,
    read_signing_time,
    read_v3_service_index_url,
)

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))


def _signers(der: bytes) -> list[cms.SignerInfo]:
    """The primary SignerInfo and its countersigners, decoded by asn1crypto."""
    primary = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    out = [primary]
    for attr in primary["unsigned_attrs"]:
        if attr["type"].dotted == oids.COUNTERSIGNATURE:
            out.extend(attr["values"])
    return out


def _raw(signer: cms.SignerInfo, oid: str) -> tuple[bytes, bytes]:
    attr = next(a for a in signer["signed_attrs"] if a["type"].dotted == oid)
    return attr.dump(), attr["values"][0].dump()


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_writers_reproduce_the_bytes_in_real_signatures(path: Path) -> None:
    der = PackageArchive.from_path(path).read_signature()
    sig = PrimarySignature.load(der)
    counter = sig.repository_countersignature()
    models = [sig] + ([counter] if counter else [])
    for model, signer in zip(models, _signers(der), strict=True):
        assert model.signer_certificate is not None
        _, value = _raw(signer, oids.COMMITMENT_TYPE_INDICATION)
        assert encode_commitment_type_indication(model.type) == value
        assert read_commitment_type(value) in (oids.PROOF_OF_ORIGIN, oids.PROOF_OF_RECEIPT)
        attr, value = _raw(signer, oids.SIGNING_CERTIFICATE_V2)
        assert encode_signing_certificate_v2(model.signer_certificate, HashAlgorithm.SHA256) == value
        assert encode_attribute(oids.SIGNING_CERTIFICATE_V2, [value]) == attr
        (ess,) = read_signing_certificate_v2(value)
        assert ess.hash_algorithm_oid == HashAlgorithm.SHA256.oid
        assert ess.issuer_serial is not None
        _, value = _raw(signer, oids.SIGNING_TIME)
        assert model.signing_time is not None
        assert encode_signing_time(model.signing_time) == value
        assert read_signing_time(value) == model.signing_time
        if model.type is SignatureType.REPOSITORY:
            assert model.v3_service_index_url is not None
            assert model.package_owners is not None
            _, value = _raw(signer, oids.NUGET_V3_SERVICE_INDEX_URL)
            assert encode_v3_service_index_url(model.v3_service_index_url) == value
            _, value = _raw(signer, oids.NUGET_PACKAGE_OWNERS)
            assert encode_package_owners(model.package_owners) == value


def test_signing_certificate_v2_other_hash_algorithms() -> None:
    der = PackageArchive.from_path(VECTORS[0]).read_signature()
    cert = PrimarySignature.load(der).signer_certificate
    assert cert is not None
    for algorithm in HashAlgorithm:
        value = encode_signing_certificate_v2(cert, algorithm)
        parsed = tsp.SigningCertificateV2.load(value)["certs"][0]  # asn1crypto's independent reading
        assert parsed["hash_algorithm"]["algorithm"].dotted == algorithm.oid
        expected = hashlib.new(algorithm.hashlib_name, cert.public_bytes(Encoding.DER)).digest()
        assert parsed["cert_hash"].native == expected
        issuer = parsed["issuer_serial"]["issuer"][0].chosen
        assert issuer == asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).issuer
        assert parsed["issuer_serial"]["serial_number"].native == cert.serial_number


def test_signing_time_encoding_ranges() -> None:
    assert encode_signing_time(datetime(2024, 5, 6, 7, 8, 9, 999, tzinfo=UTC)) == core.UTCTime(
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    ).dump()
    late = datetime(2050, 1, 1, tzinfo=UTC)
    assert encode_signing_time(late) == core.GeneralizedTime(late).dump()
    assert read_signing_time(encode_signing_time(late)) == late
    with pytest.raises(UsageError):
        encode_signing_time(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.nuget.org/v3/index.json", True),
        ("HTTPS://example.test/index.json", True),  # .NET's Uri.Scheme is lower-cased
        ("http://api.nuget.org/v3/index.json", False),
        ("/v3/index.json", False),
        ("https://", False),
        ("https://exa mple.test/", False),
    ],
)
def test_service_index_url_rules(url: str, ok: bool) -> None:
    value = core.IA5String(url).dump()
    if ok:
        assert read_v3_service_index_url(value) == url
        assert encode_v3_service_index_url(url) == value
    else:
        with pytest.raises(SignatureFormatError) as info:
            read_v3_service_index_url(value)
        assert info.value.code == NuCode.NU3000
        with pytest.raises(UsageError):
            encode_v3_service_index_url(url)


def test_service_index_url_must_be_ia5() -> None:
    with pytest.raises(SignatureFormatError) as info:
        read_v3_service_index_url(core.UTF8String("https://api.nuget.org/v3/index.json").dump())
    assert info.value.code == NuCode.NU3003


@pytest.mark.parametrize(
    ("owners", "code"),
    [
        ([], NuCode.NU3000),
        (["ok", " "], NuCode.NU3000),
        (["ok", ""], NuCode.NU3000),
    ],
)
def test_owner_rules(owners: list[str], code: NuCode) -> None:
    value = core.SequenceOf(spec=core.UTF8String, value=owners).dump()
    with pytest.raises(SignatureFormatError) as info:
        read_package_owners(value)
    assert info.value.code == code
    with pytest.raises(UsageError):
        encode_package_owners(owners)


def test_owners_must_be_utf8_strings() -> None:
    with pytest.raises(SignatureFormatError) as info:
        read_package_owners(core.SequenceOf(spec=core.PrintableString, value=["nuget"]).dump())
    assert info.value.code == NuCode.NU3003
    assert read_package_owners(encode_package_owners(["b", "A", "ü"])) == ("b", "A", "ü")


def test_commitment_type_rules() -> None:
    with pytest.raises(UsageError):
        encode_commitment_type_indication(SignatureType.UNKNOWN)
    oid = core.ObjectIdentifier(oids.PROOF_OF_ORIGIN).dump()
    empty_qualifiers = b"\x30" + bytes([len(oid) + 2]) + oid + b"\x30\x00"
    with pytest.raises(SignatureFormatError) as info:
        read_commitment_type(empty_qualifiers)
    assert info.value.code == NuCode.NU3000
    with pytest.raises(SignatureFormatError) as info:
        read_commitment_type(b"\x30\x05\x06\x03")  # truncated
    assert info.value.code == NuCode.NU3003


def test_signing_certificate_rule_failures_are_in_the_error_hierarchy() -> None:
    """An ESS rule failure is a SignatureFormatError without a code (the caller adds NU3011/NU3031/NU3021), so a
    caller that handles nuseal's errors handles it too (it was a bare Exception)."""
    from nuseal.signature._cms import RawAttribute, load_certificates  # noqa: PLC0415
    from nuseal.signature.attributes import SigningCertificateRule, check_signing_certificate  # noqa: PLC0415

    der = PackageArchive.from_path(VECTORS[0]).read_signature()
    cert = PrimarySignature.load(der).signer_certificate
    assert cert is not None
    (ref,) = load_certificates([cert.public_bytes(Encoding.DER)])
    value = encode_signing_certificate_v2(cert, HashAlgorithm.SHA256)
    twice = tuple(RawAttribute(oids.SIGNING_CERTIFICATE_V2, (value,), b"") for _ in range(2))
    with pytest.raises(SignatureFormatError) as refused:
        check_signing_certificate(twice, ref, SigningCertificateRule.V2_ONLY, issuer_serial_required=True)
    assert refused.value.code is None
    assert refused.value.message == "Multiple signing-certificate-v2 attributes are not allowed."
    check_signing_certificate(twice[:1], ref, SigningCertificateRule.V2_ONLY, issuer_serial_required=True)  # one: ok
