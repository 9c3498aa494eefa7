"""Signing-certificate registration per user, and the certificates the feed knows.

What nuget.org does (NuGetGallery ``CertificateValidator``, ``CertificateService``; ``../shared/NUGET-SIGNING.md``
§5.1), with two deliberate differences:

* the upload is a DER ``.cer`` (byte 0 ``0x30``, the outer SEQUENCE spanning exactly the file, its first element
  a SEQUENCE, at most 10000 bytes) or, unlike nuget.org, one PEM ``CERTIFICATE`` block, decoded to DER first;
* a certificate that could never pass the submission rules is refused at once with the reason and NuGet's code,
  where nuget.org only finds out when a package signed with it arrives: RSA < 2048 bits or not RSA (NU3014), a
  certificate signature algorithm other than sha256/384/512WithRSA (NU3013), the lifetime-signing EKU (NU3015),
  an EKU extension without code signing (NU3018, the chain's ``NotValidForUsage``), expired (NU3037).

Identity is nuget.org's: the SHA-256 of the DER bytes, lower-case hex (``Certificate.Thumbprint``); a certificate
may be registered by several users. Registering and removing need a fresh TOTP code
(:mod:`nuseal.feed.accounts.twofactor`) and are written to the audit log.

Once any owner of a package id has a registered certificate, pushes of that id must be author-signed with one of
the owners' registered certificates (:mod:`nuseal.feed.signing.stages`, NuGetGallery
``PackageRegistrationExtensions.IsSigningRequired`` / ``IsAcceptableSigningCertificate``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nuseal.codes import NuCode
from nuseal.feed.accounts.twofactor import require_code
from nuseal.feed.errors import BadRequestError, NotFoundError
from nuseal.feed.store import audit
from nuseal.feed.store.models import MAX_CERTIFICATE_BYTES, Certificate, Owner, User, UserCertificate
from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids
from nuseal.trust import CertificatePurpose, check_certificate_requirements, dotnet_name
from nuseal.trust.certificate import load_der_certificate

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_CERTIFICATES_PER_USER",
    "CertificateProblem",
    "RegisteredCertificate",
    "certificate_fingerprint",
    "certificate_row",
    "describe",
    "list_certificates",
    "owners_registered_fingerprints",
    "parse_certificate_upload",
    "register_certificate",
    "registration_problems",
    "remove_certificate",
    "remember_certificate",
]

#: Registered certificates one user may have.
MAX_CERTIFICATES_PER_USER = 50
#: Intermediate certificates kept with a certificate for revalidation.
MAX_CHAIN_CERTIFICATES = 8
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{64}$")
#: anyExtendedKeyUsage (RFC 5280 §4.2.1.12): valid for every purpose.
_ANY_EKU = "2.5.29.37.0"


@dataclass(frozen=True)
class CertificateProblem:
    """Why a certificate can never pass the submission rules: NuGet's code and a sentence."""

    code: NuCode
    message: str


