"""Verification policies: data, not code paths.

The flags are NuGet's ``SignedPackageVerifierSettings`` (NC ``Signing/Verification/SignedPackageVerifierSettings.cs``,
``../shared/NUGET-SIGNING.md`` §4.4); the allow lists are NuGet's ``AllowListVerificationProvider`` instances
(NC ``Signing/Verification/AllowListVerificationProvider.cs``); the presets reproduce how NuGet wires them:

* :meth:`VerificationPolicy.verify` - ``dotnet nuget verify --all`` (NC ``VerifyCommandRunner``): the verify-command
  settings, the nuget.config ``trustedSigners`` list (required only when ``signatureValidationMode`` is
  ``require``; a mismatch is an error because the verify command does not allow untrusted), the trusted signers'
  ``allowUntrustedRoot`` certificates, and the ``--certificate-fingerprint`` list.
* :meth:`VerificationPolicy.accept` / :meth:`VerificationPolicy.require` - restore's ``signatureValidationMode``
  (NC ``ClientPolicyContext``).
* :meth:`VerificationPolicy.nuget_org_submission` - the gallery's author-signature rules
  (NuGetGallery ``SignatureFormatValidator``; NUGET-SIGNING.md §5.2).

Unsafe relaxations are spelled out in the flag names (``allow_untrusted``, ``allow_unsigned``...).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from nuseal.codes import Issue
from nuseal.hashalg import HashAlgorithm
from nuseal.trust import NuGetConfig, RevocationMode, merge_trusted_certificates

__all__ = [
    "AllowList",
    "AllowListEntry",
    "CountersignatureBehavior",
    "RevocationMode",
    "SignaturePlacement",
    "VerificationPolicy",
    "VerificationTarget",
    "trusted_signer_entries",
]


class VerificationTarget(enum.Flag):
    """NuGet's ``VerificationTarget``: which signature types a check or an allow-list entry applies to."""

    UNKNOWN = 1
    AUTHOR = 2
    REPOSITORY = 4
    ALL = UNKNOWN | AUTHOR | REPOSITORY


class SignaturePlacement(enum.Flag):
    """NuGet's ``SignaturePlacement``: primary signature, repository countersignature, or either."""

    PRIMARY_SIGNATURE = 1
    COUNTERSIGNATURE = 2
    ANY = PRIMARY_SIGNATURE | COUNTERSIGNATURE


class CountersignatureBehavior(enum.Enum):
    """NuGet's ``SignatureVerificationBehavior`` for the repository countersignature."""

    NEVER = "never"
    IF_EXISTS = "if-exists"
    IF_EXISTS_AND_IS_NECESSARY = "if-exists-and-is-necessary"
    ALWAYS = "always"


@dataclass(frozen=True)
class AllowListEntry:
    """One allowed certificate (NuGet's ``CertificateHashAllowListEntry`` / ``TrustedSignerAllowListEntry``).

    ``fingerprint`` is hex (any case; matched case-insensitively). ``owners`` applies to repository targets
    only and is matched case-sensitively against the signature's package-owners attribute (NUGET-SIGNING.md
    §4.5). ``allow_untrusted_root`` is NuGet's trusted-signer flag; NuGet compares that fingerprint
    case-sensitively with its upper-case hex, so a lower-case fingerprint does not grant it (kept).
    """

    fingerprint: str
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256
    target: VerificationTarget = VerificationTarget.AUTHOR | VerificationTarget.REPOSITORY
    placement: SignaturePlacement = SignaturePlacement.PRIMARY_SIGNATURE
    owners: frozenset[str] | None = None
    allow_untrusted_root: bool = False
    name: str | None = None


@dataclass(frozen=True)
class AllowList:
    """One allow-list check: its entries, whether an empty list fails, and NuGet's messages."""

    entries: tuple[AllowListEntry, ...]
    require_non_empty: bool = False
    empty_message: str = "A list of trusted signers is required but none was found."
    no_match_message: str = (
        "The package signature certificate fingerprint does not match any certificate fingerprint in the allow list."
    )


_VERIFY_NO_MATCH = "The package signature did not match any of the allowed certificate fingerprints."
_CLIENT_EMPTY = (
    "signatureValidationMode is set to require, so packages are allowed only if signed by trusted signers; "
    "however, no trusted signers were specified."
)
_CLIENT_NO_MATCH = "This package is signed but not by a trusted signer."
_UNSIGNED = "The package is not signed."
_REQUIRE_UNSIGNED = (
    "signatureValidationMode is set to require, so packages are allowed only if signed by trusted signers; "
    "however, this package is unsigned."
)


