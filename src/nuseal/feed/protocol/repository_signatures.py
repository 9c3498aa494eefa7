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

Other repositories' certificates (``SigningConfig.listed_repository_certificates``: a feed that serves packages
another repository signed, unchanged) are listed after the feed's own (:func:`listed_certificates`); with signing
off the document lists only them, with ``allRepositorySigned`` false.

This module holds the document and how it is computed and written; keeping it current (the setup and publish
hooks, the repository certificate's row) is :mod:`nuseal.feed.signing.repository_certificates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from nuseal.errors import ConfigError
from nuseal.feed.accounts.certificates import certificate_fingerprint, certificate_row, parse_certificate_upload
from nuseal.feed.errors import FeedError
from nuseal.feed.protocol import documents as docs
from nuseal.feed.store.models import Certificate, Package, PackageSignature
from nuseal.feed.store.storage import Storage

__all__ = [
    "SHA256_OID",
    "count_without_repository_signature",
    "listed_certificates",
    "repository_certificates",
    "repository_signatures_document",
    "write_repository_signatures",
]

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


def repository_certificates(session: Session) -> list[Certificate]:
    """The feed's repository certificates, oldest first (by the time the feed first signed with each)."""
    return list(
        session.scalars(
            select(Certificate)
            .where(Certificate.repository_since.is_not(None))
            .order_by(Certificate.repository_since, Certificate.pk)
        ).all()
    )


def listed_certificates(paths: Sequence[str], *, after: Sequence[Certificate] = ()) -> list[Certificate]:
    """``after`` followed by the certificates in the files ``paths`` (one PEM or DER certificate each), in that
    order, each fingerprint once. The listed ones are unsaved :class:`Certificate` rows (the feed never signs with
    them; they are only written into the document).

    Raises:
        ConfigError: a file cannot be read or is not one certificate, naming it.
    """
    out = list(after)
    seen = {c.fingerprint for c in out}
    for path in paths:
        try:
            cert = parse_certificate_upload(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the listed repository certificate {path}: {exc.strerror or exc}") from exc
        except FeedError as exc:
            raise ConfigError(f"the listed repository certificate {path}: {exc.message}") from exc
        fingerprint = certificate_fingerprint(cert)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        out.append(certificate_row(cert, fingerprint))
    return out


def write_repository_signatures(
    storage: Storage, urls: docs.Urls, certificates: list[Certificate], *, all_signed: bool
) -> None:
    """Write each certificate's DER and then the resource document (durably), as the static files served."""
    for c in certificates:
        storage.put_bytes(docs.repository_certificate_key(c.fingerprint), c.der, durable=True)
    document = repository_signatures_document(urls, certificates, all_repository_signed=all_signed)
    storage.put_bytes(docs.REPOSITORY_SIGNATURES_KEY, docs.dump(document), durable=True)
