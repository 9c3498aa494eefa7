"""Differential tests: nuseal and NuGet's own verifier (Microsoft's NuGet.Packaging 6.14.3 on .NET 8, from
``../shared/tools/nuget-oracle``) on every real vector and every tamper case, with the same trust bundles and
offline revocation. Same verdict and same NU error codes under ``verify``, ``verify`` allowing untrusted roots,
``accept`` and ``require``; same content hash.

The oracle runs NuGet's integrity and trust-and-validity providers only, so nuseal's presets are compared
without their allow lists. nuseal's own container hardening findings (errors without a code) are not NuGet's and
are left out of the code comparison; where NuGet cannot open a file at all, nuseal must fail it without codes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from nuseal.errors import PackageFormatError
from nuseal.package import PackageArchive
from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, Verifier
from support import oracle, tamper
from support.clock import VECTOR_NOW

pytestmark = pytest.mark.oracle

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
TAMPER_BASES = ["system.memory.4.5.3.nupkg", "RestSharp.106.11.4.nupkg", "Newtonsoft.Json.12.0.3.nupkg"]
OFFLINE = RevocationMode.OFFLINE
STORES = {
    "code_signing_roots": TrustStore.from_pem_file(oracle.CODESIGN_BUNDLE),
    "timestamping_roots": TrustStore.from_pem_file(oracle.TIMESTAMP_BUNDLE),
}
POLICIES = {
    "verifyCommand": VerificationPolicy.verify(revocation_mode=OFFLINE),
    "verifyCommandAllowUntrusted": VerificationPolicy.verify(revocation_mode=OFFLINE).evolve(allow_untrusted=True),
    "acceptMode": VerificationPolicy.accept(revocation_mode=OFFLINE),
    "requireMode": VerificationPolicy.require(revocation_mode=OFFLINE).evolve(allow_lists=()),
}
VERIFIERS = {name: Verifier(policy, **STORES) for name, policy in POLICIES.items()}

CASES = {f"{path.name}:original": path.read_bytes() for path in VECTORS}
for base in TAMPER_BASES:
    data = (SHARED / "vectors" / "nuget.org" / base).read_bytes()
    for name, fn in tamper.CASES.items():
        with contextlib.suppress(tamper.NotApplicable):  # a countersignature edit on a package without one
            CASES[f"{base}:{name}"] = fn(data)


@pytest.fixture(scope="module")
def reports() -> dict[str, oracle.VerifyReport]:
    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        pytest.fail(f"NuGet's verifier cannot run ({reason}): ../shared must sit beside the checkout")
    return oracle.verify_many(CASES, workers=2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_verdicts_codes_and_content_hash(case: str, reports: dict[str, oracle.VerifyReport]) -> None:
    report = reports[case]
    data = CASES[case]
    now = VECTOR_NOW  # NuGet's verdicts are cached from runs on the wall clock: see support.clock
    for name, verifier in VERIFIERS.items():
        ours = verifier.verify_bytes(data, now=now, source=case)
        theirs = report.verdicts.get(name)
        if report.fatal is not None or (theirs is not None and theirs.exception is not None):
            # NuGet could not open the archive (InvalidDataException while opening or reading it).
            detail = report.fatal or (theirs.exception if theirs else "")
            assert "InvalidDataException" in (detail or ""), detail
            assert not ours.valid, name
            assert ours.error_codes == frozenset(), (name, [str(i) for i in ours.errors])
            continue
        assert theirs is not None
        assert ours.error_codes == theirs.error_codes, (name, [str(i) for i in ours.errors], theirs.codes)
        nuget_warnings = set(theirs.warning_codes)
        our_warnings = {i.code.value for i in ours.warnings if i.code is not None}
        assert our_warnings == nuget_warnings, (name, our_warnings, nuget_warnings)
        hardening = [i for i in ours.errors if i.code is None]
        assert ours.valid == (bool(theirs.is_valid) and not hardening), (name, [str(i) for i in ours.issues])
    if report.fatal is None and report.content_hash:
        try:
            assert PackageArchive.from_bytes(data).content_hash() == report.content_hash
        except PackageFormatError:
            pytest.fail("NuGet computed a content hash for a file nuseal cannot read")


def test_every_vector_is_valid_for_nuget_too(reports: dict[str, oracle.VerifyReport]) -> None:
    for path in VECTORS:
        report = reports[f"{path.name}:original"]
        assert all(v.is_valid and not v.codes for v in report.policies), path.name
