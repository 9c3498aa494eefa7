"""SoftHSM2 tokens for the PKCS#11 tests (Debian's ``softhsm2``): a token in a folder of its own, RSA key pairs
generated inside it as sensitive and not extractable, and code-signing certificates for them issued by a dev
PKI's intermediate CA, stored in the token next to the key.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised, and python-pkcs11 keeps one loaded library per
path: :func:`softhsm_conf` sets the variable and unloads the library before and after, so tests in the same
process can use their own tokens. A ``nuseal`` subprocess gets the variable through its environment
(:attr:`SoftHsm.env`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuseal.devpki import DevPki

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SO_PIN = "5678"


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 configuration whose tokens live under ``directory``."""

    directory: Path
    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, *, pin: str = PIN) -> None:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin",
                        SO_PIN], check=True, capture_output=True, env={**os.environ, **self.env})

    def session(self, label: str, *, pin: str = PIN) -> pkcs11.Session:
        """A read-write, logged-in session on token ``label`` (close it, e.g. ``with``)."""
        return pkcs11.lib(MODULE).get_token(token_label=label).open(user_pin=pin, rw=True)


@contextmanager
def softhsm_conf(directory: Path) -> Iterator[SoftHsm]:
    """A SoftHSM2 configuration in ``directory``, set as ``SOFTHSM2_CONF`` for this process while the block runs
    (the library is unloaded before and after)."""
    if not Path(MODULE).is_file():
        raise AssertionError(f"SoftHSM2 is missing ({MODULE}); scripts/install-system-deps.sh installs it")
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pkcs11.unload(MODULE)
    try:
        yield SoftHsm(directory, conf)
    finally:
        pkcs11.unload(MODULE)
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def generate_key(session: pkcs11.Session, label: str, key_id: bytes, bits: int = 2048) -> rsa.RSAPublicKey:
    """An RSA key pair made inside the token (private half sensitive, not extractable); its public key."""
    public, _ = session.generate_keypair(
        pkcs11.KeyType.RSA, bits, id=key_id, label=label, store=True,
        private_template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False},
    )
    numbers = rsa.RSAPublicNumbers(int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
                                   int.from_bytes(public[pkcs11.Attribute.MODULUS], "big"))
    return numbers.public_key()


def issue(dev: DevPki, public: rsa.RSAPublicKey, common_name: str) -> x509.Certificate:
    """A code-signing certificate for ``public`` issued by the dev intermediate, valid from an hour ago for 30
    days (CRL distribution point: the dev CRL responder, so that online revocation checks get an answer)."""
    issuer = dev.cert("intermediate")
    issuer_key = dev.key("intermediate")
    assert isinstance(issuer_key, rsa.RSAPrivateKey)
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(dev.crl_url)], relative_name=None, reasons=None,
            crl_issuer=None)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def store_certificate(session: pkcs11.Session, cert: x509.Certificate, *, label: str, key_id: bytes) -> None:
    session.create_object({
        pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
        pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
        pkcs11.Attribute.TOKEN: True,
        pkcs11.Attribute.LABEL: label,
        pkcs11.Attribute.ID: key_id,
        pkcs11.Attribute.SUBJECT: cert.subject.public_bytes(),
        pkcs11.Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
    })
