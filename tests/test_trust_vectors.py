"""nuseal.trust on the 12 real nuget.org packages: chains, statuses and requirements, offline.

What NuGet 6.14 (the oracle, ``run-oracle.sh verify ... --trust-bundle codesignctl.pem --timestamp-bundle
timestampctl.pem``, offline revocation) reports for every one of these signatures and timestamps: the chain
builds to a trusted root and its only statuses are ``RevocationStatusUnknown`` and ``OfflineRevocation``
("...chain validation failed with error(s): RevocationStatusUnknown, OfflineRevocation"), with the message
"RevocationStatusUnknown: unable to get certificate CRL".
"""

from __future__ import annotations

import datetime as dt
import zipfile

import pytest

from nuseal.codes import NuCode
from nuseal.signature import PrimarySignature, Signature
from nuseal.timestamp import timestamps_of
from nuseal.trust import (
    DEFAULT_OBSERVED_STATUSES,
    CertificatePurpose,
    ChainBuilder,
    ChainStatus,
    RevocationMode,
    TrustStore,
    check_certificate_requirements,
    is_self_issued,
)
from nuseal.trust.certificate import der
from support.trust import (
    CODESIGN_BUNDLE,
    TIMESTAMP_BUNDLE,
    VECTORS,
    VectorSignature,
    vector_names,
    vector_signatures,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
OFFLINE_ONLY = ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION


@pytest.fixture(scope="module")
def code_signing_store() -> TrustStore:
    return TrustStore.from_pem_file(CODESIGN_BUNDLE)


@pytest.fixture(scope="module")
def timestamping_store() -> TrustStore:
    return TrustStore.from_pem_file(TIMESTAMP_BUNDLE)


def _all_signatures() -> list[VectorSignature]:
    return [sig for name in vector_names() for sig in vector_signatures(name)]


SIGNATURES = _all_signatures()
IDS = [f"{s.package}:{s.kind}" for s in SIGNATURES]


def test_vector_inventory() -> None:
    # 12 packages: 7 author-signed and countersigned, 5 repository-signed -> 19 signatures, each timestamped once.
    assert len(vector_names()) == 12
    assert len(SIGNATURES) == 19
    assert sum(s.kind == "countersignature" for s in SIGNATURES) == 7
    assert all(len(s.timestamps) == 1 for s in SIGNATURES)


def test_bundles_parse_completely(code_signing_store: TrustStore, timestamping_store: TrustStore) -> None:
    # Counts from ../shared/trust/README.md; 17 roots have serial 0 and must not be lost.
    assert (len(code_signing_store), code_signing_store.skipped) == (305, 0)
    assert (len(timestamping_store), timestamping_store.skipped) == (327, 0)


@pytest.mark.parametrize("signature", SIGNATURES, ids=IDS)
def test_signer_chain_offline_at_timestamp(signature: VectorSignature, code_signing_store: TrustStore) -> None:
    builder = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE)
    at = signature.timestamps[0].gen_time
    result = builder.build(
        signature.signer,
        extra_certificates=signature.certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=at,
        now=NOW,
    )
    assert result.root_in_store
    assert is_self_issued(result.root)
    assert der(result.leaf) == der(signature.signer)
    assert result.statuses == OFFLINE_ONLY
    assert not result.statuses & DEFAULT_OBSERVED_STATUSES
    assert not result.succeeded  # as NuGet's chain.Build(): unknown revocation is a status
    assert result.messages_for(ChainStatus.REVOCATION_STATUS_UNKNOWN) == (
        "RevocationStatusUnknown: unable to get certificate CRL",
    )
    # ExcludeRoot: every element but the root carries the offline statuses, the root none.
    assert [e.statuses for e in result.elements] == [OFFLINE_ONLY] * (len(result.chain) - 1) + [ChainStatus.NO_ERROR]
    assert result.revocation_time is None


@pytest.mark.parametrize("signature", SIGNATURES, ids=IDS)
def test_timestamp_chain_offline(signature: VectorSignature, timestamping_store: TrustStore) -> None:
    timestamp = signature.timestamps[0]
    builder = ChainBuilder(timestamping_store, revocation_mode=RevocationMode.OFFLINE)
    # NuGet builds the timestamp chain at the current time (IgnoreNotTimeValid); check both moments.
    for at in (timestamp.gen_time, NOW):
        result = builder.build(
            timestamp.signer,
            extra_certificates=timestamp.certificates,
            purpose=CertificatePurpose.TIMESTAMPING,
            at=at,
            now=NOW,
        )
        assert result.root_in_store
        assert result.statuses & ~ChainStatus.NOT_TIME_VALID == OFFLINE_ONLY
        assert result.errors == OFFLINE_ONLY


@pytest.mark.parametrize("signature", SIGNATURES, ids=IDS)
def test_requirements_pass(signature: VectorSignature) -> None:
    assert check_certificate_requirements(signature.signer, purpose=CertificatePurpose.CODE_SIGNING, now=NOW) == []
    timestamp_signer = signature.timestamps[0].signer
    assert check_certificate_requirements(timestamp_signer, purpose=CertificatePurpose.TIMESTAMPING, now=NOW) == []