@dataclass(frozen=True, kw_only=True)
class VerificationPolicy:
    """Which checks run and which findings are errors. Build with a preset, adjust with :meth:`evolve`.

    Trust stores and the revocation fetcher are not part of the policy: they are given to the
    :class:`~nuseal.verify.verifier.Verifier`, which does the I/O.
    """

    name: str
    allow_unsigned: bool
    allow_illegal: bool
    allow_untrusted: bool
    allow_ignore_timestamp: bool
    allow_multiple_timestamps: bool = True
    allow_no_timestamp: bool = True
    allow_unknown_revocation: bool = True
    report_unknown_revocation: bool
    verification_target: VerificationTarget = VerificationTarget.ALL
    signature_placement: SignaturePlacement = SignaturePlacement.ANY
    countersignature_behavior: CountersignatureBehavior = CountersignatureBehavior.IF_EXISTS_AND_IS_NECESSARY
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    allow_lists: tuple[AllowList, ...] = ()
    untrusted_root_allowed: tuple[AllowListEntry, ...] = field(default=())
    unsigned_message: str = _UNSIGNED

    def evolve(self, **changes: object) -> VerificationPolicy:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ presets
    @classmethod
    def verify(
        cls,
        *,
        trusted_signers: tuple[AllowListEntry, ...] = (),
        require_mode: bool = False,
        fingerprints: tuple[AllowListEntry, ...] = (),
        revocation_mode: RevocationMode = RevocationMode.ONLINE,
    ) -> VerificationPolicy:
        """``dotnet nuget verify --all`` (NC ``VerifyCommandRunner.ExecuteCommandAsync``,
        ``SignedPackageVerifierSettings.GetVerifyCommandDefaultPolicy``)."""
        return cls(
            name="verify",
            allow_unsigned=False,
            allow_illegal=False,
            allow_untrusted=False,
            allow_ignore_timestamp=False,
            report_unknown_revocation=True,
            countersignature_behavior=CountersignatureBehavior.IF_EXISTS,
            revocation_mode=revocation_mode,
            allow_lists=(
                AllowList(
                    trusted_signers,
                    require_non_empty=require_mode,
                    empty_message=_CLIENT_EMPTY,
                    no_match_message=_CLIENT_NO_MATCH,
                ),
                AllowList(fingerprints, no_match_message=_VERIFY_NO_MATCH),
            ),
            untrusted_root_allowed=tuple(e for e in trusted_signers if e.allow_untrusted_root),
        )

    @classmethod
    def accept(
        cls,
        *,
        trusted_signers: tuple[AllowListEntry, ...] = (),
        revocation_mode: RevocationMode = RevocationMode.ONLINE,
    ) -> VerificationPolicy:
        """Restore with ``signatureValidationMode=accept`` (NC ``GetAcceptModeDefaultPolicy``): unsigned and
        untrusted allowed; a trusted-signers mismatch is a warning."""
        return cls(
            name="accept",
            allow_unsigned=True,
            allow_illegal=True,
            allow_untrusted=True,
            allow_ignore_timestamp=True,
            report_unknown_revocation=False,
            revocation_mode=revocation_mode,
            allow_lists=(AllowList(trusted_signers, empty_message=_CLIENT_EMPTY, no_match_message=_CLIENT_NO_MATCH),),
            untrusted_root_allowed=tuple(e for e in trusted_signers if e.allow_untrusted_root),
        )

    @classmethod
    def require(
        cls,
        *,
        trusted_signers: tuple[AllowListEntry, ...] = (),
        revocation_mode: RevocationMode = RevocationMode.ONLINE,
    ) -> VerificationPolicy:
        """Restore with ``signatureValidationMode=require`` (NC ``GetRequireModeDefaultPolicy``): signed by a
        trusted signer, trusted chain, no illegal signature."""
        return cls(
            name="require",
            allow_unsigned=False,
            allow_illegal=False,
            allow_untrusted=False,
            allow_ignore_timestamp=True,
            report_unknown_revocation=True,
            revocation_mode=revocation_mode,
            allow_lists=(
                AllowList(
                    trusted_signers,
                    require_non_empty=True,
                    empty_message=_CLIENT_EMPTY,
                    no_match_message=_CLIENT_NO_MATCH,
                ),
            ),
            untrusted_root_allowed=tuple(e for e in trusted_signers if e.allow_untrusted_root),
            unsigned_message=_REQUIRE_UNSIGNED,
        )

    @classmethod
    def nuget_org_submission(cls, *, revocation_mode: RevocationMode = RevocationMode.ONLINE) -> VerificationPolicy:
        """nuget.org's author-signature rules (NuGetGallery ``SignatureFormatValidator._authorSignatureSettings``):
        author primary signature only, exactly one valid timestamp, nothing illegal or untrusted. The feed adds the
        owner's registered certificates as an allow list."""
        return cls(
            name="nuget.org-submission",
            allow_unsigned=False,
            allow_illegal=False,
            allow_untrusted=False,
            allow_ignore_timestamp=False,
            allow_multiple_timestamps=False,
            allow_no_timestamp=False,
            report_unknown_revocation=True,
            verification_target=VerificationTarget.AUTHOR,
            signature_placement=SignaturePlacement.PRIMARY_SIGNATURE,
            countersignature_behavior=CountersignatureBehavior.NEVER,
            revocation_mode=revocation_mode,
        )


def trusted_signer_entries(configs: Iterable[NuGetConfig]) -> tuple[tuple[AllowListEntry, ...], list[Issue]]:
    """``trustedSigners`` from every config as allow-list entries, with the merge issues
    (NC ``TrustedSignersProvider``): used by ``nuseal verify``, restore's gate and ``nuseal audit``."""
    merged, issues = merge_trusted_certificates(s for c in configs for s in c.trusted_signers)
    entries = []
    for m in merged:
        target = VerificationTarget(0)
        placement = SignaturePlacement(0)
        if m.author:
            target |= VerificationTarget.AUTHOR
            placement |= SignaturePlacement.PRIMARY_SIGNATURE
        if m.repository:
            target |= VerificationTarget.REPOSITORY
            placement |= SignaturePlacement.ANY
        entries.append(
            AllowListEntry(
                fingerprint=m.fingerprint,
                hash_algorithm=m.hash_algorithm,
                target=target,
                placement=placement,
                owners=frozenset(m.owners) if m.owners else None,
                allow_untrusted_root=m.allow_untrusted_root,
                name=", ".join(m.names),
            )
        )
    return tuple(entries), issues
