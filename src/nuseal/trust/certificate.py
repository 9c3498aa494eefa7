"""Certificate purposes, fingerprints and the small X.509 predicates chain building needs.

Sources: NuGet.Client ``Signing/Utility/CertificateUtility.cs`` (``GetHash``, ``IsSelfIssued``) and
``CertificateChainUtility.SetCertBuildChainPolicy`` (purpose -> EKU); RFC 5280 §4.2.1.1 / §4.2.1.2 (key
identifiers).
"""

from __future__ import annotations

import enum
import functools
import warnings

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from nuseal.hashalg import HashAlgorithm
from nuseal.signature import oids

__all__ = [
    "CertificatePurpose",
    "authority_key_identifier",
    "der",
    "dotnet_name",
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


#: Certificates whose DER encoding and signature checks are memoised (the same CA certificates recur in
#: every package of a feed or folder).
CERTIFICATE_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=CERTIFICATE_CACHE_SIZE)
def der(cert: x509.Certificate) -> bytes:
    """The certificate's DER encoding (NuGet's ``RawData``)."""
    return cert.public_bytes(Encoding.DER)


def fingerprint(cert: x509.Certificate, alg: HashAlgorithm = HashAlgorithm.SHA256) -> str:
    """Upper-case hex ``alg(DER)`` of ``cert``: NuGet's ``CertificateUtility.GetHashString``.

    This is the form trustedSigners entries and ``--certificate-fingerprint`` are compared with
    (NUGET-SIGNING.md §4.5).
    """
    return alg.digest(der(cert)).hex().upper()


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
        cert = x509.load_der_x509_certificate(data)
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
    if cert.subject.public_bytes() != cert.issuer.public_bytes():
        return False
    aki = authority_key_identifier(cert)
    ski = subject_key_identifier(cert)
    return aki is None or ski is None or aki == ski


def may_have_issued(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """``issuer``'s subject is ``cert``'s issuer and the key identifiers do not contradict (RFC 5280 §4.2.1.1)."""
    if issuer.subject.public_bytes() != cert.issuer.public_bytes():
        return False
    aki = authority_key_identifier(cert)
    ski = subject_key_identifier(issuer)
    return aki is None or ski is None or aki == ski


@functools.lru_cache(maxsize=CERTIFICATE_CACHE_SIZE)
def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s public key verifies ``cert``'s signature (any algorithm ``cryptography`` knows).

    Pure and memoised: certificates are immutable and compare by their DER encoding.
    """
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True
