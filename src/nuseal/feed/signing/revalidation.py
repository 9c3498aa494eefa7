"""Revalidation: recheck the revocation of every certificate the feed's signatures use, and act on the answers.

Run by ``nuseal admin revalidate`` and by a background task of ``nuseal serve`` (every
``SigningConfig.revalidate_seconds``, and early after a push over the certificates never asked yet; one worker
at a time, see :func:`try_acquire_lease`). nuget.org's
revalidation job (NuGetGallery ``Validation.PackageSigning.RevalidateCertificate``, ``SignatureDeciderFactory``;
``../shared/NUGET-SIGNING.md`` §5.3) is the reference.

Certificates checked (:func:`revalidate`): the signers of the author and repository signatures in
``package_signatures``, the feed's own repository certificates (``repository_since``), and the timestamping
certificates of those signatures, which a bounded scan of the published packages records first (their
``certificates`` rows; the fingerprints are kept in the ``feed_settings`` row :data:`TIMESTAMP_CERTIFICATES_SETTING`).
At most :data:`MAX_CERTIFICATES_PER_RUN` per run, those checked longest ago (or never) first, so a large feed is
covered over several runs.

Each certificate is asked with nuseal.trust's :class:`~nuseal.trust.RevocationChecker` (OCSP first, then CRL;
online, no cache, so a revocation is seen at once), with the issuer taken from the chain stored at publication
(``Certificate.chain_pem``); then each CA certificate above it but the root (NuGet's ``ExcludeRoot``). A revoked CA
certificate counts as the certificate's revocation without a known time (nuget.org rejects every signature whose
chain has the Revoked flag). Then:

* **good / revoked** different from the stored status (or a different revocation time): the certificate row is
  updated and a ``certificate.status-changed`` audit row written with the evidence (method OCSP or CRL, the
  responder URL, revocation time and reason, the answer); the documents of the ids using the certificate are
  rewritten so their registration leaves show it;
* **unknown** (responder down, no URLs, unusable answer): only ``status_detail`` / ``status_checked_at`` are
  updated; the status stays what it was; not an error, no audit row;
* an **author** certificate whose stored status is ``revoked``: each of its ``valid`` author signatures is
  judged as ``SignatureDeciderFactory`` does for a revoked code-signing certificate: revocation time unknown ->
  revoked; no timestamp -> revoked; timestamp (genTime) >= revocation time -> revoked; timestamp before the
  revocation -> stays valid. A revoked signature makes its version ``signature_status="revoked"`` and unlisted,
  with a ``package.revoked`` audit row (certificate, method, responder, revocation time, reason, the timestamp
  compared and the rule) and its documents rewritten (:meth:`FeedService.revoke_author_signature`);
* a revoked **repository** or **timestamping** certificate is recorded and audited only: nuget.org only warns
  after ingestion for a revoked TSA, and re-signing with a new repository certificate is an operator's step
  (configure a new key, then ``nuseal admin repository-sign``, :mod:`nuseal.feed.signing.backfill`).

Idempotent: a run against unchanged responders changes nothing and writes no audit row. Two runs at once (the
CLI while a worker runs) stay correct: every change re-reads its row under a write lock and compares first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nuseal.errors import NusealError, UsageError
from nuseal.feed.accounts.certificates import certificate_fingerprint, remember_certificate
from nuseal.feed.protocol import documents as docs
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.signatures import read_signatures
from nuseal.feed.store import audit
from nuseal.feed.store.models import Certificate, FeedSetting, Package, PackageSignature
from nuseal.package import PackageArchive
from nuseal.trust import (
    RevocationChecker,
    RevocationFetcher,
    RevocationMode,
    RevocationResult,
    RevocationStatus,
    dotnet_name,
)
from nuseal.trust.certificate import load_der_certificate
from nuseal.trust.revocation import ocsp_urls

__all__ = [
    "NEW_CERTIFICATE_DELAY_SECONDS",
    "RevalidationTask",
    "LEASE_SECONDS",
    "LEASE_SETTING",
    "MAX_CERTIFICATES_PER_RUN",
    "MAX_PACKAGES_SCANNED_PER_RUN",
    "MAX_SIGNATURES_PER_CERTIFICATE",
    "CertificateCheck",
    "RevalidationSummary",
    "release_lease",
    "revalidate",
    "try_acquire_lease",
]

log = logging.getLogger(__name__)

#: Certificates asked per run (each costs up to ``REVOCATION_BUDGET_SECONDS`` of network time when responders hang).
MAX_CERTIFICATES_PER_RUN = 200
#: Published packages read per run to find their timestamping certificates.
MAX_PACKAGES_SCANNED_PER_RUN = 200
#: Signatures of one revoked certificate judged per run (the rest wait for the next run).
MAX_SIGNATURES_PER_CERTIFICATE = 1000
#: Package ids whose documents are rewritten per certificate status change.
MAX_DOCUMENT_REWRITES_PER_CERTIFICATE = 1000
#: Timestamping certificates remembered (a feed sees few TSAs; each has one or a few certificates).
MAX_TIMESTAMP_CERTIFICATES = 1000
#: Largest package read for the timestamp scan (the feed's own upload cap is the real bound).
MAX_SCANNED_PACKAGE_BYTES = 1 << 30
#: Longest chain built from ``chain_pem``.
MAX_CHAIN_LENGTH = 8

#: How long the background task's lease lasts (seconds) and how often a running task renews it.
LEASE_SECONDS = 120.0
LEASE_RENEW_SECONDS = 30.0

#: ``feed_settings`` keys: the background task's lease, the timestamp scan's cursor (last package pk read) and the
#: fingerprints of the timestamping certificates found (JSON list).
LEASE_SETTING = "revalidation.lease"
SCAN_CURSOR_SETTING = "revalidation.scan-cursor"
TIMESTAMP_CERTIFICATES_SETTING = "revalidation.timestamp-certificates"


@dataclass(frozen=True)
class CertificateCheck:
    """The answer for one certificate in one run. ``role``: ``author``, ``repository`` or ``timestamp``;
    ``status``: the answer (``good``, ``revoked``, ``unknown``); ``changed``: the stored status changed;
    ``method``: ``OCSP`` or ``CRL`` (None when unknown); ``source``: the responder URL."""

    fingerprint: str
    subject: str
    role: str
    status: str
    changed: bool
    method: str | None
    source: str | None
    revocation_time: datetime | None
    reason: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "role": self.role,
            "status": self.status,
            "changed": self.changed,
            "method": self.method,
            "source": self.source,
            "revocationTime": self.revocation_time.isoformat() if self.revocation_time else None,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class RevalidationSummary:
    """What one run did. ``status_changes`` counts certificate status changes; ``packages_revoked`` the versions
    revoked and unlisted (``(id, version)``); ``signatures_kept`` the author signatures of revoked certificates
    that stay valid because their timestamp is before the revocation; ``more_pending``: the per-run bounds left
    work for the next run."""

    started_at: datetime
    finished_at: datetime | None = None
    checks: list[CertificateCheck] = field(default_factory=list)
    packages_revoked: list[tuple[str, str]] = field(default_factory=list)
    signatures_kept: int = 0
    timestamp_certificates_found: int = 0
    packages_scanned: int = 0
    more_pending: bool = False
    stopped: bool = False

    @property
    def certificates_checked(self) -> int:
        return len(self.checks)

    @property
    def status_changes(self) -> int:
        return sum(c.changed for c in self.checks)

    @property
    def unknown(self) -> int:
        return sum(c.status == "unknown" for c in self.checks)

    def describe(self) -> str:
        """One line: ``checked N certificates, M status changes, K packages revoked`` and the rest."""
        text = (
            f"checked {self.certificates_checked} certificate(s), {self.status_changes} status change(s), "
            f"{len(self.packages_revoked)} package(s) revoked"
        )
        extras = []
        if self.unknown:
            extras.append(f"{self.unknown} with unknown revocation status")
        if self.signatures_kept:
            extras.append(f"{self.signatures_kept} signature(s) kept: timestamped before the revocation")
        if self.more_pending:
            extras.append("more work left for the next run")
        if self.stopped:
            extras.append("stopped early")
        return text + (f" ({'; '.join(extras)})" if extras else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "certificatesChecked": self.certificates_checked,
            "statusChanges": self.status_changes,
            "unknown": self.unknown,
            "packagesRevoked": [{"id": i, "version": v} for i, v in self.packages_revoked],
            "signaturesKept": self.signatures_kept,
            "packagesScanned": self.packages_scanned,
            "timestampCertificatesFound": self.timestamp_certificates_found,
            "morePending": self.more_pending,
            "stopped": self.stopped,
            "certificates": [c.to_json() for c in self.checks],
        }


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------------ lease
def try_acquire_lease(
    service: FeedService, owner: str, *, seconds: float, now: datetime | None = None, key: str = LEASE_SETTING
) -> bool:
    """Take (or renew) the revalidation lease for ``owner`` until ``now + seconds``; False when another owner
    holds an unexpired lease. The lease is a ``feed_settings`` row (``key``, default :data:`LEASE_SETTING`; other
    background tasks elect their one worker with their own key): SQLite's writer lock or PostgreSQL's row lock make
    the read-compare-write atomic, so of several workers one runs at a time."""
    at = now or service.clock()
    until = at + timedelta(seconds=seconds)
    value = json.dumps({"owner": owner, "until": until.isoformat()})
    with service.db.write() as session:
        dialect = session.get_bind().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(FeedSetting)
        session.execute(insert.values(key=key, value="{}").on_conflict_do_nothing(index_elements=["key"]))
        row = session.scalar(select(FeedSetting).where(FeedSetting.key == key).with_for_update())
        assert row is not None
        try:
            held = json.loads(row.value)
            holder, held_until = str(held["owner"]), datetime.fromisoformat(held["until"])
        except (ValueError, KeyError, TypeError):
            holder, held_until = "", at
        if holder and holder != owner and held_until > at:
            return False
        row.value = value
    return True


def release_lease(service: FeedService, owner: str, *, key: str = LEASE_SETTING) -> None:
    """Give the lease (``key``) up (at shutdown) when ``owner`` holds it, so another worker can take over at once."""
    with service.db.write() as session:
        row = session.scalar(select(FeedSetting).where(FeedSetting.key == key).with_for_update())
        if row is None:
            return
        try:
            holder = json.loads(row.value).get("owner")
        except (ValueError, AttributeError):
            holder = None
        if holder == owner:
            row.value = "{}"


def new_lease_owner() -> str:
    """A lease owner name unique to this process and task."""
    return uuid.uuid4().hex


# ------------------------------------------------------------------------------------------------ timestamps
def _setting(session: Session, key: str) -> str | None:
    row = session.get(FeedSetting, key)
    return row.value if row is not None else None


def _timestamp_fingerprints(session: Session) -> list[str]:
    raw = _setting(session, TIMESTAMP_CERTIFICATES_SETTING)
    try:
        found = json.loads(raw) if raw else []
    except ValueError:
        found = []
    return [str(f) for f in found][:MAX_TIMESTAMP_CERTIFICATES]


def _read_package(service: FeedService, id_lower: str, version_lower: str) -> bytes | None:
    """The stored ``.nupkg``, or None when it is missing, unreadable or over :data:`MAX_SCANNED_PACKAGE_BYTES`."""
    try:
        found = service.storage.open(docs.nupkg_key(id_lower, version_lower))
        if found is None:
            return None
        with found as stored:
            if stored.info.size > MAX_SCANNED_PACKAGE_BYTES:
                return None
            return stored.read()
    except OSError:
        return None


def _stamps(data: bytes, now: datetime) -> list[tuple[x509.Certificate, tuple[x509.Certificate, ...]]]:
    """(TSA certificate, certificates of its token) of every timestamp of the primary signature and of its
    repository countersignature, from the engine's typed reading (:func:`read_signatures`).

    Raises:
        PackageFormatError: the bytes are not a readable package.
    """
    result = read_signatures(PackageArchive.from_bytes(data), now)
    if result is None:
        return []
    return [
        (load_der_certificate(stamp.authority.der), tuple(load_der_certificate(d) for d in stamp.certificates))
        for signature in result.signatures
        for stamp in signature.timestamp_details
        if stamp.authority is not None
    ]


def _scan_timestamps(service: FeedService, summary: RevalidationSummary) -> None:
    """Record the timestamping certificates of up to :data:`MAX_PACKAGES_SCANNED_PER_RUN` signed packages not
    scanned yet (a cursor over package pks), as ``certificates`` rows with their chains."""
    with service.db.read() as session:
        cursor = int(_setting(session, SCAN_CURSOR_SETTING) or 0)
        rows = session.execute(
            select(Package.pk, Package.id_lower, Package.version_lower)
            .where(Package.pk > cursor, Package.pk.in_(select(PackageSignature.package_pk)))
            .order_by(Package.pk)
            .limit(MAX_PACKAGES_SCANNED_PER_RUN + 1)
        ).all()
    if len(rows) > MAX_PACKAGES_SCANNED_PER_RUN:
        summary.more_pending = True
        rows = rows[:MAX_PACKAGES_SCANNED_PER_RUN]
    if not rows:
        return
    found: dict[str, tuple[x509.Certificate, tuple[x509.Certificate, ...]]] = {}
    now = service.clock()
    for _pk, id_lower, version_lower in rows:
        data = _read_package(service, id_lower, version_lower)
        if data is None:
            continue
        try:
            for cert, chain in _stamps(data, now):
                found.setdefault(certificate_fingerprint(cert), (cert, chain))
        except (NusealError, ValueError) as exc:
            log.warning("revalidation could not read the signature of %s %s: %s", id_lower, version_lower, exc)
    summary.packages_scanned += len(rows)
    with service.db.write() as session:
        known = _timestamp_fingerprints(session)
        for fp, (cert, chain) in found.items():
            remember_certificate(session, cert, now=now, chain=chain)
            if fp not in known and len(known) < MAX_TIMESTAMP_CERTIFICATES:
                known.append(fp)
                summary.timestamp_certificates_found += 1
        session.merge(FeedSetting(key=TIMESTAMP_CERTIFICATES_SETTING, value=json.dumps(known)))
        session.merge(FeedSetting(key=SCAN_CURSOR_SETTING, value=str(rows[-1][0])))


# ------------------------------------------------------------------------------------------------ checking
def _chain(row: Certificate) -> list[x509.Certificate]:
    """The certificate, then its issuers from ``chain_pem`` in order (each verified to have signed the one
    before), as far as they go."""
    leaf = load_der_certificate(row.der)
    try:
        pool = x509.load_pem_x509_certificates(row.chain_pem.encode("ascii")) if row.chain_pem.strip() else []
    except ValueError:
        pool = []
    chain = [leaf]
    while len(chain) < MAX_CHAIN_LENGTH:
        current = chain[-1]
        if current.issuer == current.subject:
            break
        issuer = None
        for candidate in pool:
            if candidate.subject != current.issuer or candidate in chain:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = candidate
            break
        if issuer is None:
            break
        chain.append(issuer)
    return chain


def _method(cert: x509.Certificate, result: RevocationResult) -> str | None:
    if result.source is None:
        return None
    return "OCSP" if result.source in ocsp_urls(cert) else "CRL"


def _detail(result: RevocationResult, method: str | None) -> str:
    if result.status is RevocationStatus.REVOKED:
        when = result.revocation_time.isoformat() if result.revocation_time else "an unknown time"
        reason = result.reason or "unspecified"
        return f"revoked at {when} ({reason}), according to {method} {result.source}"
    return result.message


@dataclass(frozen=True)
class _Answer:
    """A certificate's answer: its own, or (``issuer`` set) the revocation of a CA certificate above it."""

    cert: x509.Certificate
    result: RevocationResult
    method: str | None
    detail: str
    issuer: str | None = None


