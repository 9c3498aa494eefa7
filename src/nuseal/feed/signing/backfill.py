"""Repository-sign the stored versions that lack the feed's current repository signature
(``nuseal admin repository-sign``).

Which versions: every stored version, listed or not, with no ``package_signatures`` row of kind ``repository`` by
the feed's current repository certificate: versions pushed while the feed ran with signing off (before signing was
turned on), and versions signed with an earlier repository certificate (a key rotated, or revoked: "the package
source is expected to re-sign all packages signed by the affected certificate", NuGet server API
``repository-signatures-resource.md``; nuget.org repository-signed its existing packages the same way in 2018).
Oldest first, at most ``limit`` a run.

What each gets, with the push's own signing (:meth:`SigningStages.repository_sign`'s steps: the feed's V3 service
index URL, the id's current owners sorted case-insensitively, the configured TSA):

* unsigned: a repository primary signature;
* a repository primary signature by another certificate: that signature removed, the feed's added;
* author-signed: its repository countersignatures removed, the feed's repository countersignature added. The
  author signature must be good: one the feed accepted at push time must not be revoked since; one it never
  checked (pushed while signing was off) is verified now with ``nuseal verify``'s rules (NuGet's
  ``VerifyCommandRunner`` policy, the feed's trust stores, online revocation) and recorded when it passes;
  one that fails is left as it is, and reported with its NU codes.

Versions marked revoked are left as they are. Only the signature entry changes: the package's content hash
(NuGet's hash of the package without its signature, which ``.nupkg.metadata`` and lock files record) stays the
same, so restores that pinned it keep working; the file's SHA-512 (``Package.sha512``, V2's ``PackageHash``)
is updated. Each version is its own transaction (:meth:`FeedService.replace_stored_package`: a stopped run
leaves every version either as it was or re-signed, never half), with a ``package.repository-signed`` audit row
carrying ``backfill=true``, what the version had before and both SHA-512 values. A second run signs what is left.
At the end ``allRepositorySigned`` of ``RepositorySignatures/5.0.0`` is recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nuseal.errors import NusealError, PackageFormatError, SignatureFormatError
from nuseal.feed.accounts.certificates import certificate_fingerprint
from nuseal.feed.accounts.keys import owners_of
from nuseal.feed.errors import FeedError
from nuseal.feed.protocol import documents as docs
from nuseal.feed.protocol.repository_signatures import count_without_repository_signature
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.upload import package_sha512
from nuseal.feed.signing.repository_certificates import refresh_repository_signatures
from nuseal.feed.signing.signer import FeedSigning
from nuseal.feed.signing.stages import (
    PACKAGE_SIGNING_CODES,
    SignatureFacts,
    record_signature_facts,
    signed_facts,
    verified_facts,
    without_repository_countersignatures,
)
from nuseal.feed.store.models import Certificate, Package, PackageSignature
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.signing import repository_sign_package
from nuseal.verify import VerificationPolicy, VerificationResult, Verifier

__all__ = ["BackfillOutcome", "BackfillSummary", "DEFAULT_LIMIT", "repository_sign_stored"]

log = logging.getLogger(__name__)

#: Versions handled per run unless told otherwise.
DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)
class BackfillOutcome:
    """What happened to one version: ``action`` is ``signed``, ``would-sign`` (dry run) or ``skipped``;
    ``before`` what it carried (``unsigned``, ``author``, ``author + repository <fp>``, ``repository <fp>``);
    ``placement`` of the new repository signature; ``reason`` why it was skipped."""

    id: str
    version: str
    action: str
    before: str
    placement: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "action": self.action,
            "before": self.before,
            "placement": self.placement or None,
            "reason": self.reason or None,
        }


@dataclass
class BackfillSummary:
    """One run: the outcomes (oldest version first), whether more versions wait beyond the limit, and
    ``allRepositorySigned`` after the run."""

    repository_fingerprint: str
    outcomes: list[BackfillOutcome] = field(default_factory=list)
    more_pending: bool = False
    all_repository_signed: bool = False
    dry_run: bool = False

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    def describe(self) -> str:
        verb = "would sign" if self.dry_run else "signed"
        text = (
            f"{verb} {self.count('would-sign' if self.dry_run else 'signed')} version(s), "
            f"skipped {self.count('skipped')}; allRepositorySigned={str(self.all_repository_signed).lower()}"
        )
        return text + ("; more versions wait: run again" if self.more_pending else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "repositoryCertificate": self.repository_fingerprint,
            "dryRun": self.dry_run,
            "signed": self.count("signed"),
            "wouldSign": self.count("would-sign"),
            "skipped": self.count("skipped"),
            "morePending": self.more_pending,
            "allRepositorySigned": self.all_repository_signed,
            "versions": [o.to_json() for o in self.outcomes],
        }


@dataclass(frozen=True)
class _Candidate:
    pk: int
    id: str
    id_lower: str
    version: str
    version_lower: str
    sha512: str
    revoked: bool
    author_recorded: bool


@dataclass(frozen=True)
class _Skip:
    """This version is left as it is, for ``reason`` (a value the steps return, not an exception)."""

    reason: str


def _candidates(session: Session, repository_pk: int | None, limit: int) -> tuple[list[_Candidate], bool]:
    """The versions without a repository signature by the certificate ``repository_pk``, oldest first."""
    has_author = (
        exists().where(PackageSignature.package_pk == Package.pk, PackageSignature.kind == "author").label("author")
    )
    query = select(Package, has_author).order_by(Package.pk)
    if repository_pk is not None:
        ours = exists().where(
            PackageSignature.package_pk == Package.pk,
            PackageSignature.kind == "repository",
            PackageSignature.certificate_pk == repository_pk,
        )
        query = query.where(~ours)
    rows = session.execute(query.limit(limit + 1)).all()
    found = [
        _Candidate(
            r.pk, r.id, r.id_lower, r.version, r.version_lower, r.sha512, r.signature_status == "revoked", bool(author)
        )
        for r, author in rows[:limit]
    ]
    return found, len(rows) > limit


def _describe_before(archive: PackageArchive) -> tuple[str, PrimarySignature | None] | _Skip:
    """What signs the stored package now, and its primary signature; a skip for an unknown-type primary.

    This reads the signature structure the backfill is about to edit (which signature to remove, which
    countersignatures to strip), as :func:`nuseal.signing.repository_sign_package` itself does before signing;
    it judges nothing (the verdict on an author signature is the engine's, :meth:`_Backfill._author_check`).

    Raises:
        PackageFormatError, SignatureFormatError: the signature cannot be read.
    """
    if not archive.is_signed:
        return "unsigned", None
    primary = PrimarySignature.load(archive.read_signature())
    if primary.type is SignatureType.REPOSITORY:
        assert primary.signer_certificate is not None
        return f"repository {certificate_fingerprint(primary.signer_certificate)}", primary
    if primary.type is not SignatureType.AUTHOR:
        return _Skip(f"its primary signature is of an unknown type ({primary.type.value})")
    counters = [
        certificate_fingerprint(c.signer_certificate) for c in primary.countersignatures if c.signer_certificate
    ]
    return "author" + "".join(f" + repository {fp}" for fp in counters), primary


class _Backfill:
    def __init__(self, service: FeedService, signing: FeedSigning, *, dry_run: bool) -> None:
        self.service = service
        self.signing = signing
        self.dry_run = dry_run

    def _author_check(self, data: bytes, now: datetime) -> VerificationResult | _Skip:
        """Verify a never-checked author signature (``data`` without repository countersignatures): the engine's
        result (its typed facts are what gets recorded), or a skip when it does not pass ``nuseal verify``'s rules."""
        verifier = Verifier(
            VerificationPolicy.verify(),
            code_signing_roots=self.signing.code_signing_roots,
            timestamping_roots=self.signing.timestamping_roots,
            fetcher=self.signing.fetcher,
        )
        result = verifier.verify(PackageArchive.from_bytes(data), now=now)
        if not result.valid:
            problems = "; ".join(f"{i.code.value}: {i.message}" if i.code else i.message for i in result.errors)
            return _Skip(f"its author signature does not verify ({problems or 'invalid'})")
        return result

    def one(self, c: _Candidate) -> BackfillOutcome:
        """Sign one version (or say what would be done, or why it is skipped).

        Raises:
            NusealError: the TSA or the repository key failed, or the package cannot be signed.
            OSError, SQLAlchemyError: the storage or the database failed.
        """
        found = self._sign(c)
        if isinstance(found, _Skip):
            return BackfillOutcome(c.id, c.version, "skipped", "", reason=found.reason)
        return found

    def _sign(self, c: _Candidate) -> BackfillOutcome | _Skip:
        if c.revoked:
            return _Skip("the version is revoked (its author certificate was revoked)")
        try:
            stored = self.service.storage.read_bytes(docs.nupkg_key(c.id_lower, c.version_lower))
        except OSError as exc:
            return _Skip(f"its .nupkg cannot be read ({exc.strerror or exc})")
        if stored is None:
            return _Skip("its .nupkg is not in the storage")
        if package_sha512(stored) != c.sha512:
            return _Skip("its stored .nupkg does not match the SHA-512 recorded at publication")
        now = self.service.clock()
        try:
            archive = PackageArchive.from_bytes(stored)
            described = _describe_before(archive)
            if isinstance(described, _Skip):
                return described
            before, primary = described
            if primary is None:
                data = stored
            elif primary.type is SignatureType.REPOSITORY:
                data = archive.without_signature()
            else:
                data, _ = without_repository_countersignatures(stored, now)
        except (PackageFormatError, SignatureFormatError) as exc:
            return _Skip(f"its signature cannot be read ({exc})")
        facts: list[SignatureFacts] = []
        if primary is not None and primary.type is SignatureType.AUTHOR and not c.author_recorded:
            checked = self._author_check(data, now)
            if isinstance(checked, _Skip):
                return checked
            assert checked.primary is not None  # a valid result has a readable primary signature
            facts.append(verified_facts(checked.primary))
        placement = "countersignature" if primary is not None and primary.type is SignatureType.AUTHOR else "primary"
        if self.dry_run:
            return BackfillOutcome(c.id, c.version, "would-sign", before, placement)
        with self.service.db.read() as session:
            owners = sorted(owners_of(session, c.id_lower), key=str.lower)
        result = repository_sign_package(
            data,
            self.signing.signer,
            v3_service_index_url=self.service.config.repository_index_url,
            owners=owners,
            timestamper_url=self.signing.timestamper_url,
            now=now,
            trust=self.signing.signing_trust(),
        )
        signed = result.data
        facts.append(signed_facts(result.signature))

        def change(session: Session, row: Package) -> None:
            for old in session.scalars(
                select(PackageSignature).where(
                    PackageSignature.package_pk == row.pk, PackageSignature.kind == "repository"
                )
            ).all():
                session.delete(old)
            session.flush()
            record_signature_facts(
                session,
                row,
                facts,
                now=now,
                author_actor="nuseal admin repository-sign",
                backfill=True,
                before=before,
                previous_sha512=c.sha512,
                sha512=row.sha512,
            )

        if not self.service.replace_stored_package(
            c.id_lower, c.version_lower, signed, expect_sha512=c.sha512, change=change
        ):
            return _Skip("the version changed or went away during the run")
        return BackfillOutcome(c.id, c.version, "signed", before, placement)


def repository_sign_stored(
    service: FeedService,
    signing: FeedSigning,
    *,
    limit: int = DEFAULT_LIMIT,
    dry_run: bool = False,
    on_outcome: Callable[[BackfillOutcome], None] = lambda _o: None,
) -> BackfillSummary:
    """One backfill run (module docstring) with the feed's signing context ``signing``; ``on_outcome`` hears of
    each version as it is done (progress). A version that cannot be signed because of the package is skipped
    with its reason; the run goes on.

    Raises:
        FeedError: the repository key, the TSA, the storage or the database failed: the run stops at that
            version, which is unchanged; versions signed so far stay signed.
    """
    fingerprint = certificate_fingerprint(signing.signer.certificate)
    with service.db.read() as session:
        repository_pk = session.scalar(select(Certificate.pk).where(Certificate.fingerprint == fingerprint))
        candidates, more = _candidates(session, repository_pk, limit)
    summary = BackfillSummary(fingerprint, more_pending=more, dry_run=dry_run)
    work = _Backfill(service, signing, dry_run=dry_run)
    for c in candidates:
        try:
            outcome = work.one(c)
        except NusealError as exc:
            if exc.code in PACKAGE_SIGNING_CODES:  # the package's own problem (ZIP64, too many entries, ...)
                outcome = BackfillOutcome(c.id, c.version, "skipped", "", reason=f"cannot be signed: {exc.message}")
            else:
                raise FeedError(
                    f"stopped at {c.id} {c.version}, which is unchanged: {exc} "
                    f"({summary.count('signed')} version(s) signed before it stay signed; run again once fixed)",
                    code=exc.code,
                ) from exc
        except (OSError, SQLAlchemyError) as exc:
            raise FeedError(
                f"stopped at {c.id} {c.version}, which is unchanged: the storage or database failed ({exc}); "
                f"{summary.count('signed')} version(s) signed before it stay signed; run again once fixed"
            ) from exc
        summary.outcomes.append(outcome)
        on_outcome(outcome)
    if dry_run:
        with service.db.read() as session:
            summary.all_repository_signed = count_without_repository_signature(session) == 0
    else:
        summary.all_repository_signed = refresh_repository_signatures(service.context, signing)
    return summary
