"""The dev PKI's TLS server certificate: what ``nuseal serve`` presents on embedded defaults (issue 19).

:func:`ensure_server_certificate` issues, from the dev PKI's intermediate CA, an RSA 2048 certificate with EKU
serverAuth and a subjectAltName for every name the feed answers to (:func:`server_names`), and keeps it in the PKI
folder (``tls-server.chain.pem``: leaf then intermediate; ``tls-server.key.pem``, mode 0600); IPv4 addresses are
also named as dNSName text for Mono (see :func:`_general_names`). It is reissued at
start when it is missing or damaged, was issued by another CA (the PKI was recreated), does not name every name
asked for, or has less than a third of its lifetime left (RFC 5280 validity; the 1/3 rule is what ACME clients
such as certbot use). Clients trust it through the dev root (``nuseal dev trust``). It carries no AIA/CDP: TLS
clients do not check its revocation by default, and the feed must start without the dev responders
(``--no-signing``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuseal.devpki.pki import DevPki

__all__ = [
    "LOOPBACK_NAMES",
    "SERVER_CERT_LIFETIME",
    "ServerCertificate",
    "ensure_server_certificate",
    "issue_server_certificate",
    "server_names",
]

#: Names every dev server certificate covers.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Validity of an issued certificate (397 days: the CA/Browser Forum's upper bound for TLS server certificates).
SERVER_CERT_LIFETIME = timedelta(days=397)
_CHAIN = "tls-server.chain.pem"
_KEY = "tls-server.key.pem"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 - names, not a bind


def _normal(name: str) -> str:
    name = name.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.rstrip(".")


def server_names(host: str | None = None, base_url: str | None = None) -> tuple[str, ...]:
    """The names a feed listening on ``host`` and published at ``base_url`` answers to: :data:`LOOPBACK_NAMES`,
    ``host`` (for a wildcard address ``0.0.0.0``/``::``: this machine's host name instead) and the base URL's host,
    each once, in that order."""
    names = list(LOOPBACK_NAMES)
    extra = [host or ""]
    if _normal(host or "") in _WILDCARD_HOSTS and host is not None:
        extra.append(socket.gethostname())
    if base_url:
        extra.append(urlsplit(base_url).hostname or "")
    for name in extra:
        normal = _normal(name)
        if normal not in _WILDCARD_HOSTS and normal not in names:
            names.append(normal)
    return tuple(names)


def _general_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    """subjectAltName entries for ``names``: a dNSName per host name, an iPAddress per address, and for an IPv4
    address also a dNSName holding it as text. The copy is for Mono (6.8, BoringSSL): it checks an address target
    only against dNSName entries and refuses a certificate that names it as iPAddress alone (seen with NuGet.exe
    5.8 against ``https://127.0.0.1:PORT``); RFC 6125 clients ignore it, as they never match an address to a
    DNS-ID."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            entries.append(x509.DNSName(name))
            continue
        entries.append(x509.IPAddress(address))
        if address.version == 4:
            entries.append(x509.DNSName(str(address)))
    return entries


def issue_server_certificate(
    pki: DevPki,
    names: tuple[str, ...],
    *,
    now: datetime | None = None,
    not_before: timedelta = timedelta(hours=-1),
    lifetime: timedelta = SERVER_CERT_LIFETIME,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A new TLS server certificate for ``names`` (DNS names or IP addresses) issued by ``pki``'s intermediate.

    Valid from ``now + not_before`` for ``lifetime``; tests pass a past ``now`` for an expired one. The subject
    CN is the first name (clients read only the SAN, RFC 6125 section 6.4.4).
    """
    if not names:
        raise ValueError("a server certificate needs at least one name")
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    issuer = pki.cert("intermediate")
    issuer_key = pki.key("intermediate")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nuseal development PKI"),
        ]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when + not_before)
        .not_valid_after(when + not_before + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def write_server_certificate(
    directory: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey, issuer: x509.Certificate
) -> tuple[Path, Path]:
    """Write ``cert`` + ``issuer`` (PEM chain) and ``key`` (PKCS#8, mode 0600) into ``directory``, each file
    replaced atomically; returns (chain path, key path)."""
    chain_path, key_path = directory / _CHAIN, directory / _KEY
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain_bytes = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, issuer))
    for path, data, mode in ((key_path, key_bytes, 0o600), (chain_path, chain_bytes, 0o644)):
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return chain_path, key_path


@dataclass(frozen=True)
class ServerCertificate:
    """The dev TLS server certificate on disk: ``chain_path`` (leaf, intermediate), ``key_path``; ``renewed``: it was
    (re)issued by this call; ``names``: its subjectAltName entries; ``not_after``: end of validity (UTC)."""

    chain_path: Path
    key_path: Path
    names: tuple[str, ...]
    not_after: datetime
    renewed: bool


def _san_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names = [_normal(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return tuple(dict.fromkeys(names))


def _reusable(pki: DevPki, names: tuple[str, ...], now: datetime) -> ServerCertificate | None:
    chain_path, key_path = pki.directory / _CHAIN, pki.directory / _KEY
    try:
        chain = x509.load_pem_x509_certificates(chain_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    leaf = chain[0]
    if len(chain) != 2 or chain[1] != pki.cert("intermediate") or leaf.issuer != chain[1].subject:
        return None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return None
    try:
        entries = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return None
    if not set(_general_names(names)) <= entries:
        return None
    have = _san_names(leaf)
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start or end - now < (end - start) / 3:
        return None
    return ServerCertificate(chain_path, key_path, have, end, renewed=False)


def ensure_server_certificate(pki: DevPki, names: tuple[str, ...], *, now: datetime | None = None) -> ServerCertificate:
    """The dev TLS server certificate for ``names``, reused when still good (see the module docstring), else
    issued now and written into the PKI folder.

    Raises:
        OSError: the PKI folder cannot be written.
    """
    when = now or datetime.now(UTC)
    existing = _reusable(pki, names, when)
    if existing is not None:
        return existing
    cert, key = issue_server_certificate(pki, names, now=when)
    chain_path, key_path = write_server_certificate(pki.directory, cert, key, pki.cert("intermediate"))
    return ServerCertificate(chain_path, key_path, _san_names(cert), cert.not_valid_after_utc, renewed=True)
