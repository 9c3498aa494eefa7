"""HTTPS on embedded defaults (issue 19): `nuseal serve` presents a dev-PKI server certificate for the names it
answers to, TLS 1.2+ only, and lists RepositorySignatures/5.0.0 with https URLs; the real clients (NuGet.Protocol
6.14 through the oracle, the dotnet CLI, NuGet.exe 5.8 on Mono) use it once the dev root is trusted - and refuse
it, or an expired or wrong-name certificate, otherwise.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.devpki import DevPki
from nuseal.devpki.tls import (
    ensure_server_certificate,
    issue_server_certificate,
    server_names,
    write_server_certificate,
)
from nuseal.feed.http.tls import server_context

from .conftest import Feed, NuGetExe, _require, make_package, start_feed
from .dotnet_support import DotnetCli, dotnet_cli, write_project

REPOSITORY_SIGNATURES = "RepositorySignatures/5.0.0"


@pytest.fixture(scope="module")
def https_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """`nuseal serve --signing` on embedded defaults: HTTPS with the dev certificate, the dev PKI signing."""
    feed = start_feed(tmp_path_factory.mktemp("https"), signing=True, https=True)
    yield feed
    feed.stop()


@pytest.fixture(scope="module")
def trust_bundle(https_feed: Feed) -> Path:
    """What `nuseal dev trust --apply` writes: the system roots + the dev root (for SSL_CERT_FILE)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nuseal.cli.main", "dev", "trust", "--data", str(https_feed.data_dir), "--apply"],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "HOME": str(https_feed.data_dir / "trust-home")},  # Mono's user store goes there
    )
    assert proc.returncode == 0, proc.stderr
    bundle = https_feed.data_dir / "devpki" / "trust-bundle.pem"
    assert bundle.is_file()
    return bundle


def _handshake(port: int, ctx: ssl.SSLContext, name: str) -> ssl.SSLObject | Any:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname=name
    ) as tls:
        return tls.version(), tls.getpeercert(binary_form=True)


def _port(feed: Feed) -> int:
    return int(feed.base_url.rsplit(":", 1)[1])


# ------------------------------------------------------------------------------------------------ certificate
def test_the_default_certificate_chains_to_the_dev_root_and_covers_the_names(https_feed: Feed) -> None:
    assert https_feed.base_url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(https_feed.dev_root))
    for name in ("localhost", "127.0.0.1", "::1"):
        version, der = _handshake(_port(https_feed), trusting, name)
        assert version in ("TLSv1.2", "TLSv1.3")
    leaf = x509.load_der_x509_certificate(der)
    assert ExtendedKeyUsageOID.SERVER_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    pki = DevPki.load(https_feed.data_dir / "devpki")
    assert leaf.issuer == pki.cert("intermediate").subject
    # a name the certificate does not carry, and a client that does not trust the dev root: refused
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|match"):
        _handshake(_port(https_feed), trusting, "nuseal.example")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"unable to get local issuer|self.signed"):
        _handshake(_port(https_feed), ssl.create_default_context(), "localhost")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_1_0_and_1_1_are_refused(https_feed: Feed, version: ssl.TLSVersion) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(https_feed.dev_root))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old versions at all
    with warnings.catch_warnings():  # the old versions are deprecated in Python too: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(_port(https_feed), ctx, "localhost")
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)  # the server refused, not this client
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client, allowed TLS 1.2: accepted
    assert _handshake(_port(https_feed), ctx, "localhost")[0] == "TLSv1.2"


