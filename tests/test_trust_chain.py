"""Chain building on synthetic PKIs: path choice, every .NET status nuseal produces, NuGet's flag handling."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from nuseal.codes import Level, NuCode
from nuseal.errors import UsageError
from nuseal.trust import (
    DEFAULT_OBSERVED_STATUSES,
    CertificatePurpose,
    ChainBuilder,
    ChainResult,
    ChainStatus,
    RevocationMode,
    TrustStore,
    dotnet_name,
    untrusted_root_warning,
)
from support.trust import NOW, Issued, Pki, rsa_key

OFFLINE = ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION


def build(
    store: TrustStore,
    leaf: Issued,
    extra: list[Issued],
    *,
    purpose: CertificatePurpose = CertificatePurpose.CODE_SIGNING,
    at: dt.datetime = NOW,
    ignore_not_time_valid: bool = True,
) -> ChainResult:
    builder = ChainBuilder(store, revocation_mode=RevocationMode.OFFLINE)
    return builder.build(
        leaf.cert,
        extra_certificates=[c.cert for c in extra],
        purpose=purpose,
        at=at,
        ignore_not_time_valid=ignore_not_time_valid,
        now=NOW,
    )


def trusting(*roots: Issued) -> TrustStore:
    return TrustStore.from_certificates([r.cert for r in roots], source="test roots")


def test_good_chain_has_only_offline_revocation_statuses() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    result = build(trusting(root), leaf, [intermediate, root])
    assert result.chain == (leaf.cert, intermediate.cert, root.cert)
    assert result.root_in_store
    assert result.statuses == OFFLINE
    assert not result.statuses & DEFAULT_OBSERVED_STATUSES
    assert result.trust_store_source == "test roots"


def test_store_root_is_used_even_when_bag_lacks_root() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    result = build(trusting(root), leaf, [intermediate])
    assert result.root == root.cert
    assert result.root_in_store


def test_leaf_without_eku_is_valid_for_any_usage() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root)  # no EKU extension at all
    for purpose in CertificatePurpose:
        assert ChainStatus.NOT_VALID_FOR_USAGE not in build(trusting(root), leaf, [], purpose=purpose).statuses


def test_tsa_certificate_without_timestamping_eku() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    tsa = pki.issue("TSA", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    result = build(trusting(root), tsa, [], purpose=CertificatePurpose.TIMESTAMPING)
    assert result.statuses & DEFAULT_OBSERVED_STATUSES == ChainStatus.NOT_VALID_FOR_USAGE
    assert result.elements[0].statuses & ChainStatus.NOT_VALID_FOR_USAGE


def test_intermediate_eku_restricts_the_chain() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    intermediate = pki.issue("TLS CA", issuer=root, ca=True, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    leaf = pki.issue("Signer", issuer=intermediate, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert ChainStatus.NOT_VALID_FOR_USAGE in build(trusting(root), leaf, [intermediate]).statuses
    any_eku = pki.issue("Any CA", issuer=root, ca=True, eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    leaf2 = pki.issue("Signer 2", issuer=any_eku, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert ChainStatus.NOT_VALID_FOR_USAGE not in build(trusting(root), leaf2, [any_eku]).statuses


def test_expired_leaf_intermediate_and_root_are_ignored_with_ignore_not_time_valid() -> None:
    past = Pki(not_before=NOW - dt.timedelta(days=3000), not_after=NOW - dt.timedelta(days=1000))
    root, intermediate, leaf = past.code_signing_chain()
    result = build(trusting(root), leaf, [intermediate], at=NOW)
    assert result.statuses == OFFLINE | ChainStatus.NOT_TIME_VALID
    assert all(ChainStatus.NOT_TIME_VALID in e.statuses for e in result.elements)
    assert result.errors == OFFLINE
    assert result.messages_for(ChainStatus.NOT_TIME_VALID) == ("NotTimeValid: certificate has expired",)
    strict = build(trusting(root), leaf, [intermediate], at=NOW, ignore_not_time_valid=False)
    assert strict.errors == OFFLINE | ChainStatus.NOT_TIME_VALID
    # Judged at a time inside the validity period (the timestamp), nothing is out of time.
    assert build(trusting(root), leaf, [intermediate], at=NOW - dt.timedelta(days=2000)).statuses == OFFLINE


def test_not_yet_valid_leaf_message() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Future", issuer=root, not_before=NOW + dt.timedelta(days=1))
    result = build(trusting(root), leaf, [], ignore_not_time_valid=False)
    assert result.messages_for(ChainStatus.NOT_TIME_VALID) == ("NotTimeValid: certificate is not yet valid",)


def test_self_signed_leaf_outside_store_is_untrusted_root() -> None:
    pki = Pki()
    self_signed = pki.issue("Self Signed Signer", eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    result = build(TrustStore.empty(), self_signed, [])
    assert result.chain == (self_signed.cert,)
    assert result.statuses == ChainStatus.UNTRUSTED_ROOT  # a root: no revocation check (ExcludeRoot)
    assert result.messages_for(ChainStatus.UNTRUSTED_ROOT) == ("UntrustedRoot: self-signed certificate",)
    assert not result.root_in_store
    # Trusted explicitly, the same certificate is a one-element trusted chain.
    assert build(trusting(self_signed), self_signed, []).statuses == ChainStatus.NO_ERROR


def test_untrusted_root_in_bag() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    other_root = Pki().issue("Other Root", ca=True, key=rsa_key("other"))
    result = build(trusting(other_root), leaf, [intermediate, root])
    assert result.statuses == OFFLINE | ChainStatus.UNTRUSTED_ROOT
    assert result.elements[-1].statuses == ChainStatus.UNTRUSTED_ROOT
    assert result.messages_for(ChainStatus.UNTRUSTED_ROOT) == (
        "UntrustedRoot: self-signed certificate in certificate chain",
    )


def test_cross_certificate_prefers_trusted_root() -> None:
    pki = Pki()
    old_root = pki.issue("Old Root", ca=True)
    new_root = pki.issue("New Root", ca=True)
    # The new root cross-signed by the old root: same subject and key as the self-signed new root.
    cross = pki.issue("New Root", issuer=old_root, ca=True, key=new_root.key)
    leaf = pki.issue("Signer", issuer=new_root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    trusted_new = build(trusting(new_root), leaf, [cross, old_root])
    assert trusted_new.chain == (leaf.cert, new_root.cert)
    assert trusted_new.root_in_store
    trusted_old = build(trusting(old_root), leaf, [cross, new_root])
    assert trusted_old.chain == (leaf.cert, cross.cert, old_root.cert)
    assert trusted_old.root_in_store


def test_wrong_issuer_signature_is_not_signature_valid() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, key_ids=False, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    # A different certificate with the root's name but another key, and no key identifiers to tell them apart.
    fake_root = pki.issue("Root", ca=True, key=rsa_key("fake root"), key_ids=False)
    result = build(trusting(fake_root), leaf, [])
    assert result.chain == (leaf.cert, fake_root.cert)
    assert result.elements[0].statuses & ChainStatus.NOT_SIGNATURE_VALID
    assert result.statuses & DEFAULT_OBSERVED_STATUSES == ChainStatus.NOT_SIGNATURE_VALID


def test_key_identifier_mismatch_leaves_partial_chain() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Signer", issuer=root, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    fake_root = pki.issue("Root", ca=True, key=rsa_key("fake root"))
    result = build(trusting(fake_root), leaf, [])
    assert result.chain == (leaf.cert,)
    assert result.statuses == OFFLINE | ChainStatus.PARTIAL_CHAIN
    assert result.messages_for(ChainStatus.PARTIAL_CHAIN) == ("PartialChain: unable to get local issuer certificate",)


def test_issuer_that_is_not_a_ca() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    not_ca = pki.issue("Not A CA", issuer=root, ca=False)
    leaf = pki.issue("Signer", issuer=not_ca, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    result = build(trusting(root), leaf, [not_ca])
    assert result.elements[1].statuses & ChainStatus.INVALID_BASIC_CONSTRAINTS
    assert set(result.messages_for(ChainStatus.INVALID_BASIC_CONSTRAINTS)) == {
        "InvalidBasicConstraints: invalid CA certificate",
        "InvalidBasicConstraints: key usage does not include certificate signing",
    }


def test_path_length_constraint() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True, path_length=0)
    intermediate = pki.issue("Intermediate", issuer=root, ca=True)
    leaf = pki.issue("Signer", issuer=intermediate, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    result = build(trusting(root), leaf, [intermediate])
    assert result.elements[2].statuses == ChainStatus.INVALID_BASIC_CONSTRAINTS
    assert result.messages_for(ChainStatus.INVALID_BASIC_CONSTRAINTS) == (
        "InvalidBasicConstraints: path length constraint exceeded",
    )
    # path_length=1 allows one intermediate
    root1 = pki.issue("Root 1", ca=True, path_length=1)
    intermediate1 = pki.issue("Intermediate 1", issuer=root1, ca=True)
    leaf1 = pki.issue("Signer 1", issuer=intermediate1)
    assert build(trusting(root1), leaf1, [intermediate1]).statuses == OFFLINE


def test_unknown_critical_extension() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    leaf = pki.issue("Signer", issuer=root, extra=[(unknown, True)])
    result = build(trusting(root), leaf, [])
    assert result.statuses & DEFAULT_OBSERVED_STATUSES == ChainStatus.HAS_NOT_SUPPORTED_CRITICAL_EXTENSION
    non_critical = pki.issue("Signer 2", issuer=root, extra=[(unknown, False)])
    assert build(trusting(root), non_critical, []).statuses == OFFLINE


def test_weak_leaf_still_chains() -> None:
    # Key size and signature algorithm are NuGet requirements (NU3013/NU3014), not chain statuses.
    pki = Pki()
    root = pki.issue("Root", ca=True)
    leaf = pki.issue("Weak", issuer=root, key=rsa_key("weak", 1024), hash_algorithm=hashes.SHA512(), pss=True)
    assert build(trusting(root), leaf, []).statuses == OFFLINE


def test_duplicate_and_unrelated_bag_certificates() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    unrelated = Pki().issue("Unrelated", ca=True, key=rsa_key("unrelated"))
    result = build(trusting(root), leaf, [unrelated, intermediate, intermediate, leaf, root, root])
    assert result.chain == (leaf.cert, intermediate.cert, root.cert)


def test_chain_status_names_follow_dotnet() -> None:
    assert ChainStatus.REVOCATION_STATUS_UNKNOWN.dotnet_name == "RevocationStatusUnknown"
    assert ChainStatus.HAS_NOT_SUPPORTED_CRITICAL_EXTENSION.value == 0x8000000
    assert ChainStatus.OFFLINE_REVOCATION.value == 0x1000000
    assert (ChainStatus.UNTRUSTED_ROOT | ChainStatus.REVOKED).dotnet_name == "Revoked, UntrustedRoot"
    assert ChainStatus.NO_ERROR.dotnet_name == "NoError"
    # NuGet's DefaultObservedStatusFlags excludes exactly six statuses.
    handled = [s for s in ChainStatus if s and not s & DEFAULT_OBSERVED_STATUSES]
    assert {s.dotnet_name for s in handled} == {
        "NotTimeValid",
        "NotTimeNested",
        "Revoked",
        "RevocationStatusUnknown",
        "OfflineRevocation",
        "UntrustedRoot",
    }


def test_naive_times_are_usage_errors() -> None:
    root, _, leaf = Pki().code_signing_chain()
    builder = ChainBuilder(trusting(root), revocation_mode=RevocationMode.OFFLINE)
    with pytest.raises(UsageError):
        builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=NOW.replace(tzinfo=None), now=NOW)
    with pytest.raises(UsageError):
        builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=NOW, now=NOW.replace(tzinfo=None))


def test_revocation_is_judged_at_the_now_given() -> None:
    """The builder reads no clock: ``now`` is the caller's (issue 12), and revocation answers carry it."""
    root, intermediate, leaf = Pki().code_signing_chain()
    builder = ChainBuilder(trusting(root), revocation_mode=RevocationMode.OFFLINE)
    later = NOW + dt.timedelta(days=3)
    result = builder.build(
        leaf.cert, extra_certificates=[intermediate.cert], purpose=CertificatePurpose.CODE_SIGNING, at=NOW, now=later
    )
    assert result.elements[0].revocation is not None
    assert result.elements[0].revocation.checked_at == later
    with pytest.raises(TypeError):
        builder.build(leaf.cert, purpose=CertificatePurpose.CODE_SIGNING, at=NOW)  # type: ignore[call-arg]