def _check(checker: RevocationChecker, row: Certificate, now: datetime) -> _Answer:
    """Ask about the certificate, then (unless it is revoked itself) about each CA certificate above it but the
    root, as NuGet's chain build does (``X509RevocationFlag.ExcludeRoot``). A revoked CA makes the answer
    ``REVOKED`` without a revocation time: nuget.org's ``SignatureDeciderFactory`` rejects every signature whose
    code-signing chain has the Revoked flag, whatever its timestamp."""
    chain = _chain(row)
    leaf = chain[0]
    try:
        result = checker.check(chain, 0, now=now, mode=RevocationMode.ONLINE)
    except UsageError:
        result = RevocationResult(
            RevocationStatus.UNKNOWN,
            "the certificate's issuer was not stored with it, so its revocation cannot be asked",
            now,
        )
        return _Answer(leaf, result, None, result.message)
    method = _method(leaf, result)
    if result.status is RevocationStatus.REVOKED:
        return _Answer(leaf, result, method, _detail(result, method))
    for index in range(1, len(chain) - 1):
        above = checker.check(chain, index, now=now, mode=RevocationMode.ONLINE)
        if above.status is not RevocationStatus.REVOKED:
            continue
        ca = dotnet_name(chain[index].subject)
        ca_method = _method(chain[index], above)
        revoked = RevocationResult(
            RevocationStatus.REVOKED,
            f"the issuing CA certificate {ca} is revoked: {above.message}",
            now,
            revocation_time=None,
            reason=above.reason,
            source=above.source,
            next_update=above.next_update,
        )
        return _Answer(leaf, revoked, ca_method, f"its issuing CA certificate {ca} was {_detail(above, ca_method)}", ca)
    return _Answer(leaf, result, method, _detail(result, method))