def test_the_certificate_is_renewed_when_names_change_or_a_third_of_its_life_is_left(
    https_feed: Feed, tmp_path: Path
) -> None:
    shutil.copytree(https_feed.data_dir / "devpki", tmp_path / "devpki")
    pki = DevPki.load(tmp_path / "devpki")
    names = server_names("127.0.0.1", https_feed.base_url)
    assert names == ("localhost", "127.0.0.1", "::1")
    first = ensure_server_certificate(pki, names)
    assert not first.renewed  # the feed issued it at start
    assert ensure_server_certificate(pki, ("localhost",)).renewed is False  # a subset: still covered
    wider = server_names("10.1.2.3", "https://feed.example.org:8443")
    assert wider == ("localhost", "127.0.0.1", "::1", "10.1.2.3", "feed.example.org")
    assert server_names("0.0.0.0") == ("localhost", "127.0.0.1", "::1", socket.gethostname().lower())
    renewed = ensure_server_certificate(pki, wider)
    assert renewed.renewed and set(renewed.names) == set(wider)
    life = renewed.not_after - datetime.now(UTC)
    assert not ensure_server_certificate(pki, wider, now=datetime.now(UTC) + life / 2).renewed
    late = ensure_server_certificate(pki, wider, now=datetime.now(UTC) + life * 0.8)
    assert late.renewed and late.not_after > renewed.not_after


