"""``nuseal serve``: run the NuGet V3 feed (embedded SQLite + local folder by default)."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nuseal.cli._clock import feed_clock
from nuseal.cli._ingest_options import ingest_options
from nuseal.errors import UsageError

if TYPE_CHECKING:
    from nuseal.feed.config import IngestConfig
    from nuseal.feed.http.app import FeedRouter

__all__ = ["DEFAULT_DATA_DIR", "serve_command"]

#: Where the feed keeps its database and files when ``--data`` is not given.
DEFAULT_DATA_DIR = ".nuseal/feed"
MAX_WORKERS = 64


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _http_protocol() -> str:
    """uvicorn's ``http`` setting: nuseal's limited httptools protocol, or h11 when httptools is missing."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from nuseal.feed.http.protocol import PROTOCOL  # noqa: PLC0415 - imports uvicorn

    return PROTOCOL


def _tls_factory() -> Any:
    from nuseal.feed.http.tls import uvicorn_context_factory  # noqa: PLC0415

    return uvicorn_context_factory


def _tls_files(config: Any, host: str, tls_cert: str | None, tls_key: str | None) -> tuple[str, str]:
    """(certificate chain, key) to serve HTTPS with: the given files, else the dev PKI's server certificate for
    every name the feed answers to, issued or renewed now (nuseal.devpki.tls)."""
    if tls_cert and tls_key:
        return str(Path(tls_cert).resolve()), str(Path(tls_key).resolve())
    from nuseal.devpki.tls import ensure_server_certificate, server_names  # noqa: PLC0415
    from nuseal.errors import ConfigError  # noqa: PLC0415
    from nuseal.feed.signing.signer import ensure_dev_pki  # noqa: PLC0415

    pki = ensure_dev_pki(config)
    try:
        cert = ensure_server_certificate(pki, server_names(host, config.base_url))
    except OSError as exc:
        raise ConfigError(f"cannot write the dev TLS certificate into {pki.directory}: {exc}") from exc
    state = "issued" if cert.renewed else "reused"
    click.echo(
        f"TLS: dev certificate {state} for {', '.join(cert.names)} (until {cert.not_after:%Y-%m-%d}), "
        f"chained to the dev root {pki.root_pem_path}; trust it with `nuseal dev trust --data {config.data_dir}`"
    )
    return str(cert.chain_path), str(cert.key_path)


