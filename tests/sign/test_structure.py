"""nuseal's signatures have the structure of the real nuget.org ones, field by field: the attribute OIDs and
their order, the algorithm identifiers' exact encodings, versions, SID choices, and how the SETs are sorted.
Values (names, times, hashes) differ and are not compared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, core

from nuseal.package import PackageArchive
from nuseal.signing import repository_sign_package, sign_package

from .conftest import (
    COUNTERSIGNATURE_OID,
    REPO_URL,
    TIMESTAMP_TOKEN_OID,
    VECTORS,
    Pki,
    signed_data,
    unsigned_attribute,
    unsigned_package,
)

REPOSITORY_PRIMARY = "RestSharp.106.11.4.nupkg"  # nuget.org repository primary signature
COUNTERSIGNED = "system.memory.4.5.3.nupkg"  # Microsoft author signature + nuget.org countersignature


def _real(name: str) -> cms.SignedData:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(f"missing vector {path}")
    return cms.ContentInfo.load(PackageArchive.from_path(path).read_signature())["content"]


def _shape(info: cms.SignerInfo) -> dict[str, object]:
    return {
        "version": info["version"].native,
        "sid": info["sid"].name,
        "digest_algorithm": info["digest_algorithm"].dump(),
        "signature_algorithm": info["signature_algorithm"].dump(),
        "signed": sorted(a["type"].dotted for a in info["signed_attrs"]),
        "unsigned": [] if isinstance(info["unsigned_attrs"], core.Void) else sorted(
            a["type"].dotted for a in info["unsigned_attrs"]),
        "values_per_attribute": [len(a["values"]) for a in info["signed_attrs"]],
    }


def _der_sorted(items: list[bytes]) -> bool:
    return items == sorted(items)


def _assert_same_shape(ours: cms.SignerInfo, real: cms.SignerInfo) -> None:
    assert _shape(ours) == _shape(real)
    # DER SET OF order: sorted by encoding, so the order follows from the contents; both must be sorted
    for info in (ours, real):
        assert _der_sorted([a.dump() for a in info["signed_attrs"]])


@pytest.fixture(scope="module")
def ours_der(pki: Pki) -> dict[str, bytes]:
    now = datetime.now(UTC)
    trust = pki.strict_trust()
    author = sign_package(unsigned_package(), pki.signer(), timestamper_url=pki.dev.tsa_url, now=now,
                          trust=trust).data
    countersigned = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                            owners=["dotnetframework", "Microsoft"], timestamper_url=pki.dev.tsa_url,
                                            now=now, trust=trust).data
    primary = repository_sign_package(unsigned_package(), pki.signer("repository"), v3_service_index_url=REPO_URL,
                                      owners=["outercurve"], timestamper_url=pki.dev.tsa_url, now=now,
                                      trust=trust).data
    return {"author": author, "countersigned": countersigned, "repository": primary}


@pytest.fixture
def ours(ours_der: dict[str, bytes]) -> dict[str, cms.SignedData]:
    """Parsed afresh for every test: asn1crypto trees touched by many tests become slow to walk."""
    return {name: signed_data(data) for name, data in ours_der.items()}


def test_repository_primary_has_nuget_orgs_structure(ours: dict[str, cms.SignedData]) -> None:
    mine, real = ours["repository"], _real(REPOSITORY_PRIMARY)
    assert mine["version"].native == real["version"].native
    assert [d.dump() for d in mine["digest_algorithms"]] == [d.dump() for d in real["digest_algorithms"]]
    assert mine["encap_content_info"]["content_type"].dotted == real["encap_content_info"]["content_type"].dotted
    _assert_same_shape(mine["signer_infos"][0], real["signer_infos"][0])


def test_countersignature_has_nuget_orgs_structure(ours: dict[str, cms.SignedData]) -> None:
    mine, real = ours["countersigned"], _real(COUNTERSIGNED)
    _assert_same_shape(mine["signer_infos"][0], real["signer_infos"][0])
    (my_counter,) = unsigned_attribute(mine["signer_infos"][0], COUNTERSIGNATURE_OID)
    (real_counter,) = unsigned_attribute(real["signer_infos"][0], COUNTERSIGNATURE_OID)
    _assert_same_shape(my_counter, real_counter)
    # the countersigner's only unsigned attribute is its own timestamp, over its own signature value
    assert [a["type"].dotted for a in my_counter["unsigned_attrs"]] == [TIMESTAMP_TOKEN_OID]


def test_certificate_sets_are_der_sorted_and_complete(ours: dict[str, cms.SignedData]) -> None:
    for name in ("author", "countersigned", "repository"):
        certs = [c.dump() for c in ours[name]["certificates"]]
        assert _der_sorted(certs), name
    assert _der_sorted([c.dump() for c in _real(COUNTERSIGNED)["certificates"]])
    names = {c.chosen.subject.native["common_name"] for c in ours["countersigned"]["certificates"]}
    assert names == {"nuseal dev author", "nuseal dev repository", "nuseal dev intermediate", "nuseal dev root"}
    # each timestamp token carries the TSA's whole chain, root included (SPEC "Certificates")
    token = unsigned_attribute(ours["author"]["signer_infos"][0], TIMESTAMP_TOKEN_OID)[0]
    names = {c.chosen.subject.native["common_name"] for c in token["content"]["certificates"]}
    assert names == {"nuseal dev tsa", "nuseal dev intermediate", "nuseal dev root"}


def test_owners_and_url_encodings_match_nuget_org(ours: dict[str, cms.SignedData]) -> None:
    def attribute(info: cms.SignerInfo, oid: str) -> bytes:
        (value,) = [a["values"][0] for a in info["signed_attrs"] if a["type"].dotted == oid]
        return bytes(value.dump())

    (counter,) = unsigned_attribute(ours["countersigned"]["signer_infos"][0], COUNTERSIGNATURE_OID)
    (real,) = unsigned_attribute(_real(COUNTERSIGNED)["signer_infos"][0], COUNTERSIGNATURE_OID)
    url_oid, owners_oid = "1.3.6.1.4.1.311.84.2.1.1.1", "1.3.6.1.4.1.311.84.2.1.1.2"
    assert attribute(counter, url_oid)[0] == attribute(real, url_oid)[0] == 0x16  # IA5String
    # nuget.org's owners for System.Memory are ['dotnetframework', 'Microsoft']: same list, same bytes
    assert attribute(counter, owners_oid) == attribute(real, owners_oid)


def test_signing_time_is_utctime_and_ess_v2_has_explicit_algorithm(ours: dict[str, cms.SignedData],
                                                                  tmp_path: Path) -> None:
    for info in (ours["author"]["signer_infos"][0], _real(COUNTERSIGNED)["signer_infos"][0]):
        (time_value,) = [a["values"][0] for a in info["signed_attrs"] if a["type"].dotted == "1.2.840.113549.1.9.5"]
        assert time_value.dump()[0] == 0x17  # UTCTime
        (ess,) = [a["values"][0] for a in info["signed_attrs"] if a["type"].dotted == "1.2.840.113549.1.9.16.2.47"]
        cert_id = ess["certs"][0]
        assert cert_id["hash_algorithm"]["algorithm"].dotted == "2.16.840.1.101.3.4.2.1"
        assert b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01" in cert_id.dump()  # written, not defaulted
        assert cert_id["issuer_serial"].native is not None
