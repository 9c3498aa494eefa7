"""A development PKI for signing and testing: root CA -> intermediate CA -> author, repository and TSA certificates.

Everything is generated with ``cryptography`` and written to one directory (PEM certificates and keys, chains,
PKCS#12 files). Never use it for anything but development and tests: the keys are unencrypted on disk.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from nuseal.errors import UsageError

__all__ = ["CA_NAMES", "DEFAULT_HOST", "NAMES", "PFX_PASSWORD", "DevPki"]

PFX_PASSWORD = "nuseal-dev"  # noqa: S105 - a documented dev-only password
DEFAULT_HOST = "127.0.0.1"
_LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
_META = "devpki.json"
_MAX_PORT = 65535
_KeyType = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_host(host: object) -> str:
    """``host`` if it is an IPv4 loopback address (127.0.0.0/8): the dev responders never leave the machine."""
    try:
        address = ipaddress.IPv4Address(str(host))
    except ValueError:
        address = None
    if not isinstance(host, str) or address is None or address not in _LOOPBACK_NET:
        raise UsageError(f"host {host!r} is not an IPv4 loopback address (127.0.0.0/8): the dev PKI serves loopback")
    return host


@dataclass(frozen=True)
class _Spec:
    name: str
    issuer: str | None  # None: self-signed
    ca: bool = False
    eku: tuple[x509.ObjectIdentifier, ...] = ()
    eku_critical: bool = False
    key: str = "rsa2048"
    not_before: timedelta = timedelta(days=-1)
    not_after: timedelta = timedelta(days=730)


_CA_START = timedelta(days=-4 * 365)
_SPECS = (
    # The CAs start before every certificate they issue (expired-signer begins 3 years back), so a chain is
    # time-valid at any moment inside the leaf's own validity.
    _Spec("root", None, ca=True, not_before=_CA_START, not_after=timedelta(days=3650)),
    _Spec("intermediate", "root", ca=True, not_before=_CA_START, not_after=timedelta(days=3000)),
    _Spec("author", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    _Spec("repository", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    # The TSA is as old as its CAs (as real TSA certificates are long-lived), so a token back-dated with
    # DevPkiServer.timestamp_at to any moment of expired-signer's validity is issued within the TSA's own.
    _Spec("tsa", "intermediate", eku=(ExtendedKeyUsageOID.TIME_STAMPING,), eku_critical=True, not_before=_CA_START),
    _Spec("rsa1024-signer", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,), key="rsa1024"),
    _Spec("no-eku-signer", "intermediate", eku=(ExtendedKeyUsageOID.SERVER_AUTH,)),
    _Spec("not-yet-valid-signer", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,),
          not_before=timedelta(days=30), not_after=timedelta(days=400)),
    _Spec("expired-signer", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,),
          not_before=timedelta(days=-3 * 365), not_after=timedelta(days=-365)),
    _Spec("revoked-signer", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    _Spec("tsa-no-eku", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    _Spec("self-signed-signer", None, eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    _Spec("untrusted-root", None, ca=True, not_before=_CA_START, not_after=timedelta(days=3650)),
    _Spec("untrusted-signer", "untrusted-root", eku=(ExtendedKeyUsageOID.CODE_SIGNING,)),
    _Spec("ecdsa-signer", "intermediate", eku=(ExtendedKeyUsageOID.CODE_SIGNING,), key="p256"),
)
NAMES = tuple(s.name for s in _SPECS)
CA_NAMES = tuple(s.name for s in _SPECS if s.ca)


def _spec(name: str) -> _Spec:
    for spec in _SPECS:
        if spec.name == name:
            return spec
    raise UsageError(f"the dev PKI has no certificate {name!r} (known: {', '.join(NAMES)})")


def _new_key(kind: str) -> _KeyType:
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=1024 if kind == "rsa1024" else 2048)


@dataclass(frozen=True)
class DevPki:
    """An immutable view over an on-disk development PKI. Build with :meth:`create`, reopen with :meth:`load`.

    Files per name in :data:`NAMES`: ``<name>.crt.pem``, ``<name>.key.pem`` (unencrypted PKCS#8, mode 0600),
    ``<name>.chain.pem`` (the certificate, its intermediate(s), its root), ``<name>.pfx`` (PKCS#12: key + chain,
    password :data:`PFX_PASSWORD`); ``devpki.json`` records the port. Every certificate is RSA 2048 and signed
    sha256WithRSA, with SKI, AKI (not on self-signed ones), critical BasicConstraints and KeyUsage, and, when
    issued by a CA, AIA OCSP -> :attr:`ocsp_url` and CDP -> :meth:`crl_url_for` (issuer). The exceptions are the
    point of the catalogue: ``rsa1024-signer`` (RSA 1024), ``no-eku-signer`` (EKU serverAuth only),
    ``not-yet-valid-signer`` (notBefore now+30 d), ``expired-signer`` (now-3 y .. now-1 y), ``revoked-signer``
    (good until :meth:`DevPkiServer.revoke`), ``tsa-no-eku`` (codeSigning, no timeStamping), ``self-signed-signer``
    (its own root), ``untrusted-signer`` (under the separate ``untrusted-root``), ``ecdsa-signer`` (P-256).
    ``author`` and ``repository`` carry EKU codeSigning; ``tsa`` carries a critical EKU timeStamping. The CAs'
    validity, and ``tsa``'s, starts 4 years before ``now``: every leaf lies within its issuers' validity, and
    ``tsa`` can sign back-dated tokens for any moment of ``expired-signer``'s life.

    ``host`` (an IPv4 loopback address) and ``port`` are baked into the URLs; :func:`nuseal.devpki.serve`
    listens there.
    """

    directory: Path
    port: int
    pfx_password: str = PFX_PASSWORD
    host: str = DEFAULT_HOST

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, the prefix of every responder URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def tsa_url(self) -> str:
        """The RFC 3161 timestamp authority (POST), signing with ``tsa`` at the current time."""
        return f"{self.base_url}/tsa"

    @property
    def ocsp_url(self) -> str:
        """The OCSP responder (RFC 6960, POST) named in every issued certificate's AIA extension."""
        return f"{self.base_url}/ocsp"

    @property
    def crl_url(self) -> str:
        """The intermediate CA's CRL (the issuer of every leaf except ``untrusted-signer``), as in the CDPs."""
        return self.crl_url_for("intermediate")

    def crl_url_for(self, issuer: str) -> str:
        """The CRL of CA ``issuer`` (``root``, ``intermediate`` or ``untrusted-root``), as in its children's CDPs.

        Raises:
            UsageError: ``issuer`` is not a CA of the dev PKI.
        """
        if issuer not in CA_NAMES:
            raise UsageError(f"the dev PKI has no CA {issuer!r} (known: {', '.join(CA_NAMES)})")
        return f"{self.base_url}/crl/{issuer}.crl"

    @staticmethod
    def issuer_name(name: str) -> str | None:
        """The dev-PKI name of ``name``'s issuer; ``None`` for a self-signed certificate."""
        return _spec(name).issuer

    @property
    def root_pem_path(self) -> Path:
        return self.cert_path("root")

    def cert_path(self, name: str) -> Path:
        return self._file(name, "crt.pem")

    def key_path(self, name: str) -> Path:
        return self._file(name, "key.pem")

    def chain_pem_path(self, name: str) -> Path:
        return self._file(name, "chain.pem")

    def pfx_path(self, name: str) -> Path:
        return self._file(name, "pfx")

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path(name).read_bytes())

    def key(self, name: str) -> _KeyType:
        key = serialization.load_pem_private_key(self.key_path(name).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UsageError(f"unexpected key type for {name}")
        return key

    def chain(self, name: str) -> list[x509.Certificate]:
        """``name``'s certificate, then its issuers up to the root."""
        return x509.load_pem_x509_certificates(self.chain_pem_path(name).read_bytes())

    def _file(self, name: str, suffix: str) -> Path:
        if name not in NAMES:
            raise UsageError(f"the dev PKI has no certificate {name!r} (known: {', '.join(NAMES)})")
        return self.directory / f"{name}.{suffix}"

    @classmethod
    def load(cls, directory: Path) -> DevPki:
        """Reopen a PKI written by :meth:`create`.

        Raises:
            UsageError: ``directory`` holds no dev PKI, or an incomplete or damaged one.
        """
        directory = Path(directory)
        meta = directory / _META
        if not meta.is_file():
            raise UsageError(f"{directory} holds no dev PKI (no {_META}); create one with `nuseal dev pki DIR`")
        try:
            recorded = json.loads(meta.read_text(encoding="utf-8"))
            port = recorded["port"]
            host = recorded.get("host", DEFAULT_HOST)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{meta} is damaged ({exc}); recreate the PKI with `nuseal dev pki DIR`") from exc
        if not isinstance(port, int) or not 0 < port <= _MAX_PORT:
            raise UsageError(f"{meta} names no valid port ({port!r}); recreate the PKI with `nuseal dev pki DIR`")
        pki = cls(directory, port, host=_check_host(host))
        missing = [p.name for n in NAMES for p in (pki.cert_path(n), pki.key_path(n)) if not p.is_file()]
        if missing:
            raise UsageError(f"the dev PKI in {directory} is incomplete (missing {', '.join(missing[:3])}...)")
        return pki

    @classmethod
    def create(
        cls, directory: Path, *, host: str = DEFAULT_HOST, port: int = 0, now: datetime | None = None
    ) -> DevPki:
        """Generate every certificate of :data:`NAMES` into ``directory`` (created if needed).

        ``host`` must be an IPv4 loopback address (127.0.0.0/8). ``port`` 0 picks a free port on ``host`` now
        (free when chosen, not reserved); ``http://host:port/...`` is baked into the certificates' AIA/CDP
        URLs. ``now`` (timezone-aware; default the current time) anchors every validity period. Existing files
        are replaced.

        Raises:
            UsageError: ``host`` not loopback, ``port`` outside 0..65535, or ``now`` naive.
            OSError: ``directory`` cannot be written.
        """
        host = _check_host(host)
        if not 0 <= port <= _MAX_PORT:
            raise UsageError(f"port {port} is outside 0..{_MAX_PORT}")
        if now is not None and now.tzinfo is None:
            raise UsageError("now must be timezone-aware (e.g. datetime.now(UTC))")
        when = (now or datetime.now(UTC)).replace(microsecond=0)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        port = port or _free_port(host)
        base = f"http://{host}:{port}"
        keys: dict[str, _KeyType] = {}
        certs: dict[str, x509.Certificate] = {}
        for spec in _SPECS:
            key = _new_key(spec.key)
            keys[spec.name] = key
            subject = x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, f"nuseal dev {spec.name}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nuseal development PKI"),
            ])
            issuer_name = certs[spec.issuer].subject if spec.issuer else subject
            issuer_key = keys[spec.issuer] if spec.issuer else key
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(when + spec.not_before)
                .not_valid_after(when + spec.not_after)
                .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            )
            if spec.ca:
                builder = builder.add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
            else:
                builder = builder.add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
                )
            if spec.eku:
                builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=spec.eku_critical)
            if spec.issuer:
                builder = builder.add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                    critical=False,
                ).add_extension(
                    x509.AuthorityInformationAccess([
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{base}/ocsp")
                        )
                    ]),
                    critical=False,
                ).add_extension(
                    x509.CRLDistributionPoints([
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(f"{base}/crl/{spec.issuer}.crl")], None, None, None
                        )
                    ]),
                    critical=False,
                )
            certs[spec.name] = builder.sign(issuer_key, hashes.SHA256())
        for spec in _SPECS:
            chain = [certs[spec.name]]
            parent = spec.issuer
            while parent:
                chain.append(certs[parent])
                parent = next(s.issuer for s in _SPECS if s.name == parent)
            (directory / f"{spec.name}.crt.pem").write_bytes(certs[spec.name].public_bytes(serialization.Encoding.PEM))
            (directory / f"{spec.name}.chain.pem").write_bytes(
                b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
            )
            key_path = directory / f"{spec.name}.key.pem"
            key_path.write_bytes(
                keys[spec.name].private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            key_path.chmod(0o600)
            (directory / f"{spec.name}.pfx").write_bytes(
                pkcs12.serialize_key_and_certificates(
                    spec.name.encode(),
                    keys[spec.name],
                    certs[spec.name],
                    chain[1:] or None,
                    serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
                )
            )
        (directory / _META).write_text(json.dumps(
            {"host": host, "port": port, "created": when.isoformat(), "names": NAMES}
        ))
        return cls(directory, port, host=host)