@dataclass(frozen=True)
class RegisteredCertificate:
    """A certificate as listed to its owner: lower-case SHA-256 fingerprint, .NET-style names, validity."""

    fingerprint: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    registered_at: datetime | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "issuer": self.issuer,
            "notBefore": _iso(self.not_before),
            "notAfter": _iso(self.not_after),
            "registered": _iso(self.registered_at) if self.registered_at else None,
        }


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return _aware(when).astimezone(UTC).isoformat()


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER (nuget.org's thumbprint)."""
    return HashAlgorithm.SHA256.digest(cert.public_bytes(Encoding.DER)).hex()


def _der_shape_ok(data: bytes) -> bool:
    """nuget.org's ``CertificateFile`` check: one DER SEQUENCE spanning the file, whose first element is a
    SEQUENCE (rules out PKCS#12 and PKCS#7, whose first element is an INTEGER)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return False
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return offset + length == len(data) and len(data) > offset and data[offset] == 0x30


def parse_certificate_upload(data: bytes) -> x509.Certificate:
    """One certificate from an uploaded ``.cer``: DER, or a single PEM ``CERTIFICATE`` block.

    Raises:
        BadRequestError: empty, larger than :data:`MAX_CERTIFICATE_BYTES` (DER), not one certificate.
    """
    if not data:
        raise BadRequestError("the certificate file is empty")
    if len(data) > 4 * MAX_CERTIFICATE_BYTES:
        raise BadRequestError(f"the certificate file is larger than {MAX_CERTIFICATE_BYTES} bytes")
    der = data
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM.findall(data)
        if len(blocks) != 1:
            raise BadRequestError("a PEM upload must hold exactly one CERTIFICATE block")
        try:
            der = base64.b64decode(b"".join(blocks[0].split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError("the PEM certificate is not valid base64") from exc
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise BadRequestError(f"the certificate is larger than {MAX_CERTIFICATE_BYTES} bytes")
    if not _der_shape_ok(der):
        raise BadRequestError(
            "the file is not a DER-encoded X.509 certificate (.cer); export the public certificate only, "
            "not a .pfx/.p12 or .p7b"
        )
    try:
        return load_der_certificate(der)
    except ValueError as exc:
        raise BadRequestError(f"the file is not a readable X.509 certificate: {exc}") from exc


def registration_problems(cert: x509.Certificate, *, now: datetime) -> list[CertificateProblem]:
    """Why ``cert`` could never sign an accepted package (empty when it could).

    NuGet's own requirement checks first (``nuseal.trust.check_certificate_requirements``: signature algorithm,
    RSA >= 2048, lifetime-signing EKU; "not yet valid" is left out since time cures it), then the EKU the chain
    must allow (code signing, or anyExtendedKeyUsage, or no EKU extension at all as .NET treats it), then expiry
    at ``now``: nuget.org requires the certificate to be valid when a package is submitted.
    """
    problems: list[CertificateProblem] = []
    for failure in check_certificate_requirements(cert, purpose=CertificatePurpose.CODE_SIGNING, now=now):
        if failure.code is NuCode.NU3017:
            continue
        problems.append(CertificateProblem(failure.code, f"{failure.message} ({failure.detail})"))
    try:
        ekus = [u.dotted_string for u in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
    except x509.ExtensionNotFound:
        ekus = None
    except ValueError:
        ekus = []
    if ekus is not None and oids.CODE_SIGNING_EKU not in ekus and _ANY_EKU not in ekus:
        problems.append(
            CertificateProblem(
                NuCode.NU3018,
                "The certificate is not valid for code signing: its extended key usage does not include "
                f"code signing ({oids.CODE_SIGNING_EKU}).",
            )
        )
    if now > cert.not_valid_after_utc:
        problems.append(
            CertificateProblem(NuCode.NU3037, f"The certificate expired on {cert.not_valid_after_utc.isoformat()}.")
        )
    return problems


def describe(row: Certificate, registered_at: datetime | None = None) -> RegisteredCertificate:
    return RegisteredCertificate(
        row.fingerprint, row.subject, row.issuer, _aware(row.not_before), _aware(row.not_after), registered_at
    )


def _pem(certs: Iterable[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)


def certificate_row(cert: x509.Certificate, fingerprint: str | None = None) -> Certificate:
    """An unsaved ``certificates`` row describing ``cert``: its SHA-256 fingerprint (``fingerprint`` when the
    caller has it), DER, subject and issuer (.NET names) and validity; the other columns at their defaults."""
    return Certificate(
        fingerprint=fingerprint or certificate_fingerprint(cert),
        der=cert.public_bytes(Encoding.DER),
        subject=dotnet_name(cert.subject),
        issuer=dotnet_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def remember_certificate(
    session: Session, cert: x509.Certificate, *, now: datetime, chain: Sequence[x509.Certificate] = ()
) -> Certificate:
    """The ``certificates`` row of ``cert``, created when new. ``chain`` (issuers seen with it, leaf excluded)
    fills in the stored chain when it was empty."""
    fp = certificate_fingerprint(cert)
    row = session.scalar(select(Certificate).where(Certificate.fingerprint == fp))
    issuers = [c for c in chain if certificate_fingerprint(c) != fp][:MAX_CHAIN_CERTIFICATES]
    if row is None:
        row = certificate_row(cert, fp)
        row.chain_pem = _pem(issuers)
        row.first_seen_at = now
        row.status = "unknown"
        row.status_detail = ""
        session.add(row)
        session.flush()
    elif not row.chain_pem and issuers:
        row.chain_pem = _pem(issuers)
    return row


def _user_by_pk(session: Session, user_pk: int) -> User:
    user = session.get(User, user_pk)
    if user is None:
        raise NotFoundError("no such user")
    return user


def register_certificate(
    session: Session, user_pk: int, data: bytes, *, totp_code: str | None, now: datetime
) -> RegisteredCertificate:
    """Register the uploaded certificate for the user, after a fresh TOTP code. Idempotent for a certificate
    the user already has (the code is still spent).

    Raises:
        TwoFactorError: 2FA off, or a missing, wrong or replayed code (checked before the file is looked at).
        BadRequestError: not one certificate; or it can never pass the rules (the code of the first problem,
            every problem in the message); or the user has :data:`MAX_CERTIFICATES_PER_USER` already.
    """
    user = _user_by_pk(session, user_pk)
    require_code(session, user, totp_code, now=now)
    cert = parse_certificate_upload(data)
    problems = registration_problems(cert, now=now)
    if problems:
        raise BadRequestError(
            "the certificate can never sign an accepted package: " + " ".join(p.message for p in problems),
            code=problems[0].code,
        )
    row = remember_certificate(session, cert, now=now)
    link = session.get(UserCertificate, (user.pk, row.pk))
    if link is None:
        count = len(
            session.scalars(select(UserCertificate.certificate_pk).where(UserCertificate.user_pk == user.pk)).all()
        )
        if count >= MAX_CERTIFICATES_PER_USER:
            raise BadRequestError(f"a user may register at most {MAX_CERTIFICATES_PER_USER} certificates")
        link = UserCertificate(user_pk=user.pk, certificate_pk=row.pk, registered_at=now)
        session.add(link)
        audit.record(
            session,
            at=now,
            actor=user.name,
            action="certificate.registered",
            target=f"certificate:{row.fingerprint}",
            subject=row.subject,
            issuer=row.issuer,
            not_before=_aware(row.not_before),
            not_after=_aware(row.not_after),
        )
        session.flush()
    return describe(row, _aware(link.registered_at))


def _normalize_fingerprint(fingerprint: str) -> str:
    text = fingerprint.strip().replace(":", "")
    if not _FINGERPRINT.fullmatch(text):
        raise BadRequestError("a certificate fingerprint is 64 hex digits (SHA-256)")
    return text.lower()


def remove_certificate(
    session: Session, user_pk: int, fingerprint: str, *, totp_code: str | None, now: datetime
) -> None:
    """Unregister one of the user's certificates, after a fresh TOTP code.

    Raises:
        TwoFactorError: as :func:`register_certificate`.
        BadRequestError: not a SHA-256 fingerprint.
        NotFoundError: the user has no such certificate.
    """
    user = _user_by_pk(session, user_pk)
    require_code(session, user, totp_code, now=now)
    fp = _normalize_fingerprint(fingerprint)
    row = session.scalar(select(Certificate).where(Certificate.fingerprint == fp))
    if row is None or session.get(UserCertificate, (user.pk, row.pk)) is None:
        raise NotFoundError(f"{user.name!r} has no registered certificate {fp}")
    session.execute(
        delete(UserCertificate).where(UserCertificate.user_pk == user.pk, UserCertificate.certificate_pk == row.pk)
    )
    audit.record(
        session, at=now, actor=user.name, action="certificate.removed", target=f"certificate:{fp}", subject=row.subject
    )
    session.flush()


def list_certificates(session: Session, user_pk: int) -> list[RegisteredCertificate]:
    """The user's registered certificates, oldest registration first."""
    rows = session.execute(
        select(Certificate, UserCertificate.registered_at)
        .join(UserCertificate, UserCertificate.certificate_pk == Certificate.pk)
        .where(UserCertificate.user_pk == user_pk)
        .order_by(UserCertificate.registered_at, Certificate.fingerprint)
    ).all()
    return [describe(cert, _aware(at)) for cert, at in rows]


def owners_registered_fingerprints(session: Session, id_lower: str, *, extra_user_pk: int | None = None) -> set[str]:
    """Lower-case fingerprints registered by any owner of ``id_lower`` (nuget.org's
    ``IsAcceptableSigningCertificate`` without a required signer). ``extra_user_pk`` counts as an owner too:
    the pusher of a new id, who becomes its owner."""
    owner_pks = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
    if extra_user_pk is not None and not owner_pks:
        owner_pks.add(extra_user_pk)
    if not owner_pks:
        return set()
    return set(
        session.scalars(
            select(Certificate.fingerprint)
            .join(UserCertificate, UserCertificate.certificate_pk == Certificate.pk)
            .where(UserCertificate.user_pk.in_(owner_pks))
        ).all()
    )