def _candidates(session: Session, *, only_unchecked: bool = False) -> tuple[list[Certificate], dict[int, str], bool]:
    """The certificates to ask this run (oldest check first; with ``only_unchecked`` only those never asked), their
    roles, and whether more are waiting."""
    roles: dict[int, str] = {}
    for pk, kind in session.execute(select(PackageSignature.certificate_pk, PackageSignature.kind).distinct()).all():
        if roles.get(pk) != "author":  # an author certificate's role decides what a revocation does
            roles[pk] = kind
    for pk in session.scalars(select(Certificate.pk).where(Certificate.repository_since.is_not(None))).all():
        roles.setdefault(pk, "repository")
    tsa = _timestamp_fingerprints(session)
    if tsa:
        for pk in session.scalars(select(Certificate.pk).where(Certificate.fingerprint.in_(tsa))).all():
            roles.setdefault(pk, "timestamp")
    if not roles:
        return [], roles, False
    query = select(Certificate).where(Certificate.pk.in_(list(roles)))
    if only_unchecked:
        query = query.where(Certificate.status_checked_at.is_(None))
    rows = session.scalars(
        query.order_by(Certificate.status_checked_at.asc().nulls_first(), Certificate.pk)
        .limit(MAX_CERTIFICATES_PER_RUN + 1)
    ).all()
    return list(rows[:MAX_CERTIFICATES_PER_RUN]), roles, len(rows) > MAX_CERTIFICATES_PER_RUN


