"""RFC 3161 timestamp tokens as NuGet reads and checks them (NUGET-SIGNING.md §3.6).

A token is a ``ContentInfo(SignedData)`` whose eContent is a ``TSTInfo`` (RFC 3161 §2.4.2), found in
the ``signature-time-stamp`` unsigned attribute (1.2.840.113549.1.9.16.2.14) of the signer it stamps.
Sources: NC ``Timestamp/Timestamp.cs``, ``Rfc3161TimestampVerificationUtility.cs``,
``Utility/VerificationUtility.ValidateTimestamp``, ``SignatureUtility.GetTimestampCertificates``.
Chains and revocation of the TSA certificate are ``nuseal.trust``'s business, not this module's.

Layering: ``nuseal.timestamp`` sits above ``nuseal.signature`` and uses its CMS plumbing (``_cms``, the
signing-certificate attribute rules); a parsed signature carries its tokens as bytes
(:attr:`nuseal.signature.Signature.timestamp_tokens`) and :func:`nuseal.timestamp.timestamps_of` parses them here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import core, tsp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import SignatureFormatError, TimestampError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids
from nuseal.signature._cms import (
    CertRef,
    CmsDecodeError,
    RawSignedData,
    check_signer_signature,
    decode_signed_data,
    find_certificate,
    load_certificates,
    oid_text,
)
from nuseal.signature.attributes import (
    SigningCertificateError,
    SigningCertificateRule,
    check_signing_certificate,
)

__all__ = [
    "BASELINE_POLICY_ACCURACY",
    "MIN_RSA_KEY_BITS",
    "Timestamp",
]

BASELINE_POLICY_ACCURACY = timedelta(seconds=1)
"""Accuracy assumed for the ETSI baseline policy 0.4.0.2023.1.1 when TSTInfo has none.