def test_serve_refuses_an_expired_certificate_and_prints_plain_http_as_insecure(
    https_feed: Feed, tmp_path: Path
) -> None:
    pki = DevPki.load(https_feed.data_dir / "devpki")
    cert, key = issue_server_certificate(pki, ("localhost",), now=datetime.now(UTC) - timedelta(days=800))
    chain, key_path = write_server_certificate(tmp_path, cert, key, pki.cert("intermediate"))
    run = subprocess.run(
        [sys.executable, "-m", "nuseal.cli.main", "serve", "--data", str(tmp_path / "feed"), "--port", "0",
         "--no-signing", "--tls-cert", str(chain), "--tls-key", str(key_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "clients would refuse it" in run.stderr, run.stderr
    (tmp_path / "plain").mkdir()
    plain = start_feed(tmp_path / "plain", users=())
    try:
        assert plain.base_url.startswith("http://")
        assert "serving plain HTTP (--http): insecure" in (plain.data_dir / "server.log").read_text()
    finally:
        plain.stop()


def test_dev_trust_prints_the_steps_and_changes_nothing_without_apply(
    https_feed: Feed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nuseal.cli.main import main  # noqa: PLC0415

    shutil.copytree(https_feed.data_dir / "devpki", tmp_path / "devpki")
    before = sorted(p.name for p in (tmp_path / "devpki").iterdir())
    assert main(["dev", "trust", "--dir", str(tmp_path / "devpki"), "--source", https_feed.source]) == 0
    out = capsys.readouterr().out
    root = str((tmp_path / "devpki" / "root.crt.pem").resolve())
    assert f"cert-sync --user {root}" in out
    assert "export SSL_CERT_FILE=" in out and "update-ca-certificates" in out
    assert f'value="{https_feed.source}"' in out
    assert sorted(p.name for p in (tmp_path / "devpki").iterdir()) == before  # nothing written
    assert main(["dev", "trust", "--dir", str(tmp_path / "devpki"), "--system"]) != 0
    assert "only together with --apply" in capsys.readouterr().err


def test_repository_signatures_are_listed_with_https_urls(https_feed: Feed) -> None:
    with https_feed.client() as c:
        index = c.get("/v3/index.json").json()
        urls = [r["@id"] for r in index["resources"] if r["@type"] == REPOSITORY_SIGNATURES]
        assert len(urls) == 1 and urls[0].startswith("https://127.0.0.1:")
        doc = c.get(urls[0]).json()
    assert doc["signingCertificates"]
    assert all(cert["contentUrl"].startswith("https://") for cert in doc["signingCertificates"])
    assert all(r["@id"].startswith("https://") for r in index["resources"])


def test_the_http_layer_limits_and_reason_phrases_work_over_tls(https_feed: Feed) -> None:
    """nuseal.feed.http.protocol's protocol runs under the TLS transport: a duplicate push gets the feed's reason
    phrase in the status line, and an oversized request head is answered 431 and closed."""
    package = make_package("Https.Phrase", "1.0.0")
    assert https_feed.push(package).status_code == 201
    duplicate = https_feed.push(package)
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.reason_phrase, duplicate.reason_phrase
    ctx = ssl.create_default_context(cafile=str(https_feed.dev_root))
    with socket.create_connection(("127.0.0.1", _port(https_feed)), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        tls.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


# ------------------------------------------------------------------------------------------------ refused certificates
class _StaticHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"version": "3.0.0", "resources": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["expired", "wrong-name"])
def bad_server(request: pytest.FixtureRequest, https_feed: Feed, tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback presenting a dev-root certificate that is expired, or names only another host;
    yields its service index URL."""
    pki = DevPki.load(https_feed.data_dir / "devpki")
    if request.param == "expired":
        cert, key = issue_server_certificate(
            pki, ("localhost", "127.0.0.1", "::1"), now=datetime.now(UTC) - timedelta(days=30),
            lifetime=timedelta(days=10),
        )
    else:
        cert, key = issue_server_certificate(pki, ("nuseal.example",))
    chain, key_path = write_server_certificate(tmp_path, cert, key, pki.cert("intermediate"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
    server.socket = server_context(str(chain), str(key_path)).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v3/index.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# ------------------------------------------------------------------------------------------------ NuGet.Protocol 6.14
def _oracle_client(bundle: Path, *args: str) -> dict[str, Any]:
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        _require(reason)
    run = subprocess.run(
        ["bash", str(oracle.RUN_SCRIPT), "client", *args], capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "SSL_CERT_FILE": str(bundle)},
    )
    assert run.returncode == 0 and run.stdout.strip(), run.stderr[-2000:]
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


@pytest.mark.oracle
def test_nuget_protocol_lists_repository_signatures_and_downloads_over_https(
    https_feed: Feed, trust_bundle: Path, tmp_path: Path
) -> None:
    """NuGet 6.14's client code on embedded defaults, with the dev root trusted and no insecure-connection setting:
    the RepositorySignatures resource is there (over http NuGet throws for it and then for versions/download)."""
    package = make_package("Https.Lib", "1.0.0")
    assert https_feed.push(package).status_code == 201
    with https_feed.client() as c:
        served = c.get("/v3/flatcontainer/https.lib/1.0.0/https.lib.1.0.0.nupkg").content
    index = _oracle_client(trust_bundle, "index", https_feed.source)
    assert REPOSITORY_SIGNATURES in json.dumps(index), index
    signatures = _oracle_client(trust_bundle, "repository-signatures", https_feed.source)
    text = json.dumps(signatures)
    assert "exception" not in signatures or not signatures["exception"], text
    pki = DevPki.load(https_feed.data_dir / "devpki")
    repository_fp = pki.cert("repository").fingerprint(hashes.SHA256()).hex()
    assert repository_fp.lower() in text.lower(), text
    assert _oracle_client(trust_bundle, "versions", https_feed.source, "Https.Lib")["versions"] == ["1.0.0"]
    out = tmp_path / "out.nupkg"
    downloaded = _oracle_client(trust_bundle, "download", https_feed.source, "Https.Lib", "1.0.0", str(out))
    assert downloaded["found"] is True and out.read_bytes() == served


@pytest.mark.oracle
def test_nuget_protocol_refuses_an_untrusted_expired_or_wrong_name_certificate(
    https_feed: Feed, trust_bundle: Path, bad_server: str, tmp_path: Path
) -> None:
    system_only = tmp_path / "system.pem"  # the feed itself, without the dev root trusted
    system_only.write_bytes(trust_bundle.read_bytes().replace(https_feed.dev_root.read_bytes(), b""))
    refusal = "The SSL connection could not be established"
    untrusted = _oracle_client(system_only, "versions", https_feed.source, "Https.Lib")
    assert "versions" not in untrusted and refusal in json.dumps(untrusted), untrusted
    refused = _oracle_client(trust_bundle, "versions", bad_server, "Https.Lib")
    assert "versions" not in refused and refusal in json.dumps(refused), refused


# ------------------------------------------------------------------------------------------------ dotnet CLI
class _TrustingDotnet(DotnetCli):
    bundle: Path | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.bundle is not None:
            env["SSL_CERT_FILE"] = str(self.bundle)
        return env


@pytest.mark.dotnet
@pytest.mark.slow
def test_dotnet_pushes_and_restores_over_https(https_feed: Feed, trust_bundle: Path, tmp_path: Path) -> None:
    dotnet_cli(tmp_path)  # skips when the SDK is missing
    dotnet = _TrustingDotnet(tmp_path / "dotnet")
    package = dotnet.root / "Https.Dotnet.1.0.0.nupkg"
    package.write_bytes(make_package("Https.Dotnet", "1.0.0"))
    push = ("nuget", "push", str(package), "-s", https_feed.source, "-k", https_feed.keys["alice"])
    untrusted = dotnet.run(*push, check=False)  # the dev root not trusted yet: refused
    assert untrusted.returncode != 0 and "SSL" in untrusted.stdout, untrusted.stdout
    dotnet.bundle = trust_bundle
    assert "Your package was pushed." in dotnet.run(*push).stdout
    project = write_project(dotnet.root / "app", {"Https.Dotnet": "1.0.0"}, sources=[https_feed.source])
    dotnet.run("restore", str(project))
    with https_feed.client() as c:
        served = c.get("/v3/flatcontainer/https.dotnet/1.0.0/https.dotnet.1.0.0.nupkg").content
    assert dotnet.installed_package("Https.Dotnet", "1.0.0").read_bytes() == served


@pytest.mark.dotnet
@pytest.mark.slow
def test_dotnet_refuses_an_expired_or_wrong_name_certificate(
    trust_bundle: Path, bad_server: str, tmp_path: Path
) -> None:
    dotnet_cli(tmp_path)
    dotnet = _TrustingDotnet(tmp_path / "dotnet")
    dotnet.bundle = trust_bundle
    project = write_project(dotnet.root / "app", {"Any.Lib": "1.0.0"}, sources=[bad_server])
    refused = dotnet.run("restore", str(project), check=False)
    assert refused.returncode != 0 and "SSL" in refused.stdout, refused.stdout


# ------------------------------------------------------------------------------------------------ NuGet.exe on Mono
@pytest.mark.nugetexe
@pytest.mark.slow
def test_nugetexe_pushes_and_installs_over_https_once_mono_trusts_the_dev_root(
    https_feed: Feed, nuget: NuGetExe, tmp_path: Path
) -> None:
    package = tmp_path / "Https.Mono.1.0.0.nupkg"
    package.write_bytes(make_package("Https.Mono", "1.0.0"))
    push = ("push", str(package), "-Source", https_feed.source, "-ApiKey", https_feed.keys["alice"])
    untrusted = nuget.run(*push, check=False)
    assert untrusted.returncode != 0, untrusted.stdout
    trusted = subprocess.run(
        [sys.executable, "-m", "nuseal.cli.main", "dev", "trust", "--data", str(https_feed.data_dir), "--apply"],
        capture_output=True, text=True, check=False, timeout=120, env={**os.environ, "HOME": str(nuget.home)},
    )
    assert trusted.returncode == 0, trusted.stderr
    assert "Your package was pushed." in nuget.run(*push).stdout
    out = tmp_path / "installed"
    nuget.run("install", "Https.Mono", "-Version", "1.0.0", "-OutputDirectory", str(out), "-Source", https_feed.source)
    with https_feed.client() as c:
        served = c.get("/v3/flatcontainer/https.mono/1.0.0/https.mono.1.0.0.nupkg").content
    assert (out / "Https.Mono.1.0.0" / "Https.Mono.1.0.0.nupkg").read_bytes() == served