def _record(service: FeedService, cert_pk: int, answer: _Answer, role: str, now: datetime) -> CertificateCheck:
    """Store the answer; audit a status change. Returns what happened."""
    result, method, detail = answer.result, answer.method, answer.detail
    with service.db.write() as session:
        row = session.scalar(select(Certificate).where(Certificate.pk == cert_pk).with_for_update())
        assert row is not None
        old_status, old_time = row.status, _utc(row.revocation_time)
        changed = False
        if result.status is not RevocationStatus.UNKNOWN:
            new_time = result.revocation_time if result.status is RevocationStatus.REVOKED else None
            if old_status != result.status.value or old_time != new_time:
                changed = True
                row.status = result.status.value
                row.revocation_time = new_time
                audit.record(
                    session,
                    at=now,
                    actor=audit.FEED_ACTOR,
                    action="certificate.status-changed",
                    target=f"certificate:{row.fingerprint}",
                    subject=row.subject,
                    role=role,
                    old_status=old_status,
                    old_revocation_time=old_time,
                    status=result.status.value,
                    method=method,
                    responder=result.source,
                    revocation_time=result.revocation_time,
                    reason=result.reason,
                    revoked_issuer=answer.issuer,
                    answer=result.message,
                )
        row.status_detail = detail
        row.status_checked_at = now
        return CertificateCheck(
            row.fingerprint,
            row.subject,
            role,
            result.status.value,
            changed,
            method,
            result.source,
            result.revocation_time,
            result.reason,
            detail,
        )


