"""The built-path cache of ChainBuilder and the parsing caches: reuse only when every input that decides the result
is the same (leaf, extra certificates, store, purpose, the validity states at the verification time), never for
revocation; a warm verifier gives the same verdicts as a fresh one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.signature._cms import name_key, name_key_of_der
from nuseal.trust import (
    CertificatePurpose,
    ChainBuilder,
    ChainStatus,
    RevocationCache,
    RevocationMode,
    RevocationResult,
    RevocationStatus,
    TrustStore,
)
from nuseal.trust.certificate import load_der_certificate
from nuseal.verify import VerificationPolicy, Verifier
from support.trust import NOW, Issued, Pki

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = sorted((SHARED / "vectors" / "nuget.org").glob("*.nupkg"))
OFFLINE = ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION


def _builder(*roots: Issued, cache: RevocationCache | None = None) -> ChainBuilder:
    store = TrustStore.from_certificates([r.cert for r in roots], source="test roots")
    return ChainBuilder(store, revocation_mode=RevocationMode.OFFLINE, cache=cache)


def test_same_leaf_at_a_time_in_another_validity_bucket_is_searched_again() -> None:
    # Two intermediates with one name and key: the old one expired 10 days ago, the new one is valid from 5 days
    # ago. Which one the chain goes through depends only on the verification time.
    pki = Pki(not_before=NOW - dt.timedelta(days=365), not_after=NOW + dt.timedelta(days=365))
    root = pki.issue("Root", ca=True)
    old = pki.issue("Signing CA", issuer=root, ca=True, not_after=NOW - dt.timedelta(days=10))
    new = pki.issue("Signing CA", issuer=root, ca=True, key=old.key, not_before=NOW - dt.timedelta(days=5))
    leaf = pki.issue("Signer", issuer=old, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    builder = _builder(root)
    then = NOW - dt.timedelta(days=100)

    def chain_at(at: dt.datetime) -> tuple[object, ...]:
        result = builder.build(
            leaf.cert, extra_certificates=[old.cert, new.cert], purpose=CertificatePurpose.CODE_SIGNING, at=at, now=NOW
        )
        assert result.statuses == OFFLINE  # a perfect chain each time
        return result.chain

    assert chain_at(then) == (leaf.cert, old.cert, root.cert)
    assert chain_at(NOW) == (leaf.cert, new.cert, root.cert)
    assert builder.cache_info() == (0, 2)
    # Other times in the same buckets reuse the paths found.
    assert chain_at(then + dt.timedelta(days=30)) == (leaf.cert, old.cert, root.cert)
    assert chain_at(NOW + dt.timedelta(days=30)) == (leaf.cert, new.cert, root.cert)
    assert builder.cache_info() == (2, 2)


def test_expiry_crossed_between_builds_is_reported() -> None:
    root, intermediate, leaf = Pki().code_signing_chain(not_after=NOW + dt.timedelta(days=1))
    builder = _builder(root)
    kwargs = {"extra_certificates": [intermediate.cert], "purpose": CertificatePurpose.CODE_SIGNING, "now": NOW}
    assert builder.build(leaf.cert, at=NOW, **kwargs).statuses == OFFLINE  # type: ignore[arg-type]
    later = builder.build(leaf.cert, at=NOW + dt.timedelta(days=2), **kwargs)  # type: ignore[arg-type]
    assert later.elements[0].statuses == OFFLINE | ChainStatus.NOT_TIME_VALID
    assert later.messages_for(ChainStatus.NOT_TIME_VALID) == ("NotTimeValid: certificate has expired",)
    assert later.verification_time == NOW + dt.timedelta(days=2)
    assert builder.cache_info() == (0, 2)


def test_revocation_is_checked_on_every_build() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    revocations = RevocationCache()
    builder = _builder(root, cache=revocations)
    kwargs = {"extra_certificates": [intermediate.cert], "purpose": CertificatePurpose.CODE_SIGNING, "at": NOW}
    assert builder.build(leaf.cert, now=NOW, **kwargs).statuses == OFFLINE  # type: ignore[arg-type]
    revoked_at = NOW - dt.timedelta(hours=3)
    revocations.put(
        RevocationCache.key(leaf.cert, intermediate.cert),
        RevocationResult(
            RevocationStatus.REVOKED, "revoked", NOW, revocation_time=revoked_at, next_update=NOW + dt.timedelta(days=1)
        ),
    )
    again = builder.build(leaf.cert, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert builder.cache_info() == (1, 1)  # the path was reused...
    assert ChainStatus.REVOKED in again.elements[0].statuses  # ...the revocation answer was not
    assert again.revocation_time == revoked_at
    assert again.elements[0].revocation is not None
    assert again.elements[0].revocation.status is RevocationStatus.REVOKED


def test_extra_certificates_store_and_purpose_are_part_of_the_key() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    builder = _builder(root)

    def statuses(extra: list[Issued], purpose: CertificatePurpose = CertificatePurpose.CODE_SIGNING) -> ChainStatus:
        return builder.build(
            leaf.cert, extra_certificates=[c.cert for c in extra], purpose=purpose, at=NOW, now=NOW
        ).statuses

    assert statuses([intermediate]) == OFFLINE
    assert ChainStatus.PARTIAL_CHAIN in statuses([])
    assert ChainStatus.NOT_VALID_FOR_USAGE in statuses([intermediate], CertificatePurpose.TIMESTAMPING)
    builder.trust_store = TrustStore.empty()
    assert ChainStatus.UNTRUSTED_ROOT in statuses([intermediate, root])
    assert builder.cache_info() == (0, 4)


def test_a_reused_path_starts_with_the_leaf_object_given() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    builder = _builder(root)
    copies = [load_der_certificate(leaf.cert.public_bytes(Encoding.DER)) for _ in range(2)]
    results = [
        builder.build(
            copy, extra_certificates=[intermediate.cert], purpose=CertificatePurpose.CODE_SIGNING, at=NOW, now=NOW
        )
        for copy in copies
    ]
    assert builder.cache_info() == (1, 1)
    assert results[0].leaf is copies[0]
    assert results[1].leaf is copies[1]


def test_name_keys_are_memoised_by_encoding_and_errors_are_not() -> None:
    root = Pki().issue("Memo Root, Inc.", ca=True)
    encoded = asn1_x509.Certificate.load(root.cert.public_bytes(Encoding.DER))["tbs_certificate"]["subject"].dump()
    assert name_key_of_der(encoded) == name_key(asn1_x509.Name.load(encoded))
    assert name_key_of_der(encoded) is name_key_of_der(encoded)
    broken = encoded[:-3]
    for _ in range(2):
        with pytest.raises(ValueError):
            name_key_of_der(broken)


@pytest.mark.skipif(not VECTORS, reason="no vectors in ../shared/vectors/nuget.org")
def test_warm_verifier_gives_the_verdicts_of_fresh_ones() -> None:
    codesign = TrustStore.from_pem_file(SHARED / "trust" / "codesignctl.pem")
    timestamp = TrustStore.from_pem_file(SHARED / "trust" / "timestampctl.pem")
    policy = VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE)
    warm = Verifier(policy, code_signing_roots=codesign, timestamping_roots=timestamp)
    moments = [dt.datetime(2026, 12, 7, tzinfo=dt.UTC), dt.datetime(2060, 1, 1, tzinfo=dt.UTC)]
    for now in moments:  # the second moment is after every vector certificate has expired
        for _ in range(2):
            for vector in VECTORS:
                fresh = Verifier(policy, code_signing_roots=codesign, timestamping_roots=timestamp)
                expected = fresh.verify_path(str(vector), now=now)
                got = warm.verify_path(str(vector), now=now)
                assert (got.valid, got.issues, got.signatures) == (expected.valid, expected.issues, expected.signatures)
