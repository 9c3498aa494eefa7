"""A test upstream that behaves as nuget.org does, and a proxy in front of it that counts and breaks things.

- :func:`start_test_upstream`: a second ``nuseal serve --no-signing`` holding the real nuget.org packages from
  ``../shared/vectors/nuget.org/`` byte for byte (pushed as they are: with signing off the feed stores pushed bytes
  unchanged, their nuget.org repository signatures included), with a ``RepositorySignatures/5.0.0`` resource
  listing nuget.org's repository certificates as taken from the vectors' repository signatures
  (:func:`nuget_org_repository_certificates`; ``nuseal serve --list-repository-certificate``). Its clock starts
  at ``VECTOR_NOW`` (``support.clock.VECTOR_ENV``), as the mirrors' in front of it do, so the upstream's
  ``published`` dates and a mirror's clock are on one time line (:meth:`NugetOrgUpstream.now`).
- :class:`UpstreamProxy` (:func:`upstream_proxy`): a loopback HTTP server that forwards GETs to an upstream,
  rewriting the upstream's URLs in JSON documents to its own (so a client that follows the service index stays
  behind the proxy) and passing ``.nupkg`` bytes untouched. It counts requests per path, and can hold ``.nupkg``
  answers until released, cut a ``.nupkg`` after N bytes and drop the connection (the upstream dying
  mid-download), refuse every request (the upstream down), or serve other bytes for one package (a tampered
  package on the upstream; :func:`tampered` makes them from a vector).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from support.clock import VECTOR_ENV, VECTOR_NOW
from support.tamper import entry_content_changed

from .conftest import VECTORS, Feed, start_feed

#: The service index URL nuget.org writes into its repository signatures.
NUGET_ORG_INDEX = "https://api.nuget.org/v3/index.json"
#: The serve option that lists another repository's certificates in RepositorySignatures.
CERTIFICATE_OPTION = "--list-repository-certificate"


def vector_files() -> dict[tuple[str, str], Path]:
    """(lower id, normalized lower version) -> vector file, read from each package's nuspec."""
    out: dict[tuple[str, str], Path] = {}
    for path in sorted(VECTORS.glob("*.nupkg")):
        nuspec = PackageArchive.from_bytes(path.read_bytes()).nuspec()
        out[(nuspec.id.lower(), nuspec.version.normalized.lower())] = path
    return out


def nuget_org_repository_certificates() -> list[x509.Certificate]:
    """nuget.org's repository-signing certificates, as found in the vectors: the signer of every repository
    signature (primary or countersignature) whose ``nuget-v3-service-index-url`` is nuget.org's; one per
    fingerprint, oldest first."""
    found: dict[bytes, x509.Certificate] = {}
    for path in sorted(VECTORS.glob("*.nupkg")):
        archive = PackageArchive.from_bytes(path.read_bytes())
        primary = PrimarySignature.load(archive.read_signature())
        for sig in (primary, *primary.countersignatures):
            if sig.type == SignatureType.REPOSITORY and sig.v3_service_index_url == NUGET_ORG_INDEX:
                assert sig.signer_certificate is not None
                found.setdefault(sig.signer_certificate.fingerprint(hashes.SHA256()), sig.signer_certificate)
    return sorted(found.values(), key=lambda c: c.not_valid_before_utc)


def sha256_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def tampered(path: Path) -> bytes:
    """The vector with one byte of its largest entry's content changed (a well-formed ZIP whose signature no
    longer matches: NU3008)."""
    return entry_content_changed(path.read_bytes())


@dataclass
class NugetOrgUpstream:
    feed: Feed
    packages: dict[tuple[str, str], Path]
    certificates: list[x509.Certificate]
    started: float = 0.0
    """``time.monotonic()`` just before the upstream's process started (its clock read ``VECTOR_NOW`` then)."""

    def now(self) -> datetime:
        """The upstream's clock, as this process sees it: at most a few seconds (its start-up) ahead of it."""
        return VECTOR_NOW + timedelta(seconds=time.monotonic() - self.started)

    @property
    def source(self) -> str:
        return self.feed.source

    def stop(self) -> None:
        self.feed.stop()


def start_test_upstream(data_dir: Path, *serve_args: str) -> NugetOrgUpstream:
    """Start ``nuseal serve --no-signing --http`` in ``data_dir`` and push every nuget.org vector into it as is
    (checked to come back byte for byte). nuget.org's repository certificates (written as PEM files in
    ``data_dir``) are listed in its RepositorySignatures resource."""
    certs = nuget_org_repository_certificates()
    args = list(serve_args)
    data_dir.mkdir(parents=True, exist_ok=True)
    for cert in certs:
        pem = data_dir / f"nuget-org-{sha256_fingerprint(cert)[:16]}.pem"
        pem.write_bytes(cert.public_bytes(Encoding.PEM))
        args += [CERTIFICATE_OPTION, str(pem)]
    args += ["--advertise-repository-signatures", "always"]  # over plain http, as a test upstream is
    started = time.monotonic()
    feed = start_feed(data_dir, *args, env=VECTOR_ENV)
    packages = vector_files()
    try:
        for (lower, ver), path in packages.items():
            data = path.read_bytes()
            r = feed.push(data)
            assert r.status_code == 201, f"{path.name}: {r.status_code} {r.text}"
            with feed.client() as c:
                assert c.get(f"/v3/flatcontainer/{lower}/{ver}/{lower}.{ver}.nupkg").content == data
    except BaseException:
        feed.stop()
        raise
    return NugetOrgUpstream(feed, packages, certs, started)