def test_signer_certificates_have_expired_yet_chains_hold(code_signing_store: TrustStore) -> None:
    # The point of IgnoreNotTimeValid + the timestamp: most signing certificates have expired by NOW.
    expired = [s for s in SIGNATURES if s.signer.not_valid_after_utc < NOW]
    assert len(expired) >= 15
    builder = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE)
    sig = expired[0]
    result = builder.build(
        sig.signer, extra_certificates=sig.certificates, purpose=CertificatePurpose.CODE_SIGNING, at=NOW, now=NOW
    )
    assert ChainStatus.NOT_TIME_VALID in result.statuses
    assert ChainStatus.NOT_TIME_VALID in result.ignored
    assert result.errors == OFFLINE_ONLY
    strict = builder.build(
        sig.signer,
        extra_certificates=sig.certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=NOW,
        now=NOW,
        ignore_not_time_valid=False,
    )
    assert ChainStatus.NOT_TIME_VALID in strict.errors
    assert "NotTimeValid: certificate has expired" in strict.messages_for(ChainStatus.NOT_TIME_VALID)


def test_empty_store_gives_untrusted_root() -> None:
    sig = vector_signatures("ILMerge.3.0.41.nupkg")[0]
    store = TrustStore.empty("no trust store found")
    result = ChainBuilder(store, revocation_mode=RevocationMode.OFFLINE).build(
        sig.signer,
        extra_certificates=sig.certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=sig.timestamps[0].gen_time,
        now=NOW,
    )
    # The bag carries the root, so the chain is complete but ends outside the (empty) store: NU3018 + NU3042.
    assert len(result.chain) == 3
    assert ChainStatus.UNTRUSTED_ROOT in result.statuses
    assert not result.root_in_store
    assert result.trust_store_source == "no trust store found"
    assert result.elements[-1].statuses == ChainStatus.UNTRUSTED_ROOT


def test_timestamp_signer_for_code_signing_is_not_valid_for_usage(code_signing_store: TrustStore) -> None:
    # A TSA certificate (EKU timeStamping only) asked to act as a code signer, and the reverse.
    sig = vector_signatures("RestSharp.106.11.4.nupkg")[0]
    timestamp = sig.timestamps[0]
    builder = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE)
    as_signer = builder.build(
        timestamp.signer,
        extra_certificates=timestamp.certificates,
        purpose=CertificatePurpose.CODE_SIGNING,
        at=timestamp.gen_time,
        now=NOW,
    )
    assert ChainStatus.NOT_VALID_FOR_USAGE in as_signer.statuses
    assert as_signer.statuses & DEFAULT_OBSERVED_STATUSES == ChainStatus.NOT_VALID_FOR_USAGE
    assert as_signer.messages_for(ChainStatus.NOT_VALID_FOR_USAGE) == (
        "NotValidForUsage: The certificate has invalid policy.",
    )
    as_tsa = ChainBuilder(TrustStore.from_pem_file(TIMESTAMP_BUNDLE), revocation_mode=RevocationMode.OFFLINE).build(
        sig.signer,
        extra_certificates=sig.certificates,
        purpose=CertificatePurpose.TIMESTAMPING,
        at=timestamp.gen_time,
        now=NOW,
    )
    assert ChainStatus.NOT_VALID_FOR_USAGE in as_tsa.statuses


def test_missing_intermediate_is_partial_chain(code_signing_store: TrustStore) -> None:
    sig = vector_signatures("system.buffers.4.4.0.nupkg")[0]
    result = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE).build(
        sig.signer,
        extra_certificates=(),
        purpose=CertificatePurpose.CODE_SIGNING,
        at=sig.timestamps[0].gen_time,
        now=NOW,
    )
    assert result.chain == (sig.signer,)
    assert ChainStatus.PARTIAL_CHAIN in result.statuses
    assert not result.root_in_store


def test_requirements_report_codes_for_a_real_rsa_signer_used_too_early() -> None:
    sig = vector_signatures("dockpanelsuite.3.1.0.nupkg")[0]
    before = sig.signer.not_valid_before_utc - dt.timedelta(seconds=1)
    failures = check_certificate_requirements(sig.signer, purpose=CertificatePurpose.CODE_SIGNING, now=before)
    assert [f.code for f in failures] == [NuCode.NU3017]
    failures = check_certificate_requirements(sig.signer, purpose=CertificatePurpose.TIMESTAMPING, now=before)
    assert [f.code for f in failures] == [NuCode.NU3025]


@pytest.mark.parametrize("name", vector_names())
def test_with_nuseal_signature_model(name: str, code_signing_store: TrustStore, timestamping_store: TrustStore) -> None:
    # The same judgement through nuseal.signature's model, at NuGet's VerificationTime (timestamp UpperLimit).
    with zipfile.ZipFile(VECTORS / name) as archive:
        primary = PrimarySignature.load(archive.read(".signature.p7s"))
    signatures: list[Signature] = [primary]
    countersignature = primary.repository_countersignature()
    if countersignature is not None:
        signatures.append(countersignature)
    signer_builder = ChainBuilder(code_signing_store, revocation_mode=RevocationMode.OFFLINE)
    timestamp_builder = ChainBuilder(timestamping_store, revocation_mode=RevocationMode.OFFLINE)
    for signature in signatures:
        timestamp = timestamps_of(signature)[0]
        assert signature.signer_certificate is not None and timestamp.signer_certificate is not None
        result = signer_builder.build(
            signature.signer_certificate,
            extra_certificates=primary.certificates,
            purpose=CertificatePurpose.CODE_SIGNING,
            at=timestamp.upper_limit,
            now=NOW,
        )
        assert result.root_in_store and result.statuses == OFFLINE_ONLY
        stamp = timestamp_builder.build(
            timestamp.signer_certificate,
            extra_certificates=timestamp.certificates,
            purpose=CertificatePurpose.TIMESTAMPING,
            at=NOW,
            now=NOW,
        )
        assert stamp.root_in_store and stamp.statuses == OFFLINE_ONLY
