"""Revocation answers across runs (an on-disk cache) and the per-run revocation context (host view, deadline).

:class:`RevocationStore` keeps the raw OCSP responses (per certificate: issuer key hash + serial) and CRLs (per
distribution point URL) that settled a question online, under ``$NUSEAL_CACHE/revocation`` (default
``$XDG_CACHE_HOME/nuseal/revocation``, i.e. ``~/.cache/nuseal/revocation``). Nothing in a file is trusted: the
checker (:class:`~nuseal.trust.revocation.RevocationChecker`) judges the stored bytes again at every read, as it
judged them before storing (signature, responder certificate and its authorisation, CertID, thisUpdate and
nextUpdate, RFC 6960 / RFC 5280 §6.3); a file that no longer verifies is removed, one past its ``nextUpdate`` is
replaced by the next online answer. nuseal's OCSP requests carry no nonce (as .NET's do not), so there is none
to check. Writes go to a temporary file in the same folder, then ``os.replace``: concurrent runs see a whole
old file or a whole new one.

:func:`revocation_run` sets up one run (``nuseal verify``, ``restore``, ``audit``): a :class:`HostHealth` shared
with forked workers through a temporary folder, one :class:`~nuseal.trust.revocation.RevocationCache` (with
the store unless disabled), when the caller asks for ``online`` an HTTP fetcher using both
(:mod:`nuseal.trust.online`, imported only then), and a per-package deadline. ``Verifier`` objects built inside
the run with no explicit fetcher/cache use them (:func:`current_run`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from nuseal.errors import UsageError
from nuseal.trust.certificate import facts
from nuseal.trust.revocation import (
    MAX_CRL_BYTES,
    HostHealth,
    RevocationCache,
)

if TYPE_CHECKING:
    from nuseal.trust.online import HttpRevocationFetcher

__all__ = [
    "CACHE_ENV",
    "DEFAULT_PACKAGE_TIMEOUT",
    "RevocationRun",
    "RevocationStore",
    "cache_root",
    "current_run",
    "revocation_run",
]

#: Environment variable moving nuseal's cache folder (the revocation cache is its ``revocation`` subfolder).
CACHE_ENV = "NUSEAL_CACHE"
#: Default total time (seconds) the revocation requests of one package may take (``--revocation-timeout``).
DEFAULT_PACKAGE_TIMEOUT = 5.0
_FORMAT = "nuseal-revocation/1"
_MAX_FILE_BYTES = 2 * MAX_CRL_BYTES + 4096


def cache_root() -> Path:
    """``$NUSEAL_CACHE``, else ``$XDG_CACHE_HOME/nuseal``, else ``~/.cache/nuseal``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuseal"


