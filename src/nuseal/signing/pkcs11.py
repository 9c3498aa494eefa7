"""A signer whose RSA key lives in a PKCS#11 token (HSM, smart card, YubiKey, SoftHSM) via ``python-pkcs11``.

The private key never leaves the token: nuseal hands the token the signed-attributes bytes (mechanisms
``CKM_SHA256_RSA_PKCS`` / ``CKM_SHA384_RSA_PKCS`` / ``CKM_SHA512_RSA_PKCS``, PKCS #11 v2.40 §2.1.11) or, on
tokens that only offer raw ``CKM_RSA_PKCS`` (many smart cards and PIV applets), the DER ``DigestInfo`` of their
hash computed on the host (RFC 8017 §9.2 step 2); both give the same RSASSA-PKCS1-v1_5 signature.

The certificate comes from a PEM file (the signing certificate first, then any chain certificates) or, without
one, from the token: the certificate object with the key's label, else the one with the key's ``CKA_ID``; the
token's other certificates are offered as chain candidates. A key that is not the certificate's key pair is
refused before signing (modulus compared when the token shows it) and every signature is checked against the
certificate's public key before it is used.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import algos, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nuseal.codes import NuCode
from nuseal.errors import SigningError, UsageError
from nuseal.hashalg import HashAlgorithm

__all__ = ["MAX_TOKEN_CERTIFICATES", "Pkcs11Signer"]

#: At most this many certificate objects are read from a token (chain candidates).
MAX_TOKEN_CERTIFICATES = 64

_HASH_AND_SIGN = {
    HashAlgorithm.SHA256: pkcs11.Mechanism.SHA256_RSA_PKCS,
    HashAlgorithm.SHA384: pkcs11.Mechanism.SHA384_RSA_PKCS,
    HashAlgorithm.SHA512: pkcs11.Mechanism.SHA512_RSA_PKCS,
}
_ASN1_NAMES = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA384: "sha384", HashAlgorithm.SHA512: "sha512"}
_HASHES: dict[HashAlgorithm, hashes.HashAlgorithm] = {
    HashAlgorithm.SHA256: hashes.SHA256(),
    HashAlgorithm.SHA384: hashes.SHA384(),
    HashAlgorithm.SHA512: hashes.SHA512(),
}


def digest_info(data: bytes, algorithm: HashAlgorithm) -> bytes:
    """DER ``DigestInfo { AlgorithmIdentifier (NULL parameters), OCTET STRING algorithm(data) }`` (RFC 8017 §9.2)."""
    return bytes(
        algos.DigestInfo({
            "digest_algorithm": {"algorithm": _ASN1_NAMES[algorithm], "parameters": core.Null()},
            "digest": algorithm.digest(data),
        }).dump()
    )


def _fail(what: str, exc: Exception) -> SigningError:
    reasons: dict[type[Exception], str] = {
        pkcs11.PinIncorrect: "wrong PIN",
        pkcs11.PinLocked: "the PIN is locked",
        pkcs11.PinExpired: "the PIN has expired",
        pkcs11.NoSuchToken: "no such token",
        pkcs11.MultipleTokensReturned: "several tokens have this label",
        pkcs11.NoSuchKey: "no such private key",
        pkcs11.MultipleObjectsReturned: "several private keys have this label",
        pkcs11.TokenNotPresent: "the token is not present",
        pkcs11.DeviceRemoved: "the token was removed",
    }
    reason = reasons.get(type(exc), f"{type(exc).__name__} {exc}".strip())
    return SigningError(f"{what}: {reason}", code=NuCode.NU3001)


class Pkcs11Signer:
    """Signs with the RSA private key labelled ``key_label`` in the token ``token_label`` of the PKCS#11 library
    ``module``, keeping one logged-in session open until :meth:`close` (or the end of a ``with`` block).

    Args:
        module: path of the PKCS#11 library (e.g. ``/usr/lib/softhsm/libsofthsm2.so``).
        token_label: the token's label.
        key_label: the private key's ``CKA_LABEL``.
        pin: the user PIN; ``None`` for a token with a protected authentication path (PIN pad) or no login.
        certificate_chain: PEM file with the signing certificate first; ``None``: read it from the token.
        raw_rsa: ``True`` always sign a host-made DigestInfo with ``CKM_RSA_PKCS``, ``False`` always use the
            hash-and-sign mechanisms, ``None`` (default): hash-and-sign when the token offers it.
        pin_source: where the PIN is given (an option, an environment variable), named when it is missing.

    Raises:
        UsageError: the PEM file cannot be read or holds no certificate; no PIN for a token that needs one.
        SigningError: NU3001 the library cannot be loaded, no such token or key, wrong PIN, another session of
            this process is logged in to the token, no certificate in the token, a key that is not the
            certificate's, or the token lacks the signing mechanisms; NU3014 the key is not RSA.
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
        pin_source: str = "pin",
    ) -> None:
        pem_certificates = _read_pem(certificate_chain) if certificate_chain is not None else None
        where = f"PKCS#11 token {token_label!r}"
        try:
            lib = pkcs11.lib(str(module))
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise _fail(f"cannot load the PKCS#11 library {module}", exc) from exc
        try:
            self._token = lib.get_token(token_label=token_label)
        except pkcs11.PKCS11Error as exc:
            raise _fail(f"cannot open {where}", exc) from exc
        self._session = self._login(where, pin, pin_source)
        self._lock = threading.Lock()
        try:
            self._key = self._find_key(where, key_label)
            certificates = pem_certificates or self._token_certificates(where, key_label)
            self._certificate, self._chain = certificates[0], tuple(certificates[1:])
            self._check_pair(where, key_label)
            self._raw_rsa = self._choose_mechanism(where, raw_rsa)
        except BaseException:
            self.close()
            raise
        self._where = f"{where}, key {key_label!r}"

    # ------------------------------------------------------------------------------------------ set-up
    def _login(self, where: str, pin: str | None, pin_source: str) -> Any:
        user_pin: object = pin
        if pin is None:
            flags = self._token.flags
            if flags & pkcs11.TokenFlag.PROTECTED_AUTHENTICATION_PATH:
                user_pin = pkcs11.PROTECTED_AUTH
            elif flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
                raise UsageError(f"{where} needs a user PIN ({pin_source})")
        try:
            return self._token.open(user_pin=user_pin)
        except pkcs11.UserAlreadyLoggedIn as exc:
            # Login is per application in PKCS#11 (v2.40 §5.6): borrowing another session's login would leave
            # the PIN unchecked, and that session's C_Logout would log this signer out.
            raise SigningError(
                f"cannot log in to {where}: another session of this process is logged in to the token; "
                "close it (or its signer) first",
                code=NuCode.NU3001,
            ) from exc
        except pkcs11.PKCS11Error as exc:
            raise _fail(f"cannot log in to {where}", exc) from exc

    def _find_key(self, where: str, key_label: str) -> Any:
        try:
            key = self._session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=key_label)
        except pkcs11.PKCS11Error as exc:
            raise _fail(f"cannot find the private key {key_label!r} in {where}", exc) from exc
        if key.key_type != pkcs11.KeyType.RSA:
            raise SigningError(
                f"the key {key_label!r} in {where} is {key.key_type.name}: NuGet signatures need an RSA key "
                "of at least 2048 bits",
                code=NuCode.NU3014,
            )
        return key

    def _certificate_objects(self, attrs: dict[pkcs11.Attribute, Any]) -> list[x509.Certificate]:
        """The readable X.509 certificates matching ``attrs`` (at most :data:`MAX_TOKEN_CERTIFICATES`); the
        search is finished (``C_FindObjectsFinal``) before returning, so the session can search again."""
        query = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE, **attrs}
        found: list[x509.Certificate] = []
        with contextlib.closing(self._session.get_objects(query)) as objects:
            for obj in objects:
                if len(found) >= MAX_TOKEN_CERTIFICATES:
                    break
                try:
                    found.append(x509.load_der_x509_certificate(bytes(obj[pkcs11.Attribute.VALUE])))
                except (pkcs11.PKCS11Error, ValueError):
                    continue  # not an X.509 certificate nuseal can read: not a candidate
        return found

    def _token_certificates(self, where: str, key_label: str) -> list[x509.Certificate]:
        """The key's certificate first, then the token's other certificates (chain candidates).

        The key's certificate is looked up by the key's label, else by its ``CKA_ID``; among several (a renewed
        certificate kept next to the old one), those whose RSA modulus is the key's come first, the latest
        ``notAfter`` first.
        """
        modulus = self._attribute(self._key, pkcs11.Attribute.MODULUS)
        n = int.from_bytes(bytes(modulus), "big") if modulus is not None else None

        def rank(cert: x509.Certificate) -> tuple[bool, float]:
            public = cert.public_key()
            matches = isinstance(public, rsa.RSAPublicKey) and public.public_numbers().n == n
            return (not matches, -cert.not_valid_after_utc.timestamp())

        try:
            candidates = self._certificate_objects({pkcs11.Attribute.LABEL: key_label})
            if not candidates:
                key_id = self._attribute(self._key, pkcs11.Attribute.ID)
                if key_id:
                    candidates = self._certificate_objects({pkcs11.Attribute.ID: bytes(key_id)})
            if not candidates:
                raise SigningError(
                    f"{where} holds no certificate for the key {key_label!r} (by label or CKA_ID); "
                    "give the certificate chain as a PEM file (--certificate-path)",
                    code=NuCode.NU3001,
                )
            leaf = min(candidates, key=rank)
            others = [c for c in self._certificate_objects({}) if c != leaf]
        except pkcs11.PKCS11Error as exc:
            raise _fail(f"cannot read the certificates in {where}", exc) from exc
        return [leaf, *others]

    @staticmethod
    def _attribute(obj: Any, attribute: pkcs11.Attribute) -> Any:
        try:
            return obj[attribute]
        except (pkcs11.AttributeSensitive, pkcs11.AttributeTypeInvalid, pkcs11.FunctionFailed):
            return None

    def _check_pair(self, where: str, key_label: str) -> None:
        public = self._certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise SigningError(
                f"the certificate for {key_label!r} in {where} has no RSA key (NuGet needs RSA >= 2048 bits)",
                code=NuCode.NU3014,
            )
        modulus = self._attribute(self._key, pkcs11.Attribute.MODULUS)
        if modulus is not None and int.from_bytes(bytes(modulus), "big") != public.public_numbers().n:
            raise SigningError(
                f"the key {key_label!r} in {where} does not belong to the certificate "
                f"{self._certificate.subject.rfc4514_string()}",
                code=NuCode.NU3001,
            )

    def _choose_mechanism(self, where: str, raw_rsa: bool | None) -> bool:
        try:
            offered = self._token.slot.get_mechanisms()
        except pkcs11.PKCS11Error as exc:
            raise _fail(f"cannot list the mechanisms of {where}", exc) from exc
        hash_and_sign = all(m in offered for m in _HASH_AND_SIGN.values())
        raw = pkcs11.Mechanism.RSA_PKCS in offered
        if raw_rsa is None:
            raw_rsa = not hash_and_sign
        if (raw_rsa and not raw) or (not raw_rsa and not hash_and_sign):
            wanted = "CKM_RSA_PKCS" if raw_rsa else "CKM_SHA{256,384,512}_RSA_PKCS"
            raise SigningError(f"{where} does not offer {wanted}", code=NuCode.NU3001)
        return raw_rsa

    # ------------------------------------------------------------------------------------------ Signer
    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def uses_raw_rsa(self) -> bool:
        """Whether signatures are made with ``CKM_RSA_PKCS`` over a host-made DigestInfo."""
        return self._raw_rsa

    def sign(self, data: bytes, algorithm: HashAlgorithm) -> bytes:
        """RSA PKCS#1 v1.5 over ``algorithm(data)``, computed inside the token and checked against the
        certificate's public key.

        Raises:
            SigningError: NU3001 the token refused or was closed, or its signature does not verify.
        """
        with self._lock:
            if self._session is None:
                raise SigningError(f"{self._where}: the signer is closed", code=NuCode.NU3001)
            try:
                if self._raw_rsa:
                    value = self._key.sign(digest_info(data, algorithm), mechanism=pkcs11.Mechanism.RSA_PKCS)
                else:
                    value = self._key.sign(data, mechanism=_HASH_AND_SIGN[algorithm])
            except pkcs11.PKCS11Error as exc:
                raise _fail(f"{self._where} refused to sign", exc) from exc
        signature = bytes(value)
        public = self._certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)  # _check_pair
        try:
            public.verify(signature, data, padding.PKCS1v15(), _HASHES[algorithm])
        except InvalidSignature as exc:
            raise SigningError(
                f"{self._where}: the token's signature does not verify with the certificate's public key "
                "(is it the certificate's key?)",
                code=NuCode.NU3001,
            ) from exc
        return signature

    def close(self) -> None:
        """Log out and close the session (idempotent)."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            session, self._session = self._session, None
        else:
            with lock:
                session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):  # the token went away: nothing left to close
                session.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_pem(path: str | Path) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"{path} holds no PEM certificate: {exc}") from exc
    return certificates