def _judge_signatures(
    service: FeedService, cert_pk: int, check: CertificateCheck, summary: RevalidationSummary, now: datetime
) -> None:
    """Apply ``SignatureDeciderFactory``'s revoked-code-signing-certificate rules to the certificate's valid author
    signatures (module docstring)."""
    with service.db.read() as session:
        row = session.get(Certificate, cert_pk)
        assert row is not None
        if row.status != "revoked":
            return
        revoked_at = _utc(row.revocation_time)
        stored_detail = row.status_detail
        sigs = session.execute(
            select(PackageSignature.pk, PackageSignature.timestamp_at)
            .where(
                PackageSignature.certificate_pk == cert_pk,
                PackageSignature.kind == "author",
                PackageSignature.status == "valid",
            )
            .order_by(PackageSignature.pk)
            .limit(MAX_SIGNATURES_PER_CERTIFICATE + 1)
        ).all()
    if len(sigs) > MAX_SIGNATURES_PER_CERTIFICATE:
        summary.more_pending = True
        sigs = sigs[:MAX_SIGNATURES_PER_CERTIFICATE]
    for sig_pk, raw_stamp in sigs:
        stamp = _utc(raw_stamp)
        if revoked_at is None:
            rule = (
                "the revocation time is unknown, or an issuing CA certificate is revoked: every signature of the "
                "certificate is revoked"
            )
        elif stamp is None:
            rule = "the signature has no timestamp to prove it was made before the revocation"
        elif stamp >= revoked_at:
            rule = "the signature's timestamp is at or after the certificate's revocation time"
        else:
            summary.signatures_kept += 1
            continue
        evidence = {
            "fingerprint": check.fingerprint,
            "subject": check.subject,
            "revocation_time": revoked_at,
            "reason": check.reason,
            "method": check.method,
            "responder": check.source,
            "answer": check.detail if check.status == "revoked" else stored_detail,
            "timestamp": stamp,
            "rule": rule,
        }
        done = service.revoke_author_signature(sig_pk, now=now, actor=audit.FEED_ACTOR, evidence=evidence)
        if done is not None:
            summary.packages_revoked.append(done)
            log.warning("revoked %s %s: %s (%s)", done[0], done[1], rule, check.detail)


