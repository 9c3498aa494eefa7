"""A signer whose RSA key lives in a PKCS#11 token (HSM, smart card, YubiKey, SoftHSM) via ``python-pkcs11``.

The private key never leaves the token: nuseal sends the signed-attributes bytes and the token computes the
RSA PKCS#1 v1.5 signature (mechanisms ``SHA256_RSA_PKCS`` / ``SHA384_RSA_PKCS`` / ``SHA512_RSA_PKCS``). The
certificate chain comes from a PEM file (the signing certificate first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pkcs11
from cryptography import x509

from nuseal.codes import NuCode
from nuseal.errors import SigningError, UsageError
from nuseal.hashalg import HashAlgorithm

__all__ = ["Pkcs11Signer"]

_MECHANISMS = {
    HashAlgorithm.SHA256: pkcs11.Mechanism.SHA256_RSA_PKCS,
    HashAlgorithm.SHA384: pkcs11.Mechanism.SHA384_RSA_PKCS,
    HashAlgorithm.SHA512: pkcs11.Mechanism.SHA512_RSA_PKCS,
}


class Pkcs11Signer:
    """Signs with the private key labelled ``key_label`` in the token ``token_label`` of ``module``."""

    def __init__(
        self,
        module: str | Path,
        *,
        token_label: str,
        key_label: str,
        pin: str | None,
        certificate_chain: str | Path,
    ) -> None:
        try:
            certs = x509.load_pem_x509_certificates(Path(certificate_chain).read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {certificate_chain}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise UsageError(f"{certificate_chain} holds no PEM certificate: {exc}") from exc
        self._certificate = certs[0]
        self._chain = tuple(certs[1:])
        try:
            self._lib = pkcs11.lib(str(module))
            self._token = self._lib.get_token(token_label=token_label)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise SigningError(
                f"cannot open PKCS#11 token {token_label!r} in {module}: {exc!r}", code=NuCode.NU3001
            ) from exc
        self._key_label = key_label
        self._pin = pin

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        """RSA PKCS#1 v1.5 over ``algorithm(data)``, computed inside the token.

        Raises:
            SigningError: NU3001 wrong PIN, no such key, or the token refused.
        """
        try:
            with self._token.open(user_pin=self._pin) as session:
                key: Any = session.get_key(
                    object_class=pkcs11.ObjectClass.PRIVATE_KEY, key_type=pkcs11.KeyType.RSA, label=self._key_label
                )
                return bytes(key.sign(data, mechanism=_MECHANISMS[algorithm]))
        except (pkcs11.PKCS11Error, RuntimeError) as exc:
            raise SigningError(f"the PKCS#11 token refused to sign: {exc!r}", code=NuCode.NU3001) from exc
