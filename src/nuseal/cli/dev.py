"""``nuseal dev``: the development PKI and its timestamp/OCSP/CRL responders (never for production)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from nuseal.cli._exit import EXIT_OK
from nuseal.devpki import DEFAULT_HOST, NAMES, DevPki, serve
from nuseal.errors import UsageError

__all__ = ["dev_group"]


@click.group("dev")
def dev_group() -> None:
    """Development tools: a throw-away PKI and a local timestamp authority."""


@dev_group.command("pki")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port baked into the URLs (default: a free one, chosen now).")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="IPv4 loopback address (127.0.0.0/8) baked into the URLs and served by `nuseal dev tsa`.")
def pki_command(directory: str, port: int, host: str) -> int:
    """Write a root CA, an intermediate, author / repository / TSA certificates (PEM, PFX) into DIRECTORY."""
    pki = DevPki.create(Path(directory), host=host, port=port)
    click.echo(f"dev PKI in {pki.directory} ({len(NAMES)} certificates; PFX password {pki.pfx_password!r})")
    click.echo(f"trust root: {pki.root_pem_path}")
    click.echo(f"author signing: {pki.pfx_path('author')}; repository signing: {pki.pfx_path('repository')}")
    click.echo(f"serve the TSA, OCSP and CRLs with: nuseal dev tsa --dir {pki.directory}  ({pki.tsa_url})")
    return EXIT_OK


@dev_group.command("tsa")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Listen here instead of the port baked into the certificates (their OCSP/CRL URLs then miss).")
def tsa_command(directory: str, port: int | None) -> int:
    """Serve the RFC 3161 timestamp authority, OCSP and CRLs of the PKI in DIR on its loopback host until Ctrl-C."""
    pki = DevPki.load(Path(directory))
    if port is not None and port != pki.port:
        click.echo(f"warning: the certificates name port {pki.port} for OCSP and CRLs; serving on {port}", err=True)
        pki = dataclasses.replace(pki, port=port)
    try:
        server = serve(pki)
    except OSError as exc:
        raise UsageError(f"cannot listen on {pki.host}:{pki.port}: {exc.strerror or exc}") from exc
    with server:
        click.echo(f"timestamp authority: {pki.tsa_url}  OCSP: {pki.ocsp_url}  CRL: {pki.crl_url}  (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return EXIT_OK
