"""Who holds the signing key: a :class:`~nuseal.signature.builder.Signer` gives the certificate chain and RSA
PKCS#1 v1.5 signatures.

:class:`FileSigner` keeps the key in memory from a PFX/PKCS#12 file or PEM files. The PKCS#11 signer
(:mod:`nuseal.signing.pkcs11`: HSM, YubiKey, SoftHSM) implements the same protocol without the key ever leaving
the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from nuseal.codes import NuCode
from nuseal.errors import SigningError, UsageError
from nuseal.hashalg import HashAlgorithm

__all__ = ["FileSigner", "key_matches_certificate"]

_HASHES: dict[HashAlgorithm, hashes.HashAlgorithm] = {
    HashAlgorithm.SHA256: hashes.SHA256(),
    HashAlgorithm.SHA384: hashes.SHA384(),
    HashAlgorithm.SHA512: hashes.SHA512(),
}


def key_matches_certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    certificate: x509.Certificate,
) -> bool:
    """Whether ``key`` (private or public) is the key pair of ``certificate``'s public key."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public == certificate.public_key()


class FileSigner:
    """A key held in memory. Build with :meth:`from_pfx` or :meth:`from_pem`.

    Raises:
        SigningError: (constructor) NU3001 the key is not the certificate's key pair: every signature made
            with it would fail verification.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        if not key_matches_certificate(key, certificate):
            raise SigningError(
                f"the private key does not belong to the certificate {certificate.subject.rfc4514_string()}",
                code=NuCode.NU3001,
            )
        self._certificate = certificate
        self._key = key
        self._chain = tuple(c for c in chain if c != certificate)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        """Raises :class:`SigningError` NU3014 for a key NuGet does not accept (not RSA)."""
        if not isinstance(self._key, rsa.RSAPrivateKey):
            raise SigningError(
                "The signing certificate does not meet a minimum public key length requirement (RSA is required).",
                code=NuCode.NU3014,
            )
        return self._key.sign(data, padding.PKCS1v15(), _HASHES[algorithm])

    @classmethod
    def from_pfx(cls, path: str | Path, password: str | None) -> FileSigner:
        """Load a PKCS#12 file (certificate, key, chain).

        Raises:
            UsageError: the file cannot be read; SigningError NU3001: wrong password or no key/certificate inside.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
        except ValueError as exc:
            raise SigningError(f"cannot open {path}: wrong password or not a PKCS#12 file", code=NuCode.NU3001) from exc
        if cert is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningError(f"{path} holds no certificate with a usable private key", code=NuCode.NU3001)
        return cls(cert, key, extra)

    @classmethod
    def from_pem(
        cls, certificate_path: str | Path, key_path: str | Path, *, password: str | None = None
    ) -> FileSigner:
        """A PEM certificate file (the signing certificate first, then any chain certificates) and a PEM private
        key (PKCS#1 or PKCS#8, encrypted when ``password`` is given).

        Raises:
            UsageError: a file cannot be read; SigningError NU3001: an unreadable key or certificate, or a key
                that is not the certificate's; NU3014: a key that is neither RSA nor EC (NuGet needs RSA).
        """
        try:
            certs = x509.load_pem_x509_certificates(Path(certificate_path).read_bytes())
            key = serialization.load_pem_private_key(
                Path(key_path).read_bytes(), password.encode() if password else None
            )
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
        except (ValueError, TypeError) as exc:
            raise SigningError(f"cannot load the certificate or key: {exc}", code=NuCode.NU3001) from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningError("the private key must be RSA", code=NuCode.NU3014)
        return cls(certs[0], key, certs[1:])
