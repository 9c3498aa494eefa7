"""What the feed signs and judges with: trust stores, the repository-signing key, the TSA, and the dev PKI.

Built from :class:`~nuseal.feed.config.SigningConfig` by :meth:`FeedSigning.load`, once per feed (the composition
root, :mod:`nuseal.feed.compose`, or the admin command that needs it):

* trust: ``trust_bundle`` / ``timestamp_trust_bundle`` (PEM), else the .NET SDK's stores on this machine
  (:meth:`TrustStore.discover`), plus the dev root when the dev PKI is in use;
* the repository key: a PKCS#12 file (password from :data:`~nuseal.feed.config.PFX_PASSWORD_ENV_VAR`), a
  PKCS#11 key (PIN from :data:`~nuseal.feed.config.PKCS11_PIN_ENV_VAR`), or, with neither, the dev PKI's
  ``repository`` certificate from ``DATA/devpki`` (created at first start by :func:`ensure_dev_pki`);
* the TSA: ``timestamper_url``, else the dev TSA. ``nuseal serve`` runs the dev TSA, OCSP and CRL
  responders (:func:`start_dev_responders`) when the dev PKI is in use, on the loopback port recorded in the
  PKI (the certificates' AIA and CDP URLs point there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from nuseal.devpki import DevPki, DevPkiServer, serve
from nuseal.errors import ConfigError, NusealError, UsageError
from nuseal.feed.config import PFX_PASSWORD_ENV_VAR, PKCS11_PIN_ENV_VAR, FeedConfig
from nuseal.signing import FileSigner, Signer, SigningTrust
from nuseal.trust import CertificatePurpose, RevocationCache, RevocationFetcher, RevocationMode, TrustStore

__all__ = ["FeedSigning", "ensure_dev_pki", "start_dev_responders"]


def ensure_dev_pki(config: FeedConfig) -> DevPki:
    """The dev PKI in ``DATA/devpki``, created on first use.

    Raises:
        ConfigError: the folder holds a damaged PKI or cannot be written.
    """
    directory = config.devpki_dir
    try:
        return DevPki.load(directory)
    except UsageError:
        if (directory / "devpki.json").exists():
            raise ConfigError(f"the dev PKI in {directory} is damaged; delete the folder to recreate it") from None
    try:
        return DevPki.create(directory)
    except (OSError, UsageError) as exc:
        raise ConfigError(f"cannot create the dev PKI in {directory}: {exc}") from exc


def start_dev_responders(config: FeedConfig) -> DevPkiServer | None:
    """Serve the dev PKI's TSA/OCSP/CRL when the configuration uses it; None otherwise.

    Raises:
        ConfigError: the dev PKI's port is taken (another feed on the same data folder, or any program).
    """
    if not config.signing.uses_dev_pki:
        return None
    pki = ensure_dev_pki(config)
    try:
        return serve(pki)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the dev PKI's TSA/OCSP/CRL on {pki.base_url} ({exc.strerror or exc}); "
            f"free the port or delete {config.devpki_dir} to make a new PKI"
        ) from exc


@dataclass
class FeedSigning:
    """One feed's signing context. ``fetcher`` carries OCSP/CRL requests (the composition root passes an HTTP
    fetcher; without one nothing is fetched and sign-time revocation checks work offline)."""

    config: FeedConfig
    code_signing_roots: TrustStore
    timestamping_roots: TrustStore
    signer: Signer
    timestamper_url: str | None
    dev_pki: DevPki | None = None
    fetcher: RevocationFetcher | None = None
    cache: RevocationCache = field(default_factory=RevocationCache)

    def signing_trust(self) -> SigningTrust:
        """Trust for signing time checks of the repository certificate and the TSA (online revocation)."""
        return SigningTrust(
            self.code_signing_roots,
            self.timestamping_roots,
            revocation_mode=RevocationMode.ONLINE,
            fetcher=self.fetcher,
            cache=self.cache,
        )

    @classmethod
    def load(cls, config: FeedConfig, *, fetcher: RevocationFetcher | None = None) -> FeedSigning:
        """Build the context from ``config``; ``fetcher`` carries its revocation requests (see the class).

        Raises:
            ConfigError: a bundle, the PFX or the PKCS#11 token cannot be used, or no TSA is configured.
        """
        signing = config.signing
        dev = ensure_dev_pki(config) if signing.uses_dev_pki else None
        extra_roots = [dev.cert("root")] if dev is not None else []
        try:
            if signing.trust_bundle:
                code = TrustStore.from_pem_file(signing.trust_bundle)
            else:
                code = TrustStore.discover(CertificatePurpose.CODE_SIGNING)
            if signing.timestamp_trust_bundle:
                stamp = TrustStore.from_pem_file(signing.timestamp_trust_bundle)
            elif signing.trust_bundle:
                stamp = code
            else:
                stamp = TrustStore.discover(CertificatePurpose.TIMESTAMPING)
        except UsageError as exc:
            raise ConfigError(f"cannot read a trust bundle: {exc.message}") from exc
        if extra_roots:
            code = TrustStore.from_certificates((*code.certificates, *extra_roots), source=f"{code.source} + dev root")
            stamp = TrustStore.from_certificates(
                (*stamp.certificates, *extra_roots), source=f"{stamp.source} + dev root"
            )
        signer = _signer(config, dev)
        tsa = signing.timestamper_url or (dev.tsa_url if dev is not None else None)
        if tsa is None:
            raise ConfigError("repository signing needs a timestamp authority: set --timestamper URL")
        return cls(config, code, stamp, signer, tsa, dev, fetcher=fetcher)


def _signer(config: FeedConfig, dev: DevPki | None) -> Signer:
    signing = config.signing
    try:
        if signing.repository_pkcs11_module:
            from nuseal.signing.pkcs11 import Pkcs11Signer  # noqa: PLC0415 - loads the PKCS#11 library

            assert signing.repository_pkcs11_token and signing.repository_pkcs11_key  # checked by SigningConfig
            # the certificate chain PEM is optional: without it the signer reads the certificate from the token
            return Pkcs11Signer(
                signing.repository_pkcs11_module,
                token_label=signing.repository_pkcs11_token,
                key_label=signing.repository_pkcs11_key,
                pin=os.environ.get(PKCS11_PIN_ENV_VAR),
                certificate_chain=signing.repository_certificate_chain,
                pin_source=PKCS11_PIN_ENV_VAR,
            )
        if signing.repository_pfx:
            return FileSigner.from_pfx(signing.repository_pfx, os.environ.get(PFX_PASSWORD_ENV_VAR))
        assert dev is not None
        return FileSigner.from_pfx(dev.pfx_path("repository"), dev.pfx_password)
    except NusealError as exc:
        raise ConfigError(f"cannot load the repository-signing key: {exc}") from exc

