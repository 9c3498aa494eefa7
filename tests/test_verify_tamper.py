"""The tamper matrix (``support.tamper``): one test per case, each asserting the codes NuGet reports for it.

Expectations are NuGet 6.14's behaviour, established with its own verifier (``../shared/tools/nuget-oracle``;
``test_verify_oracle.py`` re-checks every case against it live, ``support/oracle_findings.json`` records it).
``None`` means NuGet cannot open the file at all (``InvalidDataException``: "not a valid package file", no code).
Judged at ``VECTOR_NOW``: the vector's certificates expire.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nuseal.codes import NuCode
from nuseal.package import StructureCode
from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, Verifier
from support import tamper
from support.clock import VECTOR_NOW

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASE_NAME = "system.memory.4.5.3.nupkg"
BASE = (SHARED / "vectors" / "nuget.org" / BASE_NAME).read_bytes()  # author + repository
STORES = {
    "code_signing_roots": TrustStore.from_pem_file(SHARED / "trust" / "codesignctl.pem"),
    "timestamping_roots": TrustStore.from_pem_file(SHARED / "trust" / "timestampctl.pem"),
}
VERIFY = Verifier(VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE), **STORES)
ACCEPT = Verifier(VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE), **STORES)
UNREADABLE = None
VALID: frozenset[NuCode] = frozenset()

# case -> NuGet's error codes under `dotnet nuget verify` (VALID: passes; UNREADABLE: cannot be opened)
EXPECTED: dict[str, frozenset[NuCode] | None] = {
    "entry_data_byte": frozenset({NuCode.NU3008}),
    "entry_content_changed": frozenset({NuCode.NU3008}),
    "local_header_time": frozenset({NuCode.NU3008}),
    "central_directory_time": frozenset({NuCode.NU3008}),
    "central_directory_comment": frozenset({NuCode.NU3008}),
    "entry_added": frozenset({NuCode.NU3008}),
    "entry_added_after_signature": frozenset({NuCode.NU3008}),
    "entry_removed": frozenset({NuCode.NU3008}),
    "entry_renamed": frozenset({NuCode.NU3008}),
    "entry_renamed_same_length": frozenset({NuCode.NU3008}),
    "signature_value_byte": frozenset({NuCode.NU3012, NuCode.NU3019}),
    "signature_content_hash_byte": frozenset({NuCode.NU3008, NuCode.NU3012}),
    "signature_content_version": frozenset({NuCode.NU3007}),
    "signature_signing_time_byte": frozenset({NuCode.NU3012}),
    "signature_signer_certificate_byte": frozenset({NuCode.NU3011}),
    "signature_signer_public_key_byte": frozenset({NuCode.NU3011}),
    "signature_intermediate_certificate_byte": frozenset({NuCode.NU3012}),
    "signature_timestamp_value_byte": frozenset({NuCode.NU3021}),
    "signature_timestamp_certificate_byte": frozenset({NuCode.NU3021}),
    "signature_countersignature_value_byte": frozenset({NuCode.NU3012, NuCode.NU3019}),
    "signature_der_truncated": frozenset({NuCode.NU3003}),
    "signature_empty": frozenset({NuCode.NU3003}),
    "signature_deflated": frozenset({NuCode.NU3005}),
    "signature_flag_utf8": frozenset({NuCode.NU3005}),
    "signature_flag_data_descriptor": frozenset({NuCode.NU3005}),
    "signature_flag_data_descriptor_central_only": frozenset({NuCode.NU3005}),
    "signature_external_attributes": frozenset({NuCode.NU3005}),
    "signature_local_extra_field": VALID,
    "signature_renamed_p7t": frozenset({NuCode.NU3004}),
    "signature_renamed_uppercase": frozenset({NuCode.NU3004}),
    "signature_duplicated": frozenset({NuCode.NU3005}),
    "signature_moved_first": VALID,
    "signature_moved_middle": VALID,
    "signature_local_first_cd_last": VALID,
    "signature_local_last_cd_first": VALID,
    "signature_removed": frozenset({NuCode.NU3004}),
    "prefix_offsets_kept": UNREADABLE,
    "prefix_offsets_rewritten": frozenset({NuCode.NU3008}),  # the prefix is hashed (NuGet quirk)
    "bytes_appended": frozenset({NuCode.NU3008}),
    "eocd_comment_added": frozenset({NuCode.NU3008}),
    "truncated_mid_data": UNREADABLE,
    "truncated_mid_cd": UNREADABLE,
    "truncated_mid_eocd": UNREADABLE,
    "not_a_zip_text": UNREADABLE,
    "not_a_zip_empty": UNREADABLE,
    "absurd_central_sizes": frozenset({NuCode.NU3008}),
    "absurd_local_sizes": frozenset({NuCode.NU3008}),
    "absurd_entry_count": UNREADABLE,
    "absurd_cd_offset": UNREADABLE,
    "absurd_cd_size": frozenset({NuCode.NU3008}),
}


def test_every_case_has_an_expectation() -> None:
    assert set(EXPECTED) == set(tamper.CASES)


def test_expectations_are_what_nuget_recorded() -> None:
    """Each expectation matches NuGet's recorded verdict on the same bytes (``support/oracle_findings.json``,
    written by ``support.oracle_findings`` from live oracle runs), for every case recorded there."""
    recorded = json.loads((Path(__file__).parent / "support" / "oracle_findings.json").read_text())["results"]
    checked = 0
    for case, expected in EXPECTED.items():
        found = recorded.get(f"{BASE_NAME}|{case}")
        if found is None:
            continue
        verdict = found["policies"].get("verifyCommand")
        if expected is UNREADABLE:
            assert found["fatal"] or (verdict and verdict["exception"]), case
        else:
            assert verdict is not None, case
            assert {c for level, c in verdict["codes"] if level == "error"} == {c.value for c in expected}, case
        checked += 1
    assert checked == len(EXPECTED)  # re-record (python -m support.oracle_findings) after adding a case


@pytest.mark.parametrize("case", sorted(tamper.CASES))
def test_tamper_case(case: str) -> None:
    tampered = tamper.CASES[case](BASE)
    assert tampered != BASE
    result = VERIFY.verify_bytes(tampered, now=VECTOR_NOW, source=case)
    expected = EXPECTED[case]
    if expected is UNREADABLE:
        assert not result.valid
        assert [i.code for i in result.errors] == [None]
        assert "not a valid package file" in result.errors[0].message
        return
    coded = {i.code for i in result.errors if i.code is not None}
    assert coded == expected, [str(i) for i in result.errors]
    assert result.valid is (not expected and not result.errors)


@pytest.mark.parametrize("case", ["signature_moved_first", "signature_moved_middle", "signature_local_extra_field"])
def test_moved_signature_keeps_the_content_hash(case: str) -> None:
    from nuseal.package import PackageArchive  # noqa: PLC0415

    assert PackageArchive.from_bytes(tamper.CASES[case](BASE)).content_hash() == PackageArchive.from_bytes(
        BASE
    ).content_hash()


@pytest.mark.parametrize("case", ["signature_deflated", "signature_duplicated", "signature_signer_certificate_byte"])
def test_accept_mode_tolerates_illegal_signatures_as_nuget_does(case: str) -> None:
    """NuGet's accept mode (restore's default) allows illegal signatures: valid, no issue at all."""
    result = ACCEPT.verify_bytes(tamper.CASES[case](BASE), now=VECTOR_NOW)
    assert result.valid and not result.errors


def test_absurd_sizes_are_also_a_hardening_error() -> None:
    result = VERIFY.verify_bytes(tamper.absurd_central_sizes(BASE), now=VECTOR_NOW)
    assert not result.valid and result.structure, result.issues
    assert {p.code for p in result.structure} & {StructureCode.ENTRY_TOO_LARGE, StructureCode.DATA_OUT_OF_BOUNDS}
    # each typed finding is also an error without a NU code in the report
    assert len([i for i in result.errors if i.code is None]) == len(result.structure)
