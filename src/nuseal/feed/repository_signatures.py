"""The ``RepositorySignatures/5.0.0`` resource: the feed's repository-signing certificates.

Document (NuGet server API ``repository-signatures-resource.md``; NUGET-SIGNING.md §4.6)::

    {"allRepositorySigned": true,
     "signingCertificates": [{"fingerprints": {"2.16.840.1.101.3.4.2.1": "<lower-case hex SHA-256>"},
                              "subject": "...", "issuer": "...", "notBefore": "...", "notAfter": "...",
                              "contentUrl": ".../v3/repository-signatures/certificates/<fingerprint>.crt"}]}

Written at every start to ``v3/repository-signatures/index.json`` with each certificate's DER beside it, both
served as static files. A certificate is added the first time the feed signs with it and never removed (removing
one would invalidate every signature it made, as nuget.org notes). ``allRepositorySigned`` is true when every
stored version carries the feed's repository signature (versions published before signing was enabled do not).
Whether the service index lists the resource is :attr:`FeedConfig.advertises_repository_signatures`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from nuseal.feed import audit
from nuseal.feed import documents as docs
from nuseal.feed.certificates import remember_certificate
from nuseal.feed.models import Certificate, Package, PackageSignature
from nuseal.feed.repository_signing import FeedSigning
from nuseal.feed.service import FeedService

__all__ = ["SHA256_OID", "install_repository_signatures", "repository_signatures_document"]

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


def _all_repository_signed(session: Session) -> bool:
    signed = exists().where(PackageSignature.package_pk == Package.pk, PackageSignature.kind == "repository")
    unsigned = session.scalar(select(func.count(Package.pk)).where(~signed)) or 0
    return unsigned == 0


def install_repository_signatures(service: FeedService, signing: FeedSigning) -> None:
    """Add the setup hook that records the current repository certificate and writes the resource."""

    def publish(svc: FeedService) -> None:
        now = svc.clock()
        cert = signing.signer.certificate
        with svc.db.write() as session:
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
            certs = list(
                session.scalars(
                    select(Certificate)
                    .where(Certificate.repository_since.is_not(None))
                    .order_by(Certificate.repository_since, Certificate.pk)
                ).all()
            )
            all_signed = _all_repository_signed(session)
        for c in certs:
            svc.storage.put_bytes(docs.repository_certificate_key(c.fingerprint), c.der, durable=True)
        document = repository_signatures_document(svc.urls, certs, all_repository_signed=all_signed)
        svc.storage.put_bytes(docs.REPOSITORY_SIGNATURES_KEY, docs.dump(document), durable=True)

    service.setup_hooks.append(publish)
