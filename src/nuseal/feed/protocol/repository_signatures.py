"""The ``RepositorySignatures/5.0.0`` resource: the feed's repository-signing certificates.

Document (NuGet server API ``repository-signatures-resource.md``; NUGET-SIGNING.md §4.6)::

    {"allRepositorySigned": true,
     "signingCertificates": [{"fingerprints": {"2.16.840.1.101.3.4.2.1": "<lower-case hex SHA-256>"},
                              "subject": "...", "issuer": "...", "notBefore": "...", "notAfter": "...",
                              "contentUrl": ".../v3/repository-signatures/certificates/<fingerprint>.crt"}]}

Written at every start to ``v3/repository-signatures/index.json`` with each certificate's DER beside it, both
served as static files. A certificate is added the first time the feed signs with it and never removed (removing
one would invalidate every signature it made, as nuget.org notes). Whether the service index lists the resource
is :attr:`FeedConfig.advertises_repository_signatures`.

``allRepositorySigned`` says whether every *stored* version (listed or not: NuGet clients apply it to any
package from the source, and unlisted versions can still be restored by exact version) carries the feed's
repository signature, recorded as a ``package_signatures`` row of kind ``repository``. It is computed from the
database at every start, and kept right after every publish by a publish hook (in the publish transaction,
after the signatures are recorded): a version stored without a repository signature turns it false at once.
Unlisting, relisting and revocation do not change it (they change no stored bytes).

When it can become true: on a feed whose every version was repository-signed when published (signing on from
its first version), or once ``nuseal admin repository-sign`` (:mod:`nuseal.feed.signing.backfill`) has signed the
versions stored without a repository signature (pushed while the feed ran with signing off, e.g. before signing was
turned on); that command recomputes it when it ends, and every start logs how many versions still lack one.
While the feed runs with signing off the document is not rewritten (nor listed in the service index); the next
start with signing on recomputes it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from nuseal.feed.accounts.certificates import remember_certificate
from nuseal.feed.protocol import documents as docs
from nuseal.feed.publish.pipeline import Submission
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.signing.signer import FeedSigning
from nuseal.feed.store import audit
from nuseal.feed.store.models import Certificate, Package, PackageSignature

__all__ = [
    "SHA256_OID",
    "count_without_repository_signature",
    "install_repository_signatures",
    "refresh_repository_signatures",
    "repository_signatures_document",
]

log = logging.getLogger(__name__)

#: The fingerprint key NuGet reads (``RepositoryCertificateInfo.Fingerprints``: hash algorithm OID -> hex).
SHA256_OID = "2.16.840.1.101.3.4.2.1"


def _iso(when: datetime) -> str:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def repository_signatures_document(
    urls: docs.Urls, certificates: list[Certificate], *, all_repository_signed: bool
) -> dict[str, Any]:
    """The resource document for ``certificates`` (oldest first)."""
    return {
        "allRepositorySigned": all_repository_signed,
        "signingCertificates": [
            {
                "fingerprints": {SHA256_OID: c.fingerprint},
                "subject": c.subject,
                "issuer": c.issuer,
                "notBefore": _iso(c.not_before),
                "notAfter": _iso(c.not_after),
                "contentUrl": urls.repository_certificate(c.fingerprint),
            }
            for c in certificates
        ],
    }


def count_without_repository_signature(session: Session) -> int:
    """How many stored versions carry no repository signature (no ``package_signatures`` row of that kind)."""
    signed = exists().where(PackageSignature.package_pk == Package.pk, PackageSignature.kind == "repository")
    return session.scalar(select(func.count(Package.pk)).where(~signed)) or 0


def _repository_certificates(session: Session) -> list[Certificate]:
    return list(
        session.scalars(
            select(Certificate)
            .where(Certificate.repository_since.is_not(None))
            .order_by(Certificate.repository_since, Certificate.pk)
        ).all()
    )


def _write_document(svc: FeedService, certs: list[Certificate], *, all_signed: bool) -> None:
    for c in certs:
        svc.storage.put_bytes(docs.repository_certificate_key(c.fingerprint), c.der, durable=True)
    document = repository_signatures_document(svc.urls, certs, all_repository_signed=all_signed)
    svc.storage.put_bytes(docs.REPOSITORY_SIGNATURES_KEY, docs.dump(document), durable=True)


def refresh_repository_signatures(service: FeedService, signing: FeedSigning) -> bool:
    """Record the feed's current repository certificate (audited the first time), recompute
    ``allRepositorySigned`` from the database and rewrite the resource. Returns ``allRepositorySigned``; when
    false, logs how many stored versions lack a repository signature and the command that signs them."""
    now = service.clock()
    cert = signing.signer.certificate
    with service.db.write() as session:
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
        certs = _repository_certificates(session)
        unsigned = count_without_repository_signature(session)
    _write_document(service, certs, all_signed=unsigned == 0)
    if unsigned:
        log.warning(
            "%d stored version(s) carry no repository signature (pushed while signing was off); "
            "`nuseal admin repository-sign` signs them",
            unsigned,
        )
    return unsigned == 0


def install_repository_signatures(service: FeedService, signing: FeedSigning) -> None:
    """Add the setup hook that records the current repository certificate and writes the resource, and the
    publish hook that keeps ``allRepositorySigned`` right after each publish (module docstring).

    The publish hook must run after the one that records the package's signatures (``install_signing`` appends
    it after :meth:`SigningStages.record_signatures`). A published version with a repository signature leaves
    the value as it was (every stored version signed before, and this one too; or not); one without turns it
    false, written in the publish transaction (a failed publish can leave it false until the next start, never
    wrongly true).
    """

    def publish(svc: FeedService) -> None:
        refresh_repository_signatures(svc, signing)

    def after_publish(session: Session, row: Package, submission: Submission) -> None:
        signed = session.scalar(
            select(PackageSignature.pk)
            .where(PackageSignature.package_pk == row.pk, PackageSignature.kind == "repository")
            .limit(1)
        )
        if signed is None:
            _write_document(service, _repository_certificates(session), all_signed=False)

    service.setup_hooks.append(publish)
    service.publish_hooks.append(after_publish)
