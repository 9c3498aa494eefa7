"""Certificate purposes, fingerprints and the small X.509 predicates chain building needs.

Sources: NuGet.Client ``Signing/Utility/CertificateUtility.cs`` (``GetHash``, ``IsSelfIssued``) and
``CertificateChainUtility.SetCertBuildChainPolicy`` (purpose -> EKU); RFC 5280 §4.2.1.1 / §4.2.1.2 (key
identifiers).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import threading
import warnings
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids

__all__ = [
    "CERTIFICATE_CACHE_SIZE",
    "CertificateFacts",
    "CertificatePurpose",
    "authority_key_identifier",
    "der",
    "dotnet_name",
    "facts",
    "facts_may_have_issued",
    "facts_signed_by",
    "fingerprint",
    "is_self_issued",
    "load_der_certificate",
    "may_have_issued",
    "signed_by",
    "subject_key_identifier",
]


class CertificatePurpose(enum.Enum):
    """What a certificate is used for, with the EKU NuGet asserts as the chain's application policy.

    ``CODE_SIGNING`` (1.3.6.1.5.5.7.3.3) for author and repository signatures, ``TIMESTAMPING``
    (1.3.6.1.5.5.7.3.8) for RFC 3161 timestamp signers (NC ``CertificateChainUtility.SetCertBuildChainPolicy``).
    """

    CODE_SIGNING = oids.CODE_SIGNING_EKU
    TIMESTAMPING = oids.TIMESTAMPING_EKU

    @property
    def eku(self) -> str:
        """The dotted EKU OID."""
        return str(self.value)


#: Certificates whose derived facts (:class:`CertificateFacts`) and signature checks are memoised: the same CA,
#: repository and TSA certificates recur in every package of a feed or folder.
CERTIFICATE_CACHE_SIZE = 4096


class CertificateFacts:
    """What chain building, trust stores and messages read from one certificate, computed once per object.

    ``der`` (NuGet's ``RawData``); ``subject`` / ``issuer``: the names' DER (``x509.Name.public_bytes``, the
    form chain building compares); ``ski`` / ``aki``: the key identifiers (RFC 5280 §4.2.1.1, §4.2.1.2) or
    ``None``; ``not_before`` / ``not_after``: tz-aware UTC; ``self_issued``: :func:`is_self_issued`. The rest
    (fingerprints, .NET names, the issuer-key hash revocation caches use) is computed on first use.

    Obtain with :func:`facts`; ``cryptography`` certificates hash by walking their whole structure (several
    microseconds), so the cache is keyed by object identity and holds the certificate itself (an identity is
    never reused while its entry lives).
    """

    __slots__ = (
        "_dotnet_issuer",
        "_dotnet_subject",
        "_fingerprints",
        "_keys",
        "_self_issued",
        "_spki_sha256",
        "certificate",
        "der",
        "issuer",
        "not_after",
        "not_before",
        "subject",
    )

    def __init__(self, cert: x509.Certificate) -> None:
        self.certificate = cert
        self.der: bytes = cert.public_bytes(Encoding.DER)
        self.subject: bytes = cert.subject.public_bytes()
        self.issuer: bytes = cert.issuer.public_bytes()
        self.not_before = cert.not_valid_before_utc
        self.not_after = cert.not_valid_after_utc
        self._keys: tuple[bytes | None, bytes | None] | None = None  # extensions are read on first use
        self._self_issued: bool | None = None
        self._fingerprints: dict[HashAlgorithm, str] = {}
        self._dotnet_subject: str | None = None
        self._dotnet_issuer: str | None = None
        self._spki_sha256: bytes | None = None

    def _key_identifiers(self) -> tuple[bytes | None, bytes | None]:
        if self._keys is None:
            self._keys = (subject_key_identifier(self.certificate), authority_key_identifier(self.certificate))
        return self._keys

    @property
    def ski(self) -> bytes | None:
        """The SubjectKeyIdentifier value, or ``None``."""
        return self._key_identifiers()[0]

    @property
    def aki(self) -> bytes | None:
        """The AuthorityKeyIdentifier ``keyIdentifier``, or ``None``."""
        return self._key_identifiers()[1]

    @property
    def self_issued(self) -> bool:
        """:func:`is_self_issued`, memoised."""
        if self._self_issued is None:
            ski, aki = self._key_identifiers()
            self._self_issued = self.subject == self.issuer and (aki is None or ski is None or aki == ski)
        return self._self_issued

    def fingerprint(self, alg: HashAlgorithm) -> str:
        """:func:`fingerprint`, memoised."""
        found = self._fingerprints.get(alg)
        if found is None:
            found = self._fingerprints[alg] = alg.digest(self.der).hex().upper()
        return found

    @property
    def dotnet_subject(self) -> str:
        """``dotnet_name(subject)``, memoised."""
        if self._dotnet_subject is None:
            self._dotnet_subject = dotnet_name(self.certificate.subject)
        return self._dotnet_subject

    @property
    def dotnet_issuer(self) -> str:
        """``dotnet_name(issuer)``, memoised."""
        if self._dotnet_issuer is None:
            self._dotnet_issuer = dotnet_name(self.certificate.issuer)
        return self._dotnet_issuer

    @property
    def spki_sha256(self) -> bytes:
        """SHA-256 of the SubjectPublicKeyInfo as encoded in the certificate (the revocation cache's issuer key)."""
        if self._spki_sha256 is None:
            spki = asn1_x509.Certificate.load(self.der)["tbs_certificate"]["subject_public_key_info"].dump()
            self._spki_sha256 = hashlib.sha256(spki).digest()
        return self._spki_sha256

    def validity_state(self, at: datetime) -> int:
        """-1 before ``not_before``, 1 after ``not_after``, 0 within (both bounds inclusive, as .NET/OpenSSL)."""
        if at < self.not_before:
            return -1
        if at > self.not_after:
            return 1
        return 0


_FACTS: dict[int, CertificateFacts] = {}
_FACTS_LOCK = threading.Lock()


def facts(cert: x509.Certificate) -> CertificateFacts:
    """The memoised :class:`CertificateFacts` of ``cert`` (at most :data:`CERTIFICATE_CACHE_SIZE` kept)."""
    found = _FACTS.get(id(cert))
    if found is not None and found.certificate is cert:
        return found
    made = CertificateFacts(cert)
    with _FACTS_LOCK:
        if len(_FACTS) >= CERTIFICATE_CACHE_SIZE:
            for key in list(itertools.islice(_FACTS, CERTIFICATE_CACHE_SIZE // 4)):
                del _FACTS[key]
        _FACTS[id(cert)] = made
    return made


def der(cert: x509.Certificate) -> bytes:
    """The certificate's DER encoding (NuGet's ``RawData``), memoised."""
    return facts(cert).der


def fingerprint(cert: x509.Certificate, alg: HashAlgorithm = HashAlgorithm.SHA256) -> str:
    """Upper-case hex ``alg(DER)`` of ``cert``: NuGet's ``CertificateUtility.GetHashString``.

    This is the form trustedSigners entries and ``--certificate-fingerprint`` are compared with
    (NUGET-SIGNING.md §4.5).
    """
    return facts(cert).fingerprint(alg)


# .NET's short names for X500DistinguishedName.Name (X500NameEncoder); others print as OID.<dotted>.
_DOTNET_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "S",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "T",
    "2.5.4.42": "G",
    "2.5.4.4": "SN",
    "2.5.4.43": "I",
    "2.5.4.5": "SERIALNUMBER",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_DOTNET_QUOTE_TRIGGERS = frozenset(',+="\n<>#;')


def _dotnet_value(value: str) -> str:
    if value and (value[0] == " " or value[-1] == " " or any(c in _DOTNET_QUOTE_TRIGGERS for c in value)):
        return '"' + value.replace('"', '""') + '"'
    return value


def dotnet_name(name: x509.Name) -> str:
    """``name`` as .NET prints ``X509Certificate2.Subject``/``Issuer``, which NuGet's messages show.

    Most specific RDN first, ``", "`` between them, .NET's short attribute names (``S`` for state,
    ``SERIALNUMBER``, ``E``...), values quoted when they contain separators:
    ``CN=TIMESTAMP-SHA256-2019-10-15, O="DigiCert, Inc.", C=US``.
    """
    parts: list[str] = []
    for rdn in reversed(list(name.rdns)):
        parts.append(
            " + ".join(
                f"{_DOTNET_ATTRIBUTE_NAMES.get(a.oid.dotted_string, 'OID.' + a.oid.dotted_string)}="
                f"{_dotnet_value(a.value if isinstance(a.value, str) else a.value.hex())}"
                for a in rdn
            )
        )
    return ", ".join(parts)


def load_der_certificate(data: bytes) -> x509.Certificate:
    """Parse one DER certificate, tolerating what real roots contain and ``cryptography`` only warns about.

    Seventeen roots of Microsoft's code-signing list have a serial number of 0, and some have over-long
    name attributes; ``cryptography`` 50 parses them with a ``CryptographyDeprecationWarning`` /
    ``UserWarning``. Those warnings are silenced here and only here.

    Raises:
        ValueError: not a DER certificate.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            cert = x509.load_der_x509_certificate(data)
        except x509.InvalidVersion as exc:  # not a ValueError: a version other than v1..v3
            raise ValueError(f"not a DER certificate: {exc}") from exc
        # Force the lazily parsed parts that warn, while the filter is active.
        _ = cert.serial_number, cert.subject, cert.issuer
    return cert


def _extension_value(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension
        return None


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The SubjectKeyIdentifier value, or ``None``."""
    value = _extension_value(cert, x509.SubjectKeyIdentifier)
    return value.digest if isinstance(value, x509.SubjectKeyIdentifier) else None


def authority_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The AuthorityKeyIdentifier ``keyIdentifier``, or ``None``."""
    value = _extension_value(cert, x509.AuthorityKeyIdentifier)
    return value.key_identifier if isinstance(value, x509.AuthorityKeyIdentifier) else None


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject equals issuer and, when both key identifiers are present, they agree.

    This is NuGet's ``CertificateUtility.IsSelfIssued`` test (name equality plus AKI/SKI agreement) and
    OpenSSL's test for where chain building stops; the self-signature itself is not checked, as neither
    NuGet nor OpenSSL checks a trust anchor's own signature.
    """
    return facts(cert).self_issued


def may_have_issued(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """``issuer``'s subject is ``cert``'s issuer and the key identifiers do not contradict (RFC 5280 §4.2.1.1)."""
    return facts_may_have_issued(facts(issuer), facts(cert))


def facts_may_have_issued(issuer: CertificateFacts, cert: CertificateFacts) -> bool:
    """:func:`may_have_issued` on memoised facts."""
    if issuer.subject != cert.issuer:
        return False
    aki = cert.aki
    if aki is None:
        return True
    ski = issuer.ski
    return ski is None or aki == ski


_SIGNED: dict[tuple[bytes, bytes], bool] = {}


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s public key verifies ``cert``'s signature (any algorithm ``cryptography`` knows).

    Pure and memoised by the two DER encodings (at most :data:`CERTIFICATE_CACHE_SIZE` pairs).
    """
    return facts_signed_by(facts(cert), facts(issuer))


def facts_signed_by(cert: CertificateFacts, issuer: CertificateFacts) -> bool:
    """:func:`signed_by` on memoised facts."""
    key = (cert.der, issuer.der)
    found = _SIGNED.get(key)
    if found is None:
        try:
            cert.certificate.verify_directly_issued_by(issuer.certificate)
            found = True
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            found = False
        with _FACTS_LOCK:
            if len(_SIGNED) >= CERTIFICATE_CACHE_SIZE:
                for stale in list(itertools.islice(_SIGNED, CERTIFICATE_CACHE_SIZE // 4)):
                    del _SIGNED[stale]
            _SIGNED[key] = found
    return found
