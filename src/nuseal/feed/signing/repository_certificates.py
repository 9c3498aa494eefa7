"""Keeping ``RepositorySignatures/5.0.0`` current (:mod:`nuseal.feed.protocol.repository_signatures` has the
document): the feed's repository certificate is recorded (audited the first time) and the resource rewritten at
every start, and ``allRepositorySigned`` is turned false in the publish transaction of a version stored without a
repository signature.

Other repositories' certificates the configuration lists (``listed_repository_certificates``) follow the feed's
own in the document; with signing off, :func:`listed_setup_hook` writes the document with only them.

The composition root (:mod:`nuseal.feed.compose`) wires :func:`setup_hook` as a setup hook and
:func:`keep_all_repository_signed` as a publish hook, after the hook that records the package's signatures
(:meth:`nuseal.feed.signing.stages.SigningStages.record_signatures`), which it needs to see.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.accounts.certificates import remember_certificate
from nuseal.feed.protocol.repository_signatures import (
    count_without_repository_signature,
    listed_certificates,
    repository_certificates,
    write_repository_signatures,
)
from nuseal.feed.publish.submission import SetupHook, StageContext, Submission
from nuseal.feed.signing.signer import FeedSigning
from nuseal.feed.store import audit
from nuseal.feed.store.models import Certificate, Package, PackageSignature

__all__ = ["keep_all_repository_signed", "listed_setup_hook", "refresh_repository_signatures", "setup_hook"]

log = logging.getLogger(__name__)


def refresh_repository_signatures(context: StageContext, signing: FeedSigning) -> bool:
    """Record the feed's current repository certificate (audited the first time), recompute
    ``allRepositorySigned`` from the database and rewrite the resource. Returns ``allRepositorySigned``; when
    false, logs how many stored versions lack a repository signature and the command that signs them."""
    now = context.clock()
    cert = signing.signer.certificate
    with context.db.write() as session:
        row = remember_certificate(session, cert, now=now, chain=signing.signer.chain)
        if row.repository_since is None:
            row.repository_since = now
            audit.record(
                session,
                at=now,
                actor=audit.FEED_ACTOR,
                action="repository-certificate.added",
                target=f"certificate:{row.fingerprint}",
                subject=row.subject,
                issuer=row.issuer,
            )
        session.flush()
        certs = _with_listed(context, repository_certificates(session))
        unsigned = count_without_repository_signature(session)
    write_repository_signatures(context.storage, context.urls, certs, all_signed=unsigned == 0)
    if unsigned:
        log.warning(
            "%d stored version(s) carry no repository signature (pushed while signing was off); "
            "`nuseal admin repository-sign` signs them",
            unsigned,
        )
    return unsigned == 0


def _with_listed(context: StageContext, own: list[Certificate]) -> list[Certificate]:
    return listed_certificates(context.config.signing.listed_repository_certificates, after=own)


def listed_setup_hook(context: StageContext) -> None:
    """Setup hook with signing off: when the configuration lists certificates, the document lists only them,
    ``allRepositorySigned`` false (this feed enforces nothing); else nothing is written (a document from an earlier
    start with signing on stays as it was)."""
    if not context.config.signing.listed_repository_certificates:
        return
    write_repository_signatures(context.storage, context.urls, _with_listed(context, []), all_signed=False)


def setup_hook(signing: FeedSigning) -> SetupHook:
    """The setup hook that runs :func:`refresh_repository_signatures` with ``signing`` at every start."""

    def refresh(context: StageContext) -> None:
        refresh_repository_signatures(context, signing)

    return refresh


def keep_all_repository_signed(submission: Submission, context: StageContext, session: Session, row: Package) -> None:
    """Publish hook: a published version with a repository signature leaves ``allRepositorySigned`` as it was
    (every stored version signed before, and this one too; or not); one without turns it false, written in the
    publish transaction (a failed publish can leave it false until the next start, never wrongly true)."""
    signed = session.scalar(
        select(PackageSignature.pk)
        .where(PackageSignature.package_pk == row.pk, PackageSignature.kind == "repository")
        .limit(1)
    )
    if signed is None:
        certs = _with_listed(context, repository_certificates(session))
        write_repository_signatures(context.storage, context.urls, certs, all_signed=False)