# ------------------------------------------------------------------------------------------------ proxy
@dataclass
class UpstreamProxy:
    """See the module docstring. ``hold``: while set, ``.nupkg`` answers wait for :attr:`release` (at most
    ``hold_seconds``); ``cut_after``: bytes of a ``.nupkg`` sent before the connection is dropped; ``down``: every
    request is dropped without an answer; ``replace``: request path -> bytes served instead."""

    target: str
    base_url: str = ""
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    hold_seconds: float = 30.0
    cut_after: int | None = None
    down: bool = False
    replace: dict[str, bytes] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def source(self) -> str:
        return f"{self.base_url}/v3/index.json"

    def count(self, pattern: str) -> int:
        """Requests whose path matches the regular expression ``pattern``."""
        with self.lock:
            return sum(n for path, n in self.requests.items() if re.search(pattern, path))


def nupkg_path(package_id: str, version: str) -> str:
    lower, ver = package_id.lower(), version.lower()
    return f"/v3/flatcontainer/{lower}/{ver}/{lower}.{ver}.nupkg"


@contextmanager
def upstream_proxy(target: str) -> Iterator[UpstreamProxy]:
    """Start an :class:`UpstreamProxy` to ``target`` (an upstream's base URL) on 127.0.0.1; stopped on exit."""
    proxy = UpstreamProxy(target.rstrip("/"))
    client = httpx.Client(timeout=60)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _drop(self) -> None:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with proxy.lock:
                proxy.requests[path] += 1
            if proxy.down:
                self._drop()
                return
            is_nupkg = path.endswith(".nupkg")
            if is_nupkg and proxy.hold:
                proxy.release.wait(proxy.hold_seconds)
            body = proxy.replace.get(path)
            status, ctype = 200, "application/octet-stream"
            if body is None:
                r = client.get(proxy.target + self.path)
                status, body = r.status_code, r.content
                ctype = r.headers.get("content-type", "application/octet-stream")
                if not is_nupkg and "json" in ctype:
                    body = body.replace(proxy.target.encode(), proxy.base_url.encode())
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if is_nupkg and status == 200 and proxy.cut_after is not None:
                self.wfile.write(body[: proxy.cut_after])
                self.wfile.flush()
                self._drop()
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        server.shutdown()
        server.server_close()
        client.close()


# ------------------------------------------------------------------------------------------------ fixtures, mirrors
#: The vectors' trust roots (code signing, timestamping), the mirrors' --trust-bundle and --timestamp-trust-bundle.
CODESIGN_BUNDLE = str(VECTORS.parents[1] / "trust" / "codesignctl.pem")
TIMESTAMP_BUNDLE = str(VECTORS.parents[1] / "trust" / "timestampctl.pem")


@pytest.fixture(scope="module", name="upstream")
def upstream_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NugetOrgUpstream]:
    """``upstream``: the test upstream (:func:`start_test_upstream`), one per test module."""
    u = start_test_upstream(tmp_path_factory.mktemp("upstream"))
    yield u
    u.stop()


@pytest.fixture(name="proxy")
def proxy_fixture(upstream: NugetOrgUpstream) -> Iterator[UpstreamProxy]:
    """``proxy``: a proxy in front of the test upstream, the upstream's documents as they are."""
    with upstream_proxy(upstream.feed.base_url) as p:
        yield p


@pytest.fixture(name="proxy")
def nuget_org_proxy_fixture(upstream: NugetOrgUpstream) -> Iterator[UpstreamProxy]:
    """``proxy``: a proxy in front of the test upstream that says all its packages are repository-signed, as
    nuget.org does (:func:`says_all_repository_signed`)."""
    with upstream_proxy(upstream.feed.base_url) as p:
        says_all_repository_signed(p)
        yield p


def says_all_repository_signed(proxy: UpstreamProxy) -> None:
    """Serve the upstream's RepositorySignatures with ``allRepositorySigned: true``, as nuget.org's says (the test
    upstream runs with --no-signing, so its own says false): every package must then carry a repository signature
    by one of the listed certificates (NuGet.Client RepositorySignatureInfoUtility)."""
    path = "/v3/repository-signatures/index.json"
    document = httpx.get(proxy.base_url + path, timeout=30).json()
    assert document["signingCertificates"]
    proxy.replace[path] = json.dumps({**document, "allRepositorySigned": True}).encode()


def vector(upstream: NugetOrgUpstream, package_id: str) -> tuple[str, Path]:
    """(normalized lower version, vector file) of the vector with this id."""
    return next((ver, path) for (i, ver), path in upstream.packages.items() if i == package_id.lower())


def start_mirror(
    data_dir: Path, proxy: UpstreamProxy, *args: str, workers: int = 1, users: tuple[str, ...] = ("alice", "root")
) -> Feed:
    """``nuseal serve --upstream test=<proxy> --allow-insecure-upstream`` with the vectors' trust roots and offline
    revocation (tests reach only loopback), judging the vectors on their clock (``VECTOR_ENV``: it starts at
    ``VECTOR_NOW``); ``users`` are created first (none on a data folder that has them: a restart)."""
    return start_feed(
        data_dir,
        "--upstream",
        f"test={proxy.source}",
        "--allow-insecure-upstream",
        "--upstream-revocation-mode",
        "offline",
        "--trust-bundle",
        CODESIGN_BUNDLE,
        "--timestamp-trust-bundle",
        TIMESTAMP_BUNDLE,
        *args,
        workers=workers,
        users=users,
        env=VECTOR_ENV,
    )
