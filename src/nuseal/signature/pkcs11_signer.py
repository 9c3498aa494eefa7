"""A signer whose RSA key lives in a PKCS#11 token (HSM, smart card, YubiKey, SoftHSM) via ``python-pkcs11``.

The private key never leaves the token: nuseal sends the signed-attributes bytes and the token computes the
RSA PKCS#1 v1.5 signature, with ``SHA256_RSA_PKCS`` / ``SHA384_RSA_PKCS`` / ``SHA512_RSA_PKCS`` when the token
offers them, else with ``RSA_PKCS`` over a DigestInfo hashed here (RFC 8017 §9.2; smart cards often offer only
the raw mechanism). The certificate comes from a PEM file (the signing certificate first, then its chain) or,
without one, from the token: the certificate object labelled like the key (else with the key's ``CKA_ID``),
with every other certificate on the token as its chain.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pkcs11
from cryptography import x509

from nuseal.codes import NuCode
from nuseal.errors import SigningError, UsageError
from nuseal.hashalg import HashAlgorithm

__all__ = ["MAX_TOKEN_CERTIFICATES", "Pkcs11Signer"]

#: Most certificate objects read from a token.
MAX_TOKEN_CERTIFICATES = 64

_MECHANISMS = {
    HashAlgorithm.SHA256: pkcs11.Mechanism.SHA256_RSA_PKCS,
    HashAlgorithm.SHA384: pkcs11.Mechanism.SHA384_RSA_PKCS,
    HashAlgorithm.SHA512: pkcs11.Mechanism.SHA512_RSA_PKCS,
}
# DER DigestInfo prefixes (RFC 8017 §9.2, note 1).
_DIGEST_INFO = {
    HashAlgorithm.SHA256: bytes.fromhex("3031300d060960864801650304020105000420"),
    HashAlgorithm.SHA384: bytes.fromhex("3041300d060960864801650304020205000430"),
    HashAlgorithm.SHA512: bytes.fromhex("3051300d060960864801650304020305000440"),
}
_ERRORS = (pkcs11.PKCS11Error, RuntimeError, OSError)


def _refused(what: str, exc: BaseException) -> SigningError:
    reasons: dict[type[BaseException], str] = {
        pkcs11.PinIncorrect: "wrong PIN",
        pkcs11.PinLocked: "the PIN is locked",
        pkcs11.NoSuchKey: "no such key",
        pkcs11.NoSuchToken: "no such token",
    }
    reason = reasons.get(type(exc), type(exc).__name__)
    return SigningError(f"{what}: {reason}", code=NuCode.NU3001)


class Pkcs11Signer:
    """Signs with the private key labelled ``key_label`` in the token labelled ``token_label`` of ``module``.

    Args:
        module: the PKCS#11 library (``.so``).
        pin: the user PIN (``None`` for tokens with a protected authentication path).
        certificate_chain: PEM file with the signing certificate first; ``None``: read from the token.
        raw_rsa: force ``RSA_PKCS`` with a DigestInfo hashed on the host (default: only when the token lacks
            the hash-and-sign mechanisms).

    Raises:
        UsageError: the PEM file cannot be read; SigningError NU3001: the library, token, PIN, key or
            certificate cannot be found or used.
    """

    def __init__(
        self,
        module: str | Path,
        *,
        token_label: str,
        key_label: str,
        pin: str | None,
        certificate_chain: str | Path | None = None,
        raw_rsa: bool | None = None,
    ) -> None:
        self._key_label = key_label
        self._pin = pin
        self._lock = threading.Lock()
        try:
            self._token = pkcs11.lib(str(module)).get_token(token_label=token_label)
            mechanisms = set(self._token.slot.get_mechanisms())
        except _ERRORS as exc:
            raise _refused(f"cannot open PKCS#11 token {token_label!r} in {module}", exc) from exc
        self._raw = raw_rsa if raw_rsa is not None else not all(m in mechanisms for m in _MECHANISMS.values())
        if certificate_chain is not None:
            try:
                certs = x509.load_pem_x509_certificates(Path(certificate_chain).read_bytes())
            except OSError as exc:
                raise UsageError(f"cannot read {certificate_chain}: {exc.strerror or exc}") from exc
            except ValueError as exc:
                raise UsageError(f"{certificate_chain} holds no PEM certificate: {exc}") from exc
        else:
            certs = self._token_certificates()
        self._certificate = certs[0]
        self._chain = tuple(certs[1:])

    def _token_certificates(self) -> list[x509.Certificate]:
        """The key's certificate first, then the token's other certificates."""
        try:
            with self._token.open(user_pin=self._pin) as session:
                key: Any = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self._key_label)
                key_id = key[pkcs11.Attribute.ID]
                found: list[tuple[str, bytes, bytes]] = []
                for obj in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE}):
                    if len(found) >= MAX_TOKEN_CERTIFICATES:
                        break
                    found.append((obj[pkcs11.Attribute.LABEL], obj[pkcs11.Attribute.ID], obj[pkcs11.Attribute.VALUE]))
        except _ERRORS as exc:
            raise _refused(f"cannot read the certificates of key {self._key_label!r}", exc) from exc
        mine = [d for label, _, d in found if label == self._key_label] or [d for _, i, d in found if i == key_id]
        if not mine:
            raise SigningError(
                f"the token holds no certificate labelled {self._key_label!r} or with the key's ID; "
                "give the certificate with --certificate-path",
                code=NuCode.NU3001,
            )
        try:
            leaf = x509.load_der_x509_certificate(mine[0])
            others = [x509.load_der_x509_certificate(d) for _, _, d in found if d != mine[0]]
        except ValueError as exc:
            raise SigningError(f"a certificate on the token cannot be read: {exc}", code=NuCode.NU3001) from exc
        return [leaf, *others]

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def uses_raw_rsa(self) -> bool:
        """Whether signatures go through ``RSA_PKCS`` with a host-side hash."""
        return self._raw

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        """RSA PKCS#1 v1.5 over ``algorithm(data)``, computed inside the token.

        Raises:
            SigningError: NU3001 wrong PIN, no such key, or the token refused.
        """
        try:
            with self._lock, self._token.open(user_pin=self._pin) as session:
                key: Any = session.get_key(
                    object_class=pkcs11.ObjectClass.PRIVATE_KEY, key_type=pkcs11.KeyType.RSA, label=self._key_label
                )
                if self._raw:
                    digest_info = _DIGEST_INFO[algorithm] + algorithm.digest(data)
                    return bytes(key.sign(digest_info, mechanism=pkcs11.Mechanism.RSA_PKCS))
                return bytes(key.sign(data, mechanism=_MECHANISMS[algorithm]))
        except _ERRORS as exc:
            raise _refused("the PKCS#11 token refused to sign", exc) from exc
