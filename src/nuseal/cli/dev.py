"""``nuseal dev``: the development PKI and its timestamp/OCSP/CRL responders (never for production)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import ssl
import subprocess
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


#: Where Debian/Ubuntu's update-ca-certificates picks up local roots (used only with ``--apply --system``).
SYSTEM_ANCHOR_DIR = Path("/usr/local/share/ca-certificates")
_BUNDLE_NAME = "trust-bundle.pem"


def _system_bundle() -> Path | None:
    """The system's PEM root bundle as OpenSSL finds it (``SSL_CERT_FILE`` is ignored: it may be our own bundle)."""
    paths = ssl.get_default_verify_paths()
    for cand in (paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if cand and Path(cand).is_file():
            return Path(cand).resolve()
    return None


def _trust_steps(root: Path, bundle: Path, source: str, system: Path | None) -> list[str]:
    base = f"{system} + " if system else ""
    return [
        "# 1. dotnet CLI on Linux (.NET reads OpenSSL's root store; SSL_CERT_FILE replaces it, so the bundle keeps",
        "#    the system roots too):",
        f"cat {system or '/etc/ssl/certs/ca-certificates.crt'} {root} > {bundle}   # {base}the dev root",
        f"export SSL_CERT_FILE={bundle}",
        "#    or, machine-wide (root): ",
        f"#    sudo cp {root} {SYSTEM_ANCHOR_DIR}/nuseal-dev-root.crt && sudo update-ca-certificates",
        "# 2. NuGet.exe on Mono (Mono's own store, per user):",
        f"cert-sync --user {root}",
        "# 3. nuget.config (no allowInsecureConnections needed: the source is https):",
        "#    <packageSources>",
        f'#      <add key="nuseal" value="{source}" protocolVersion="3" />',
        "#    </packageSources>",
    ]


@dev_group.command("trust")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="NUSEAL_FEED_DATA", help="The feed's data folder (dev PKI in DATA/devpki; default .nuseal/feed).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A dev PKI folder (instead of --data).")
@click.option("--source", default="https://127.0.0.1:5000/v3/index.json", show_default=True,
              help="The feed's service index URL, for the nuget.config snippet.")
@click.option("--apply", is_flag=True,
              help="Perform the per-user steps: write DIR/trust-bundle.pem and import the root into Mono's user store.")
@click.option("--system", "system_store", is_flag=True,
              help="With --apply: also add the root to the system store (update-ca-certificates; needs root).")
def trust_command(data_dir: Path | None, directory: Path | None, source: str, apply: bool, system_store: bool) -> int:
    """Print (and with --apply perform) the steps that make this machine's NuGet clients trust the dev root.

    Without --apply nothing is changed. The dev root is what `nuseal serve` chains its default TLS certificate to;
    trust it only on a development machine (its key is on disk, unencrypted).
    """
    from nuseal.cli.serve import DEFAULT_DATA_DIR  # noqa: PLC0415

    if system_store and not apply:
        raise UsageError("--system changes the system trust store only together with --apply")
    folder = directory if directory is not None else (data_dir or Path(DEFAULT_DATA_DIR)) / "devpki"
    pki = DevPki.load(folder)
    root = pki.root_pem_path.resolve()
    bundle = pki.directory.resolve() / _BUNDLE_NAME
    system = _system_bundle()
    if not apply:
        click.echo(f"# dev root: {root}  (nothing changed; --apply performs steps 1 and 2 for this user)")
        for line in _trust_steps(root, bundle, source, system):
            click.echo(line)
        return EXIT_OK
    parts = [system.read_bytes().rstrip(b"\n") + b"\n"] if system else []
    bundle.write_bytes(b"".join([*parts, root.read_bytes()]))
    click.echo(f"wrote {bundle} ({'the system roots + ' if system else ''}the dev root)")
    click.echo(f"dotnet: export SSL_CERT_FILE={bundle}")
    cert_sync = shutil.which("cert-sync")
    if cert_sync is None:
        click.echo("Mono: cert-sync not found (install mono-devel); skipped", err=True)
    else:
        cmd = [cert_sync, "--quiet", "--user", str(root)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - our own paths
        if proc.returncode != 0:
            raise UsageError(f"cert-sync --user failed: {(proc.stderr or proc.stdout).strip()}")
        click.echo(f"Mono: the dev root is in {os.environ.get('HOME', '~')}/.config/.mono (user store)")
    if system_store:
        try:
            SYSTEM_ANCHOR_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root, SYSTEM_ANCHOR_DIR / "nuseal-dev-root.crt")
        except OSError as exc:
            raise UsageError(f"cannot write {SYSTEM_ANCHOR_DIR} ({exc.strerror or exc}); run as root") from exc
        update = shutil.which("update-ca-certificates") or "/usr/sbin/update-ca-certificates"
        proc = subprocess.run([update], capture_output=True, text=True, check=False)  # noqa: S603 - a fixed command
        if proc.returncode != 0:
            raise UsageError(f"update-ca-certificates failed: {(proc.stderr or proc.stdout).strip()}")
        click.echo("system store: the dev root was added (update-ca-certificates)")
    click.echo("nuget.config:")
    click.echo(f'  <add key="nuseal" value="{source}" protocolVersion="3" />')
    return EXIT_OK
