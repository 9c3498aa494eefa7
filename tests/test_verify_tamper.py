"""The tamper matrix: one test per case, each asserting the codes NuGet reports for it.

Expectations are NuGet 6.14's behaviour, established with its own verifier (``../shared/tools/nuget-oracle``;
``test_verify_oracle.py`` re-checks every case against it live). ``None`` means NuGet cannot open the file
at all (``InvalidDataException``: "not a valid package file", no code).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import tamper
from nuseal.codes import NuCode
from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, Verifier

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASE = (SHARED / "vectors" / "nuget.org" / "system.memory.4.5.3.nupkg").read_bytes()  # author + repository
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
    "data_byte": frozenset({NuCode.NU3008}),
    "local_header_byte": frozenset({NuCode.NU3008}),
    "central_directory_byte": frozenset({NuCode.NU3008}),
    "entry_added": frozenset({NuCode.NU3008}),
    "entry_removed": frozenset({NuCode.NU3008}),
    "entry_renamed": frozenset({NuCode.NU3008}),
    "bytes_prepended_offsets_kept": UNREADABLE,
    "bytes_prepended_offsets_rebased": frozenset({NuCode.NU3008}),  # the prefix is hashed (NuGet quirk)
    "bytes_appended": frozenset({NuCode.NU3008}),
    "comment_changed": frozenset({NuCode.NU3008}),
    "signature_compressed": frozenset({NuCode.NU3005}),
    "signature_flag_utf8": frozenset({NuCode.NU3005}),
    "signature_flag_data_descriptor": frozenset({NuCode.NU3005}),
    "signature_external_attributes": frozenset({NuCode.NU3005}),
    "signature_local_extra_field": VALID,
    "signature_renamed_p7t": frozenset({NuCode.NU3004}),
    "signature_renamed_case": frozenset({NuCode.NU3004}),
    "signature_twice": frozenset({NuCode.NU3005}),
    "signature_moved_first": VALID,
    "signature_moved_middle": VALID,
    "signature_removed": frozenset({NuCode.NU3004}),
    "signature_value_byte": frozenset({NuCode.NU3012, NuCode.NU3019}),
    "signature_content_byte": frozenset({NuCode.NU3008, NuCode.NU3012}),
    "signature_certificate_byte": frozenset({NuCode.NU3011}),
    "signature_truncated_der": frozenset({NuCode.NU3003}),
    "truncated_in_data": UNREADABLE,
    "truncated_in_central_directory": UNREADABLE,
    "truncated_in_eocd": UNREADABLE,
    "not_a_zip_text": UNREADABLE,
    "not_a_zip_empty": UNREADABLE,
    "absurd_entry_sizes": frozenset({NuCode.NU3008}),
    "absurd_entry_count": UNREADABLE,
    "absurd_cd_offset": UNREADABLE,
}


def test_every_case_has_an_expectation() -> None:
    assert set(EXPECTED) == set(tamper.CASES)


@pytest.mark.parametrize("case", sorted(tamper.CASES))
def test_tamper_case(case: str) -> None:
    tampered = tamper.CASES[case](BASE)
    assert tampered != BASE
    result = VERIFY.verify_bytes(tampered, now=datetime.now(UTC), source=case)
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


@pytest.mark.parametrize("case", ["signature_compressed", "signature_twice", "signature_certificate_byte"])
def test_accept_mode_tolerates_illegal_signatures_as_nuget_does(case: str) -> None:
    """NuGet's accept mode (restore's default) allows illegal signatures: valid, no issue at all."""
    result = ACCEPT.verify_bytes(tamper.CASES[case](BASE), now=datetime.now(UTC))
    assert result.valid and not result.errors


def test_absurd_sizes_are_also_a_hardening_error() -> None:
    result = VERIFY.verify_bytes(tamper.absurd_entry_sizes(BASE), now=datetime.now(UTC))
    assert any(i.code is None and "unsafe" in i.message for i in result.errors)