NC ``Rfc3161TimestampVerificationUtility.GetAccuracyInMilliseconds``."""

MIN_RSA_KEY_BITS = 2048
"""Smallest RSA key NuGet accepts for a TSA certificate (NC ``SigningSpecificationsV1.RSAPublicKeyMinLength``)."""

_SHA2_RSA = frozenset({oids.SHA256_WITH_RSA, oids.SHA384_WITH_RSA, oids.SHA512_WITH_RSA})
_ALLOWED_DIGESTS = frozenset(alg.oid for alg in HashAlgorithm)
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def _issue(code: NuCode, message: str) -> Issue:
    return Issue(code, Level.ERROR, message)


@dataclass(frozen=True, eq=False)
class Timestamp:
    """One RFC 3161 token found on a signer, parsed once.

    Times are tz-aware UTC. ``accuracy`` is TSTInfo's accuracy, else 1 s for the baseline policy
    0.4.0.2023.1.1, else 0; ``lower_limit``/``upper_limit`` are ``gen_time`` -/+ ``accuracy``
    (NC ``Timestamp`` constructor). ``signer_certificate`` is the certificate of the token's first
    SignerInfo, located by its SID in the token's own ``certificates`` (kept in order, duplicates kept).
    """

    token_der: bytes
    gen_time: datetime
    accuracy: timedelta
    lower_limit: datetime
    upper_limit: datetime
    policy_oid: str
    serial_number: int
    nonce: int | None
    imprint_algorithm_oid: str
    message_imprint: bytes
    signer_certificate: x509.Certificate | None
    certificates: tuple[x509.Certificate, ...]
    _signed: RawSignedData = field(repr=False)
    _cert_refs: tuple[CertRef, ...] = field(repr=False)
    _signer_ref: CertRef | None = field(repr=False)

    @classmethod
    def parse(cls, der: bytes) -> Timestamp:
        """Parse a TimeStampToken.

        Raises:
            TimestampError: NU3003 when the CMS, the TSTInfo or a certificate cannot be decoded (NuGet's
                ``SignedCms.Decode`` / TSTInfo decoding throw ``CryptographicException``); NU3021 when the
                content type is not id-ct-TSTInfo or the accuracy is negative.
        """
        try:
            signed = decode_signed_data(der)
        except CmsDecodeError as exc:
            raise TimestampError(f"The timestamp cannot be decoded: {exc}", code=NuCode.NU3003) from exc
        if signed.content_type != oids.TST_INFO:
            raise TimestampError(
                f"The timestamp content type is {signed.content_type}, not id-ct-TSTInfo.", code=NuCode.NU3021
            )
        try:
            info = tsp.TSTInfo.load(signed.content or b"", strict=True)
            imprint = info["message_imprint"]
            gen_time = info["gen_time"].native
            accuracy = info["accuracy"]
            micros = None
            if not isinstance(accuracy, core.Void):
                parts = [accuracy[name].native for name in ("seconds", "millis", "micros")]
                micros = (parts[0] or 0) * 1_000_000 + (parts[1] or 0) * 1000 + (parts[2] or 0)
            nonce = info["nonce"].native
            fields: dict[str, Any] = {
                "policy_oid": oid_text(info["policy"]),
                "serial_number": int(info["serial_number"].native),
                "nonce": None if nonce is None else int(nonce),
                "imprint_algorithm_oid": oid_text(imprint["hash_algorithm"]["algorithm"]),
                "message_imprint": bytes(imprint["hashed_message"].native),
            }
            refs = load_certificates(signed.certificates)
        except (CmsDecodeError, *_DECODE_ERRORS) as exc:
            raise TimestampError(f"The timestamp's TSTInfo cannot be decoded: {exc}", code=NuCode.NU3003) from exc
        if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
            raise TimestampError("The timestamp's genTime is not a UTC time (RFC 3161 §2.4.2).", code=NuCode.NU3003)
        if micros is None:
            acc = BASELINE_POLICY_ACCURACY if fields["policy_oid"] == oids.BASELINE_TIMESTAMP_POLICY else timedelta(0)
        elif micros < 0:
            raise TimestampError("The timestamp's accuracy is negative.", code=NuCode.NU3021)
        else:
            acc = timedelta(microseconds=micros)
        gen_time = gen_time.astimezone(UTC)
        signer_ref = find_certificate(signed.signer_infos[0].sid, refs) if signed.signer_infos else None
        return cls(
            token_der=der,
            gen_time=gen_time,
            accuracy=acc,
            lower_limit=gen_time - acc,
            upper_limit=gen_time + acc,
            signer_certificate=signer_ref.certificate if signer_ref else None,
            certificates=tuple(r.certificate for r in refs),
            _signed=signed,
            _cert_refs=refs,
            _signer_ref=signer_ref,
            **fields,
        )

    @property
    def signer_digest_algorithm_oid(self) -> str | None:
        """The token SignerInfo's digest algorithm OID (``None`` when the token has no SignerInfo)."""
        signers = self._signed.signer_infos
        return signers[0].digest_algorithm_oid if signers else None

    def verify_token_signature(self) -> bool:
        """``SignedCms.CheckSignature(verifySignatureOnly: true)`` on the token: every SignerInfo intact."""
        signers = self._signed.signer_infos
        if not signers:
            return False
        content = self._signed.content or b""
        for signer in signers:
            ref = find_certificate(signer.sid, self._cert_refs)
            if not check_signer_signature(signer, ref.certificate if ref else None, content):
                return False
        return True

    def _load_issue(self, name: str) -> Issue | None:
        """The first problem NuGet *throws* while loading the token (NC ``Signature.GetTimestamps``).

        Memoised per ``name``: loading and :meth:`check` both ask, and the answer depends only on the token."""
        memo: dict[str, Issue | None] = self.__dict__.setdefault("_load_issues", {})
        if name not in memo:
            memo[name] = self._first_load_issue(name)
        return memo[name]

    def _first_load_issue(self, name: str) -> Issue | None:
        signers = self._signed.signer_infos
        if len(signers) != 1:
            return _issue(NuCode.NU3021, f"The {name} contains an invalid timestamp.")
        if self._signer_ref is None:
            return _issue(NuCode.NU3020, f"The {name}'s timestamp does not have a signing certificate.")
        try:
            check_signing_certificate(
                signers[0].signed_attrs,
                self._signer_ref,
                SigningCertificateRule.EITHER_OR_BOTH,
                issuer_serial_required=False,
            )
        except SigningCertificateError as exc:
            return _issue(NuCode.NU3021, f"The {name} contains an invalid timestamp. {exc.message}")
        except SignatureFormatError as exc:
            return _issue(exc.code or NuCode.NU3000, exc.message)
        if not self.verify_token_signature():
            return _issue(NuCode.NU3021, f"The {name}'s timestamp signature validation failed.")
        return None

    def check(self, signature_value: bytes, *, now: datetime, signature_name: str = "signature") -> list[Issue]:
        """The token's own checks, without chains or revocation; an empty list when it is sound.

        ``signature_value`` is the signature the token stamps (the stamped SignerInfo's ``signature``
        octets; for NuGet parity on a countersignature pass
        :attr:`RepositoryCountersignature.nuget_signature_value`). ``now`` is the verification moment
        (tz-aware), used only for NU3025. ``signature_name`` goes into messages (NuGet's friendly name).

        Two tiers, as in NuGet. First, problems NuGet *throws* while loading timestamps
        (``Signature.GetTimestamps``, ``Timestamp`` constructor): only the first is returned, alone;
        NuGet reports them through ``PackageSignatureVerifier`` as fatal unless ``allowIllegal`` (a
        warning in accept mode):

        - NU3021 not exactly one SignerInfo;
        - NU3020 the signer certificate is not in the token, also when the token has no certificates at
          all (NuGet's NU3029 check comes after this one and is unreachable; checked with NuGet 6.14);
        - NU3021 signing-certificate(-v2) missing or not matching (v1 and/or v2, IssuerSerial optional;
          NU3000/NU3003 when a value cannot be read);
        - NU3021 the token's CMS signature does not verify.

        Then every problem of ``VerificationUtility.ValidateTimestamp`` (errors only when
        ``!allowIgnoreTimestamp`` in NuGet): NU3022 the TSA certificate is not signed with
        sha{256,384,512}WithRSA; NU3023 its key is not RSA >= 2048 bits; NU3024 the token digest
        algorithm is not SHA-2; NU3030 the imprint algorithm is not SHA-256/384/512; NU3019 the imprint
        is not H(signature_value); NU3025 ``now`` is before the TSA certificate's notBefore; NU3036
        genTime is outside [notBefore, notAfter).

        Raises:
            UsageError: ``now`` is naive.
        """
        if now.tzinfo is None:
            raise UsageError("now must be timezone-aware")
        name = signature_name
        first = self._load_issue(name)
        if first is not None:
            return [first]
        cert = self._signer_ref.certificate if self._signer_ref else None
        assert cert is not None  # _load_issue returned None
        issues: list[Issue] = []
        if cert.signature_algorithm_oid.dotted_string not in _SHA2_RSA:
            issues.append(
                _issue(NuCode.NU3022, f"The {name}'s timestamp certificate has an unsupported signature algorithm.")
            )
        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_KEY_BITS:
            issues.append(
                _issue(
                    NuCode.NU3023,
                    f"The {name}'s timestamp certificate does not meet a minimum public key length requirement.",
                )
            )
        if self.signer_digest_algorithm_oid not in _ALLOWED_DIGESTS:
            issues.append(
                _issue(NuCode.NU3024, f"The {name}'s timestamp signature has an unsupported digest algorithm.")
            )
        imprint_alg = HashAlgorithm.from_oid(self.imprint_algorithm_oid)
        if imprint_alg is None:
            issues.append(
                _issue(NuCode.NU3030, f"The {name} timestamp's message imprint uses an unsupported hash algorithm.")
            )
        elif imprint_alg.digest(signature_value) != self.message_imprint:
            issues.append(_issue(NuCode.NU3019, f"The {name}'s timestamp integrity check failed."))
        if now < cert.not_valid_before_utc:
            issues.append(_issue(NuCode.NU3025, f"The {name}'s timestamp signing certificate is not yet valid."))
        if not cert.not_valid_before_utc <= self.gen_time < cert.not_valid_after_utc:
            issues.append(
                _issue(
                    NuCode.NU3036,
                    f"The {name}'s timestamp's generalized time is outside the timestamping certificate's "
                    "validity period.",
                )
            )
        return issues