def _rewrite_users_of(service: FeedService, cert_pk: int, summary: RevalidationSummary) -> None:
    """Rewrite the documents of the ids whose versions carry a signature by the certificate (their leaves show
    its status)."""
    with service.db.read() as session:
        ids = session.scalars(
            select(Package.id_lower)
            .join(PackageSignature, PackageSignature.package_pk == Package.pk)
            .where(PackageSignature.certificate_pk == cert_pk)
            .distinct()
            .order_by(Package.id_lower)
            .limit(MAX_DOCUMENT_REWRITES_PER_CERTIFICATE + 1)
        ).all()
    if len(ids) > MAX_DOCUMENT_REWRITES_PER_CERTIFICATE:
        log.warning("more than %d ids use a certificate whose status changed; run `nuseal admin rebuild`", len(ids))
        ids = ids[:MAX_DOCUMENT_REWRITES_PER_CERTIFICATE]
    for id_lower in ids:
        service.rewrite_documents(id_lower)


def revalidate(
    service: FeedService,
    *,
    fetcher: RevocationFetcher,
    should_stop: Callable[[], bool] = lambda: False,
    only_unchecked: bool = False,
) -> RevalidationSummary:
    """One revalidation run over ``service`` (module docstring). ``fetcher`` carries the OCSP/CRL requests
    (the caller's choice to go online: the composition root and ``nuseal admin revalidate`` pass
    :class:`~nuseal.trust.online.HttpRevocationFetcher`); ``should_stop`` is asked between certificates (a
    shutting-down server stops early); ``only_unchecked`` asks only certificates never asked before (the
    background task's run just after a push, so a new signer's status is known in seconds, not at the next
    period). Revocation answers that cannot be had are recorded, never raised.

    Raises:
        ConfigError, SQLAlchemyError: the database cannot be used.
    """
    summary = RevalidationSummary(started_at=service.clock())
    checker = RevocationChecker(fetcher)
    _scan_timestamps(service, summary)
    with service.db.read() as session:
        rows, roles, more = _candidates(session, only_unchecked=only_unchecked)
    summary.more_pending |= more
    for row in rows:
        if should_stop():
            summary.stopped = True
            break
        now = service.clock()
        role = roles[row.pk]
        check = _record(service, row.pk, _check(checker, row, now), role, now)
        summary.checks.append(check)
        if role == "author":
            _judge_signatures(service, row.pk, check, summary, now)
        elif role == "repository" and check.changed and check.status == "revoked":
            log.error(
                "repository certificate %s (%s) is revoked: the signatures it made no longer verify; configure a "
                "new repository key, restart the feed, then run `nuseal admin repository-sign`",
                check.fingerprint,
                check.subject,
            )
        if check.changed and role != "timestamp":
            _rewrite_users_of(service, row.pk, summary)
    summary.finished_at = service.clock()
    return summary