def test_untrusted_root_warning_only_for_complete_untrusted_chains() -> None:
    root, intermediate, leaf = Pki().code_signing_chain()
    untrusted = build(TrustStore.empty(), leaf, [intermediate, root])
    warning = untrusted_root_warning(untrusted)
    assert warning is not None
    assert (warning.code, warning.level) == (NuCode.NU3042, Level.WARNING)
    assert "Subject:  CN=Test Root CA\r\n" in warning.message
    assert warning.message.endswith("-----END CERTIFICATE-----")
    assert untrusted_root_warning(build(trusting(root), leaf, [intermediate])) is None
    assert untrusted_root_warning(build(trusting(root), leaf, [])) is None  # partial chain: no root to name


def test_dotnet_name_quoting_and_order() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Washington"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Contoso, "Ltd"'),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
            x509.NameAttribute(ObjectIdentifier("1.2.3.4"), "x"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Signer"),
        ]
    )
    assert dotnet_name(subject) == 'CN=Signer, OID.1.2.3.4=x, E=a@b.c, O="Contoso, ""Ltd""", S=Washington, C=US'


def test_undecodable_extension_is_invalid_extension_not_a_crash() -> None:
    pki = Pki()
    root = pki.issue("Root", ca=True)
    garbage = x509.UnrecognizedExtension(x509.oid.ExtensionOID.EXTENDED_KEY_USAGE, b"\x04\x01\x00")
    leaf = pki.issue("Signer", issuer=root, extra=[(garbage, False)])
    result = build(trusting(root), leaf, [])
    assert result.statuses & DEFAULT_OBSERVED_STATUSES == ChainStatus.INVALID_EXTENSION
    assert result.messages_for(ChainStatus.INVALID_EXTENSION) == (
        "InvalidExtension: invalid or inconsistent certificate extension",
    )
