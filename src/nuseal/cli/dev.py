"""``nuseal dev``: the development PKI and its timestamp/OCSP/CRL responders (never for production)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nuseal.cli._exit import EXIT_OK
from nuseal.devpki import NAMES, DevPki, serve

__all__ = ["dev_group"]


@click.group("dev")
def dev_group() -> None:
    """Development tools: a throw-away PKI and a local timestamp authority."""


@dev_group.command("pki")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Loopback port baked into the URLs.")
def pki_command(directory: str, port: int) -> int:
    """Write a root CA, an intermediate, author / repository / TSA certificates (PEM, PFX) into DIRECTORY."""
    pki = DevPki.create(Path(directory), port=port)
    click.echo(f"dev PKI in {pki.directory} ({len(NAMES)} certificates; PFX password {pki.pfx_password!r})")
    click.echo(f"trust root: {pki.root_pem_path}")
    click.echo(f"author signing: {pki.pfx_path('author')}; repository signing: {pki.pfx_path('repository')}")
    click.echo(f"serve the TSA with: nuseal dev tsa --dir {pki.directory}  ({pki.tsa_url})")
    return EXIT_OK


@dev_group.command("tsa")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, exists=True))
def tsa_command(directory: str) -> int:
    """Serve the RFC 3161 timestamp authority, OCSP and CRLs of the PKI in DIR on 127.0.0.1 until Ctrl-C."""
    pki = DevPki.load(Path(directory))
    with serve(pki):
        click.echo(f"timestamp authority: {pki.tsa_url}  OCSP: {pki.base_url}/ocsp  (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return EXIT_OK