def role_counts(checks: Sequence[CertificateCheck]) -> dict[str, int]:
    """How many certificates of each role were checked."""
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.role] = counts.get(c.role, 0) + 1
    return counts


# ------------------------------------------------------------------------------------------------ background task
#: How long the background revalidation waits after a push before asking the new certificates (seconds).
NEW_CERTIFICATE_DELAY_SECONDS = 2.0


class RevalidationTask:
    """The background revocation recheck of a serving feed (a background task of the composition root,
    :mod:`nuseal.feed.compose`): every ``period`` seconds, :func:`revalidate` in a thread, by whichever worker
    holds the lease (one at a time across workers and processes sharing the database). A push
    (:meth:`published`) wakes it early (after :data:`NEW_CERTIFICATE_DELAY_SECONDS`, so a burst of pushes makes
    one run) for a run over the certificates never asked yet, so a new signer's revocation status shows in
    seconds; the full run keeps its period. The lease is renewed while a run goes on and given up when the task
    is cancelled (shutdown). Failures are logged, the loop goes on. ``fetcher`` carries the OCSP/CRL requests
    (the composition root passes an HTTP fetcher)."""

    def __init__(self, service: FeedService, period: float, fetcher: RevocationFetcher) -> None:
        self.service = service
        self.period = period
        self.fetcher = fetcher
        self._new_certificates = asyncio.Event()
        self._stop = threading.Event()

    def published(self) -> None:
        """A push was published: ask its certificates soon."""
        self._new_certificates.set()

    async def run(self) -> None:
        """Run until cancelled."""
        owner = new_lease_owner()
        renewed = [0.0]
        service = self.service

        def keep_lease() -> bool:
            """``should_stop`` of the run: stop at shutdown or when the lease cannot be renewed."""
            if self._stop.is_set():
                return True
            if time.monotonic() - renewed[0] >= LEASE_RENEW_SECONDS:
                if not try_acquire_lease(service, owner, seconds=LEASE_SECONDS):
                    return True
                renewed[0] = time.monotonic()
            return False

        def run_once(only_unchecked: bool) -> RevalidationSummary | None:
            if not try_acquire_lease(service, owner, seconds=LEASE_SECONDS):
                return None
            renewed[0] = time.monotonic()
            return revalidate(service, fetcher=self.fetcher, should_stop=keep_lease, only_unchecked=only_unchecked)

        next_full = time.monotonic() + self.period
        try:
            while True:
                only_unchecked = await self._wait(next_full - time.monotonic())
                if not only_unchecked:
                    next_full = time.monotonic() + self.period
                try:
                    summary = await anyio.to_thread.run_sync(run_once, only_unchecked, abandon_on_cancel=True)
                except Exception:
                    log.exception("revalidation failed; retrying in %g s", self.period)
                    continue
                if summary is not None and (summary.status_changes or summary.packages_revoked):
                    log.warning("revalidation: %s", summary.describe())
                elif summary is not None and summary.checks:
                    log.info("revalidation: %s", summary.describe())
        finally:
            self._stop.set()  # an abandoned run in its thread stops at the next certificate
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(release_lease, service, owner)

    async def _wait(self, seconds: float) -> bool:
        """Wait until the next full run is due (``seconds`` from now; returns False) or a push asks for the new
        certificates (returns True, :data:`NEW_CERTIFICATE_DELAY_SECONDS` later)."""
        try:
            await asyncio.wait_for(self._new_certificates.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return False
        await asyncio.sleep(NEW_CERTIFICATE_DELAY_SECONDS)
        self._new_certificates.clear()
        return True
