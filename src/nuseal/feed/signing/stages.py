"""The push pipeline's signing stages: nuget.org's submission rules, then the feed's repository signature.

The composition root (:mod:`nuseal.feed.compose`) adds them to a feed whose ``FeedConfig.signing.enabled`` is
set::

    check_container -> read_manifest -> check_permissions -> check_not_duplicate
        -> check_signatures -> repository_sign -> publish (+ record_signatures in the transaction)

``check_signatures`` (NuGetGallery ``PackageMetadataValidationService`` and ``SignatureValidator``;
``../shared/NUGET-SIGNING.md`` §5.1-5.2), every verdict from the verification engine
(:class:`~nuseal.verify.Verifier` with :meth:`VerificationPolicy.nuget_org_submission`), never a second
implementation:

1. unsigned: refused when an owner of the id (the pusher, for a new id) has registered certificates
   (``IsSigningRequired``), or when ``require_author_signature`` is set (NU3004); accepted with a warning when an
   earlier version was author-signed (``CheckForUnsignedPushAfterAuthorSignedAsync``);
2. signed: the primary signature must be an author signature (repository and unknown primaries are refused, NU3000:
   ``OnlyAuthorSignaturesSupported``), and countersignatures other than repository ones are refused (NU3000:
   ``AuthorCounterSignaturesNotSupported``); the engine then checks integrity, exactly one valid timestamp, the
   signer and TSA certificates (RSA >= 2048, EKUs, chaining to the feed's trust store, not revoked), and an allow
   list of the owners' registered certificates (NU3034 with the registered fingerprints; a signed push when no
   owner registered any is refused, as nuget.org's ``RejectSignedPackagesWithNoRegisteredCertificate``);
3. nuget.org's rules beyond the client verifier: the signer certificate is not self-issued (NU3018, even when the
   trust store holds it), and both certificates are within their validity now (nuget.org's
   ``OnlineCertificateVerifier`` builds chains at the current time): NU3037 for the signer, NU3028 for the TSA.

A refusal lists every problem, the signature's own first (its code is the response's), the registered-certificate
mismatch (NU3034) last.

Unknown revocation is a warning, as on nuget.org. Warnings (with their NU codes) go back to the client in
``X-NuGet-Warning`` and the response body.

``repository_sign`` writes the feed's repository primary signature on an unsigned package and a repository
countersignature on an author-signed one (replacing any repository countersignature it carried, as nuget.org
strips repository signatures that are not its own, with a warning) with
:func:`nuseal.signing.repository_sign_package`, the feed's V3 service index URL and the id's owners sorted
case-insensitively (NuGetGallery ``ScanAndSignProcessor``), timestamped by the configured TSA, then swaps the
bytes in with :meth:`Submission.replace_package`. When it cannot sign (TSA down, repository key or certificate
unusable or revoked) the push fails with 503 and nothing is published.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.codes import Level, NuCode
from nuseal.errors import NusealError, PackageFormatError, SignatureFormatError
from nuseal.feed.accounts.certificates import (
    certificate_fingerprint,
    owners_registered_fingerprints,
    remember_certificate,
)
from nuseal.feed.accounts.keys import owners_of
from nuseal.feed.errors import BadPackageError, FeedError
from nuseal.feed.publish.submission import StageContext, Submission
from nuseal.feed.signing.signer import FeedSigning
from nuseal.feed.store import audit
from nuseal.feed.store.models import Certificate, Package, PackageSignature, User
from nuseal.package import PackageArchive, append_signature
from nuseal.signature.builder import remove_repository_countersignatures
from nuseal.signing import SignedSignature, repository_sign_package
from nuseal.trust import dotnet_name
from nuseal.verify import (
    AllowList,
    AllowListEntry,
    SignatureInfo,
    SignatureKind,
    SignaturePlacement,
    VerificationPolicy,
    VerificationTarget,
    Verifier,
)

__all__ = [
    "PACKAGE_SIGNING_CODES",
    "SignatureFacts",
    "SigningStages",
    "record_signature_facts",
    "signed_facts",
    "verified_facts",
    "without_repository_countersignatures",
]

log = logging.getLogger(__name__)

#: Most registered fingerprints named in one refusal message.
MAX_NAMED_FINGERPRINTS = 10
_FACTS_KEY = "signatures"
#: Signing errors caused by the package itself (400, not the feed's 503): ZIP64 (NU3006), too many entries to sign
#: without ZIP64 (NU3039), a repository countersignature already present (NU3032), a repository primary (NU3033).
PACKAGE_SIGNING_CODES = frozenset({NuCode.NU3006, NuCode.NU3039, NuCode.NU3032, NuCode.NU3033})


@dataclass(frozen=True)
class SignatureFacts:
    """One signature of the package being published, for ``package_signatures``."""

    kind: str  # "author" | "repository"
    placement: str  # "primary" | "countersignature"
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    timestamp_at: datetime | None
    timestamp_authority: str


def _fingerprint_list(fingerprints: set[str]) -> str:
    shown = sorted(fingerprints)[:MAX_NAMED_FINGERPRINTS]
    more = len(fingerprints) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _facts(submission: Submission) -> list[SignatureFacts]:
    found: list[SignatureFacts] = submission.facts.setdefault(_FACTS_KEY, [])
    return found


def signed_facts(written: SignedSignature) -> SignatureFacts:
    """The ``package_signatures`` facts of the signature the feed just wrote, as the signing call returned them
    (:attr:`nuseal.signing.SignResult.signature`; the signed package is not parsed again)."""
    tsa = written.timestamp_authority
    return SignatureFacts(
        written.kind.value,
        written.placement.value,
        written.certificate,
        written.chain,
        written.timestamp_at,
        dotnet_name(tsa.subject) if tsa is not None else "",
    )


def verified_facts(signature: SignatureInfo) -> SignatureFacts:
    """The ``package_signatures`` facts of a signature the verification engine judged (no second parse: the
    certificates come from the result's DER, the timestamp from its typed facts)."""
    assert signature.signer is not None  # verified before
    stamp = signature.timestamp_details[0] if signature.timestamp_details else None
    return SignatureFacts(
        signature.kind.value,
        signature.placement.value,
        x509.load_der_x509_certificate(signature.signer.der),
        tuple(x509.load_der_x509_certificate(d) for d in signature.certificates),
        stamp.gen_time if stamp else None,
        stamp.authority.subject if stamp and stamp.authority else "",
    )


def _feed_rule_problems(primary: SignatureInfo, now: datetime) -> list[tuple[NuCode | None, str]]:
    """The rules nuget.org applies beyond NuGet's client verifier (NUGET-SIGNING.md §5.2, ``Signed-Packages-
    Reference.md``), given the engine's typed facts about the primary signature:

    * the signer certificate must not be self-issued (NU3018), even when the feed's trust store holds it;
    * nuget.org's ``OnlineCertificateVerifier`` builds the chains at the current time, so the signer (NU3037) and
      the TSA (NU3028) must be within their validity at submission even when the timestamp proves they were when
      the package was signed. Not repeated when the engine already reported that certificate's validity: NU3037
      for the signer, NU3036 (genTime outside the TSA certificate's validity) for the TSA.
    """
    found: list[tuple[NuCode | None, str]] = []
    cert = primary.signer
    if cert is not None and cert.self_issued:
        found.append(
            (
                NuCode.NU3018,
                "The author primary signature's certificate is self-issued; packages signed with self-issued "
                "certificates are refused.",
            )
        )
    if cert is not None and now >= cert.not_after and NuCode.NU3037 not in primary.codes:
        found.append(
            (
                NuCode.NU3037,
                f"The author primary signature's certificate expired on {cert.not_after.isoformat()}; "
                "the feed requires it to be valid at submission.",
            )
        )
    stamp = primary.timestamp_details[0] if primary.timestamp_details else None
    tsa = stamp.authority if stamp is not None else None
    tsa_validity_reported = stamp is not None and any(i.code is NuCode.NU3036 for i in stamp.issues)
    if tsa is not None and now >= tsa.not_after and not tsa_validity_reported:
        found.append(
            (
                NuCode.NU3028,
                f"The timestamping certificate expired on {tsa.not_after.isoformat()}; "
                "the feed requires it to be valid at submission.",
            )
        )
    return found


def _refusal(problems: list[tuple[NuCode | None, str]]) -> tuple[str, NuCode]:
    """The refusal's message and code. The signature's own problems come first and give the code; the
    registered-certificate mismatch (NU3034) comes last, as it is the one the other problems do not explain.
    Repeated messages are shown once."""
    if not problems:
        problems = [(NuCode.NU3000, "the signature could not be verified")]
    ordered = [p for p in problems if p[0] is not NuCode.NU3034] + [p for p in problems if p[0] is NuCode.NU3034]
    seen: list[str] = []
    for code, text in ordered:
        line = f"{code.value}: {text}" if code is not None else text
        if line not in seen:
            seen.append(line)
    first = next((c for c, _ in ordered if c is not None), NuCode.NU3000)
    return "the package's signature does not meet this feed's rules: " + " | ".join(seen), first


def without_repository_countersignatures(data: bytes, now: datetime) -> tuple[bytes, list[str]]:
    """``data`` without the repository countersignatures of its author signature, and the V3 service index URLs
    they named (nothing changes for an unsigned or repository-primary package, or one without any).

    nuget.org strips repository signatures that are not its own before adding its own (NuGetGallery
    ``SignatureValidator.RemoveRepositorySignaturesAsync``, NUGET-SIGNING.md §5.2); the feed strips every one, its
    own included, since it signs again with the id's current owners. The CMS edit is
    :func:`nuseal.signature.builder.remove_repository_countersignatures` (the author signature stays valid).

    Raises:
        PackageFormatError, SignatureFormatError: the package or its signature cannot be read.
    """
    archive = PackageArchive.from_bytes(data)
    if not archive.is_signed:
        return data, []
    der, urls = remove_repository_countersignatures(archive.read_signature())
    if not urls:
        return data, []
    return append_signature(archive.without_signature(), der, when=now), [u or "(no URL)" for u in urls]


class SigningStages:
    r"""The signing stages of one feed, with its signing context (built once by the composition root,
    :mod:`nuseal.feed.compose`): :meth:`check_signatures` and :meth:`repository_sign` are
    :class:`~nuseal.feed.publish.submission.SubmissionStage`\ s, :meth:`record_signatures` a publish hook."""

    def __init__(self, signing: FeedSigning) -> None:
        self.signing = signing

    # ------------------------------------------------------------------------------------------ rules
    def check_signatures(self, submission: Submission, context: StageContext, /) -> None:
        """nuget.org's submission rules (module docstring, steps 1-3).

        Raises:
            BadPackageError: a rule refused the package; the message names every failure with its NU code.
        """
        archive = submission.require_archive()
        nuspec = submission.require_nuspec()
        id_lower = nuspec.id.lower()
        with context.db.read() as session:
            registered = owners_registered_fingerprints(session, id_lower, extra_user_pk=submission.principal.user_pk)
            author_signed_before = session.scalar(
                select(PackageSignature.pk)
                .join(Package, Package.pk == PackageSignature.package_pk)
                .where(Package.id_lower == id_lower, PackageSignature.kind == "author")
                .limit(1)
            )
        if not archive.is_signed:
            if registered:
                raise BadPackageError(
                    f"{nuspec.id} must be author-signed with a certificate registered by one of its owners "
                    f"(registered SHA-256 fingerprints: {_fingerprint_list(registered)}); this package is not signed",
                    code=NuCode.NU3004,
                )
            if context.config.signing.require_author_signature:
                raise BadPackageError(
                    "this feed accepts only author-signed packages; this package is not signed", code=NuCode.NU3004
                )
            if author_signed_before is not None:
                submission.warnings.append(
                    f"{nuspec.id} {nuspec.version.normalized} is not signed, but earlier versions of {nuspec.id} are "
                    "author-signed; consumers that trust the author's certificate will refuse this version"
                )
            return
        now = submission.now
        result = self._verifier(nuspec.id, registered).verify(archive, now=now)
        if submission.verification is None:
            submission.verification = result
        primary = result.primary  # None: the signature cannot be read; the engine reports why, with its code
        if primary is not None and primary.kind is not SignatureKind.AUTHOR:
            raise BadPackageError(
                f"the package's primary signature is a {primary.kind.value} signature; this feed accepts only "
                "author-signed (or unsigned) packages and adds its own repository signature",
                code=NuCode.NU3000,
            )
        if primary is not None and primary.other_countersignatures:
            raise BadPackageError(
                "the package's author signature has a countersignature that is not a (readable) repository "
                "countersignature; this feed does not accept author countersignatures",
                code=NuCode.NU3000,
            )
        problems = [(i.code, i.message) for i in result.errors]
        if primary is not None:
            problems += _feed_rule_problems(primary, now)
        if problems or not result.valid:
            message, code = _refusal(problems)
            raise BadPackageError(message, code=code)
        submission.warnings.extend(
            f"{i.code.value}: {i.message}" if i.code else i.message for i in result.issues if i.level is Level.WARNING
        )
        assert primary is not None  # a valid result had a readable primary signature
        _facts(submission).append(verified_facts(primary))

    def _verifier(self, package_id: str, registered: set[str]) -> Verifier:
        entries = tuple(
            AllowListEntry(
                fingerprint=fp, target=VerificationTarget.AUTHOR, placement=SignaturePlacement.PRIMARY_SIGNATURE
            )
            for fp in sorted(registered)
        )
        allow = AllowList(
            entries,
            require_non_empty=True,
            empty_message=(
                f"No owner of {package_id} has registered a signing certificate. Register the certificate (.cer) "
                "on the feed's account page or with `nuseal admin register-certificate` before pushing signed packages."
            ),
            no_match_message=(
                f"The package is signed with a certificate that no owner of {package_id} has registered "
                f"(registered SHA-256 fingerprints: {_fingerprint_list(registered)})."
            ),
        )
        policy = VerificationPolicy.nuget_org_submission().evolve(allow_lists=(allow,))
        signing = self.signing
        return Verifier(
            policy,
            code_signing_roots=signing.code_signing_roots,
            timestamping_roots=signing.timestamping_roots,
            fetcher=signing.fetcher,
        )

    # ------------------------------------------------------------------------------------------ signing
    def repository_sign(self, submission: Submission, context: StageContext, /) -> None:
        """Repository-sign the package (primary when unsigned, countersignature when author-signed).

        Raises:
            BadPackageError: the package cannot be repository-signed (:data:`PACKAGE_SIGNING_CODES`).
            FeedError: 503 when the TSA or the repository key fails.
        """
        nuspec = submission.require_nuspec()
        id_lower = nuspec.id.lower()
        with context.db.read() as session:
            owners = owners_of(session, id_lower)
            if not owners:
                user = session.get(User, submission.principal.user_pk)
                owners = [user.name] if user is not None else [submission.principal.user_name]
        owners = sorted(owners, key=str.lower)
        signing = self.signing
        try:
            data, removed = without_repository_countersignatures(submission.package_path.read_bytes(), submission.now)
        except (PackageFormatError, SignatureFormatError) as exc:  # read and verified before: not expected
            raise BadPackageError(f"the package's signature cannot be read: {exc}", code=exc.code) from exc
        if removed:
            submission.warnings.append(
                "the repository countersignature of " + ", ".join(removed) + " was removed; this feed adds its own"
            )
        try:
            signed = repository_sign_package(
                data,
                signing.signer,
                v3_service_index_url=context.config.repository_index_url,
                owners=owners,
                timestamper_url=signing.timestamper_url,
                now=submission.now,
                trust=signing.signing_trust(),
            )
        except NusealError as exc:
            if exc.code in PACKAGE_SIGNING_CODES:
                raise BadPackageError(
                    f"the package cannot be repository-signed by this feed: {exc.message}", code=exc.code
                ) from exc
            log.error("repository signing failed: %s", exc)
            raise FeedError(
                f"the feed could not repository-sign the package: {exc}", code=exc.code, status=503
            ) from exc
        path = context.config.staging_dir / f"{secrets.token_hex(16)}.signed.nupkg"
        path.write_bytes(signed.data)
        try:
            submission.replace_package(path)
        except FeedError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        _facts(submission).append(signed_facts(signed.signature))

    # ------------------------------------------------------------------------------------------ publish hook
    def record_signatures(self, submission: Submission, context: StageContext, session: Session, row: Package) -> None:
        """In the publish transaction: one ``package_signatures`` row per signature, and the audit entries."""
        record_signature_facts(
            session, row, _facts(submission), now=submission.now, author_actor=submission.principal.user_name
        )


def record_signature_facts(
    session: Session,
    row: Package,
    facts: list[SignatureFacts],
    *,
    now: datetime,
    author_actor: str,
    **evidence: object,
) -> None:
    """One ``package_signatures`` row (status ``valid``) and one audit row per signature of ``row``: the author
    signature's accepted by ``author_actor``, the repository signature's by the feed; ``evidence`` goes into each
    audit row."""
    for fact in facts:
        cert_row: Certificate = remember_certificate(session, fact.certificate, now=now, chain=fact.chain)
        session.add(
            PackageSignature(
                package_pk=row.pk,
                kind=fact.kind,
                placement=fact.placement,
                certificate_pk=cert_row.pk,
                timestamp_at=fact.timestamp_at,
                timestamp_authority=fact.timestamp_authority,
                status="valid",
            )
        )
        audit.record(
            session,
            at=now,
            actor=author_actor if fact.kind == "author" else audit.FEED_ACTOR,
            action="package.signature-accepted" if fact.kind == "author" else "package.repository-signed",
            target=f"package:{row.id_lower}/{row.version_lower}",
            placement=fact.placement,
            fingerprint=certificate_fingerprint(fact.certificate),
            subject=cert_row.subject,
            timestamp=fact.timestamp_at,
            timestamp_authority=fact.timestamp_authority,
            **evidence,
        )
    session.flush()