def _absolute(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path else None


@click.command("serve")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="NUSEAL_FEED_DATA",
    help="Folder for the database and package files.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--database",
    "database_url",
    default=None,
    envvar="NUSEAL_FEED_DATABASE",
    help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in the data folder).",
)
@click.option(
    "--storage",
    "storage_url",
    default=None,
    envvar="NUSEAL_FEED_STORAGE",
    help=(
        "Where packages and documents are stored: s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME] for an "
        "S3-compatible bucket (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; needs nuseal[s3]); "
        "default: DATA/storage."
    ),
)
@click.option(
    "--base-url",
    default=None,
    help="Public URL of the feed (default: https://HOST:PORT, http:// with --http); behind a reverse proxy, its URL.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="PEM server certificate followed by its intermediates (default: one issued by the dev PKI in DATA/devpki).",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True), default=None, help="PEM private key of --tls-cert."
)
@click.option(
    "--http",
    "plain_http",
    is_flag=True,
    help="Serve plain HTTP (insecure: only behind a TLS-terminating reverse proxy, or for tests).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, MAX_WORKERS), help="Worker processes.")
@click.option(
    "--max-package-size",
    default=None,
    type=click.IntRange(1, None),
    help="Largest accepted .nupkg in bytes (default 250 MB).",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, None),
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a request's headers (then 408 and the connection is closed).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0.1, None),
    default=30.0,
    show_default=True,
    help="Longest pause, in seconds, while a client sends a request body (then the connection is closed).",
)
@click.option(
    "--signing/--no-signing",
    default=True,
    show_default=True,
    help=(
        "Enforce nuget.org's signing rules and repository-sign every accepted package (docs/feed.md, Signing); "
        "without a repository key the dev PKI and dev TSA in DATA/devpki are made and used."
    ),
)
@click.option("--require-author-signature", is_flag=True, help="With --signing: refuse unsigned packages.")
@click.option(
    "--trust-bundle",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="PEM roots trusted for signing certificates (default: the .NET SDK's store; + the dev root in dev mode).",
)
@click.option(
    "--timestamp-trust-bundle",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="PEM roots trusted for timestamp authorities (default: --trust-bundle, else the .NET SDK's store).",
)
@click.option(
    "--repository-pfx",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Repository-signing key (PKCS#12, password in NUSEAL_REPOSITORY_PFX_PASSWORD; default: DATA/devpki).",
)
@click.option("--repository-pkcs11-module", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option(
    "--repository-pkcs11-token", default=None, help="PKCS#11 token label (PIN in NUSEAL_REPOSITORY_PKCS11_PIN)."
)
@click.option("--repository-pkcs11-key", default=None, help="PKCS#11 private key label.")
@click.option(
    "--repository-certificate-chain",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="PEM chain of the PKCS#11 key's certificate (leaf first; default: read from the token).",
)
@click.option("--timestamper", default=None, help="RFC 3161 TSA URL for repository signatures (default: the dev TSA).")
@click.option(
    "--repository-index-url",
    default=None,
    help="https URL written into repository signatures (default: BASE/v3/index.json with https).",
)
@click.option(
    "--revalidate-seconds",
    type=click.FloatRange(0, None),
    default=None,
    help="Period of the background revocation recheck (default 3600; 0: off).",
)
@click.option(
    "--advertise-repository-signatures",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="List RepositorySignatures/5.0.0 in the service index (auto: only on an https base URL).",
)
@click.option(
    "--list-repository-certificate",
    "listed_repository_certificates",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help=(
        "Another repository's signing certificate (PEM or DER) to list in RepositorySignatures/5.0.0 too, for packages "
        "it signed that this feed serves unchanged (repeatable; with --no-signing the resource lists only these)."
    ),
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="[NAME=]URL[#PATTERN,...]",
    help=(
        "Mirror an upstream V3 source (repeatable): ids this feed does not hold are answered from it, each version "
        "checked before it is served (docs/feed.md, Mirror). PATTERNs are packageSourceMapping id patterns."
    ),
)
@click.option(
    "--allow-insecure-upstream",
    is_flag=True,
    help="Accept plain-http --upstream URLs (as nuget.config's allowInsecureConnections; for tests).",
)
@ingest_options
def serve_command(
    *,
    data_dir: Path,
    host: str,
    port: int,
    database_url: str | None,
    storage_url: str | None,
    base_url: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    plain_http: bool,
    workers: int,
    max_package_size: int | None,
    access_log: bool,
    header_timeout: float,
    body_timeout: float,
    signing: bool,
    require_author_signature: bool,
    trust_bundle: str | None,
    timestamp_trust_bundle: str | None,
    repository_pfx: str | None,
    repository_pkcs11_module: str | None,
    repository_pkcs11_token: str | None,
    repository_pkcs11_key: str | None,
    repository_certificate_chain: str | None,
    timestamper: str | None,
    repository_index_url: str | None,
    revalidate_seconds: float | None,
    advertise_repository_signatures: str,
    listed_repository_certificates: tuple[str, ...],
    upstreams: tuple[str, ...],
    allow_insecure_upstream: bool,
    ingest: IngestConfig,
) -> None:
    """Serve a NuGet V3 feed: push with `nuget push`, install with `nuget install` / `dotnet restore`.

    The source URL is printed at start (BASE/v3/index.json). Create an API key first with
    `nuseal admin create-user NAME` and `nuseal admin create-api-key NAME`.
    """
    import uvicorn  # noqa: PLC0415 - keep `nuseal --help` fast
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    from nuseal.feed.compose import build_feed  # noqa: PLC0415
    from nuseal.feed.config import (  # noqa: PLC0415
        CONFIG_ENV_VAR,
        DEFAULT_MAX_PACKAGE_SIZE,
        DEFAULT_REVALIDATE_SECONDS,
        FeedConfig,
        SigningConfig,
        UpstreamConfig,
    )
    from nuseal.feed.mirror.upstream import UpstreamSource  # noqa: PLC0415
    from nuseal.feed.signing.signer import start_dev_responders  # noqa: PLC0415

    if plain_http and (tls_cert or tls_key):
        raise UsageError("--http serves plain HTTP: it cannot be combined with --tls-cert/--tls-key")
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together (the certificate chain and its private key, PEM)")
    if tls_cert and tls_key:
        from nuseal.feed.http.tls import check_server_files  # noqa: PLC0415

        check_server_files(tls_cert, tls_key)
    sources = [UpstreamSource.parse(text, allow_insecure_connections=allow_insecure_upstream) for text in upstreams]
    if len({s.name.lower() for s in sources}) != len(sources):
        raise UsageError("two --upstream sources have the same name; name them: --upstream NAME=URL")
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    scheme = "http" if plain_http else "https"
    config = FeedConfig(
        data_dir=data_dir,
        base_url=base_url or f"{scheme}://{shown_host}:{actual_port}",
        database_url=database_url,
        storage_url=storage_url,
        max_package_size=max_package_size or DEFAULT_MAX_PACKAGE_SIZE,
        signing=SigningConfig(
            enabled=signing,
            require_author_signature=require_author_signature,
            trust_bundle=_absolute(trust_bundle),
            timestamp_trust_bundle=_absolute(timestamp_trust_bundle),
            repository_pfx=_absolute(repository_pfx),
            repository_pkcs11_module=_absolute(repository_pkcs11_module),
            repository_pkcs11_token=repository_pkcs11_token,
            repository_pkcs11_key=repository_pkcs11_key,
            repository_certificate_chain=_absolute(repository_certificate_chain),
            timestamper_url=timestamper,
            repository_index_url=repository_index_url,
            revalidate_seconds=DEFAULT_REVALIDATE_SECONDS if revalidate_seconds is None else revalidate_seconds,
            advertise_repository_signatures=advertise_repository_signatures,
            listed_repository_certificates=tuple(str(Path(p).resolve()) for p in listed_repository_certificates),
        ),
        ingest=ingest,
        upstreams=tuple(UpstreamConfig(s.name, s.url, s.patterns, s.allow_insecure_connections) for s in sources),
    )
    # the dev PKI's TSA/OCSP/CRL live in this (parent) process, so every worker and restart finds them
    dev_responders = start_dev_responders(config)
    feed = build_feed(config, clock=feed_clock())  # the workers build theirs the same way (worker_app)
    feed.service.setup()
    feed.close()
    tls_files = None if plain_http else _tls_files(config, host, tls_cert, tls_key)
    os.environ[CONFIG_ENV_VAR] = config.to_json()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    click.echo(f"nuseal feed on {config.base_url} (listening on {shown_host}:{actual_port}, data in {config.data_dir})")
    click.echo(f"package source: {config.base_url}/v3/index.json")
    for s in sources:
        click.echo(f"mirroring upstream {s.name}: {s.url} (ids: {', '.join(s.patterns)})")
    if plain_http:
        click.echo(
            "warning: serving plain HTTP (--http): insecure; NuGet refuses http sources unless "
            "allowInsecureConnections is set (NU1302/NU1803); use it only behind a TLS-terminating reverse proxy "
            "or for tests",
            err=True,
        )
    if importlib.util.find_spec("httptools") is None or importlib.util.find_spec("uvloop") is None:
        click.echo(
            "note: httptools/uvloop are not installed; uvicorn falls back to pure-Python HTTP parsing, "
            "about 20x slower for downloads (pip install httptools uvloop)",
            err=True,
        )
    sys.stdout.flush()
    from nuseal.feed.http.protocol import BODY_TIMEOUT_ENV, HEAD_TIMEOUT_ENV, MAX_HEAD_BYTES  # noqa: PLC0415

    os.environ[HEAD_TIMEOUT_ENV] = str(header_timeout)
    os.environ[BODY_TIMEOUT_ENV] = str(body_timeout)

    uv_config = uvicorn.Config(
        "nuseal.cli.serve:worker_app",
        factory=True,
        workers=workers,
        access_log=access_log,
        log_level="info",
        timeout_keep_alive=30,
        lifespan="on",
        server_header=False,
        # request head size cap and head/body read timeouts (nuseal.feed.http.protocol); the h11 fallback only has
        # the cap
        http=_http_protocol(),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # TLS 1.2+ with forward-secret AEAD suites (nuseal.feed.http.tls), built in each worker; HTTP/1.1 only
        ssl_certfile=tls_files[0] if tls_files else None,
        ssl_keyfile=tls_files[1] if tls_files else None,
        ssl_context_factory=_tls_factory() if tls_files else None,
    )
    server = uvicorn.Server(uv_config)
    try:
        if workers > 1:
            Multiprocess(uv_config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    finally:
        if dev_responders is not None:
            dev_responders.stop()


def worker_app() -> FeedRouter:
    """uvicorn factory for each serving process: :func:`nuseal.feed.compose.app_from_env` with the command's feed
    clock (:func:`nuseal.cli._clock.feed_clock`: the wall clock, or ``NUSEAL_TEST_NOW`` in nuseal's tests)."""
    from nuseal.feed.compose import app_from_env  # noqa: PLC0415

    return app_from_env(clock=feed_clock())


if __name__ == "__main__":  # `python -m nuseal.cli.serve`, used by the feed tests: same errors as `nuseal serve`
    from nuseal.cli.main import main

    sys.exit(main(["serve", *sys.argv[1:]]))