class RevocationStore:
    """Raw OCSP responses and CRLs on disk (module docstring). Never raises for I/O or bad files: a read that
    fails is a miss, a write that fails is skipped."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else cache_root() / "revocation"

    # ---------------------------------------------------------------- paths
    def _ocsp_path(self, cert: x509.Certificate, issuer: x509.Certificate) -> Path:
        return self.directory / "ocsp" / f"{facts(issuer).spki_sha256.hex()}-{cert.serial_number:x}.json"

    def _crl_path(self, url: str) -> Path:
        return self.directory / "crl" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    # ---------------------------------------------------------------- reads
    def get_ocsp(self, cert: x509.Certificate, issuer: x509.Certificate) -> tuple[str, bytes, datetime] | None:
        """``(url, DER OCSPResponse, stored at)`` kept for ``cert`` issued by ``issuer``, else ``None``."""
        return self._read(self._ocsp_path(cert, issuer), "ocsp")

    def get_crl(self, url: str) -> tuple[str, bytes, datetime] | None:
        """``(url, CRL bytes, stored at)`` kept for the distribution point ``url``, else ``None``."""
        entry = self._read(self._crl_path(url), "crl")
        return entry if entry is not None and entry[0] == url else None

    def _read(self, path: Path, kind: str) -> tuple[str, bytes, datetime] | None:
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_FILE_BYTES + 1)
                stored_at = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC)
        except OSError:
            return None
        try:
            if len(raw) > _MAX_FILE_BYTES:
                raise ValueError("too large")
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT or doc.get("kind") != kind or not isinstance(doc.get("url"), str):
                raise ValueError("not a revocation cache entry")
            data = base64.b64decode(doc["data"], validate=True)
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return doc["url"], data, stored_at

    # ---------------------------------------------------------------- writes
    def put_ocsp(
        self, cert: x509.Certificate, issuer: x509.Certificate, url: str, data: bytes, next_update: datetime | None
    ) -> None:
        """Keep an OCSP response that was just judged GOOD or REVOKED for ``cert``."""
        self._write(self._ocsp_path(cert, issuer), "ocsp", url, data, next_update)

    def put_crl(self, url: str, data: bytes, next_update: datetime | None) -> None:
        """Keep a CRL from ``url`` that was just judged and settled a question."""
        self._write(self._crl_path(url), "crl", url, data, next_update)

    def _write(self, path: Path, kind: str, url: str, data: bytes, next_update: datetime | None) -> None:
        doc = {
            "format": _FORMAT,
            "kind": kind,
            "url": url,
            "next_update": next_update.isoformat() if next_update else None,  # informative; re-read from data
            "data": base64.b64encode(data).decode("ascii"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(doc, handle)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return

    def discard(self, kind: str, cert: x509.Certificate, issuer: x509.Certificate, url: str) -> None:
        """Remove an entry that no longer verifies."""
        path = self._ocsp_path(cert, issuer) if kind == "ocsp" else self._crl_path(url)
        with contextlib.suppress(OSError):
            path.unlink()

    def entries(self) -> int:
        """How many responses and CRLs are kept."""
        return sum(1 for sub in ("ocsp", "crl") for _ in (self.directory / sub).glob("*.json"))


@dataclass(frozen=True)
class RevocationRun:
    """One run's revocation context (module docstring). ``package_timeout`` is in seconds; ``fetcher`` is
    ``None`` unless the run was asked to go online."""

    hosts: HostHealth
    cache: RevocationCache
    fetcher: HttpRevocationFetcher | None
    package_timeout: float
    store: RevocationStore | None


_CURRENT: RevocationRun | None = None


def current_run() -> RevocationRun | None:
    """The :func:`revocation_run` in progress in this process (inherited by forked workers), else ``None``."""
    return _CURRENT


@contextlib.contextmanager
def revocation_run(
    *,
    online: bool,
    package_timeout: float = DEFAULT_PACKAGE_TIMEOUT,
    use_store: bool = True,
    store: RevocationStore | None = None,
) -> Iterator[RevocationRun]:
    """Set up one run's revocation context for the block (module docstring); nested calls reuse the outer one.

    ``online``: the caller's decision to fetch OCSP responses and CRLs over HTTP (the CLI's online revocation
    mode); without it the run only shares the cache (and the store) and nothing is fetched.

    Raises:
        UsageError: ``package_timeout`` is not positive.
    """
    global _CURRENT  # noqa: PLW0603 - one run per process
    if package_timeout <= 0:
        raise UsageError("revocation request timeout must be positive")
    if _CURRENT is not None:
        yield _CURRENT
        return
    folder = Path(tempfile.mkdtemp(prefix="nuseal-hosts-"))
    hosts = HostHealth(folder)
    kept = (store or RevocationStore()) if use_store else None
    fetcher = None
    if online:
        from nuseal.trust.online import HttpRevocationFetcher  # noqa: PLC0415 - the HTTP client only when asked

        fetcher = HttpRevocationFetcher(timeout=package_timeout, hosts=hosts)
    run = RevocationRun(hosts, RevocationCache(store=kept), fetcher, package_timeout, kept)
    _CURRENT = run
    try:
        yield run
    finally:
        _CURRENT = None
        shutil.rmtree(folder, ignore_errors=True)
