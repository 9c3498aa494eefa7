"""Helpers for the restore tests: packages with dependency groups, projects and nuget.config files on disk, and
a small NuGet V3 server on 127.0.0.1 (service index + flat container) whose answers a test can break on purpose
(HTTP 500 a number of times, a hang, basic auth, a package replaced after the lock file was written).

The server is a real ``http.server`` in a thread (a real socket, real HTTP); restore talks to it exactly as to a
feed. Tests that need the real feed use ``tests/feed/conftest.py``'s ``start_feed`` (``nuseal serve``).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from feed.conftest import make_package
from feed.dotnet_support import DOTNET_SH, DotnetCli, installed_sdk_home, sdk_installed

__all__ = [
    "DOTNET",
    "StaticFeed",
    "dotnet_available",
    "dotnet_restore",
    "package",
    "static_feed",
    "write_config",
    "write_project",
]


def package(
    package_id: str,
    version: str,
    groups: dict[str, Sequence[tuple[str, str]]] | None = None,
    *,
    flat: Sequence[tuple[str, str]] = (),
    files: dict[str, bytes] | None = None,
) -> bytes:
    """A .nupkg with dependency ``groups`` (target framework -> [(id, range)]; ``""`` = no targetFramework; an
    empty list is an empty group) or ``flat`` dependencies."""
    body = ""
    if groups is not None:
        for tfm, deps in groups.items():
            attr = f' targetFramework="{tfm}"' if tfm else ""
            inner = "".join(f'<dependency id="{d}" version="{r}" />' for d, r in deps)
            body += f"<group{attr}>{inner}</group>"
    body += "".join(f'<dependency id="{d}" version="{r}" />' for d, r in flat)
    extra = f"    <dependencies>{body}</dependencies>\n" if body else ""
    return make_package(package_id, version, extra_metadata=extra, files=files)


def write_project(
    folder: Path,
    references: Sequence[tuple[str, str]],
    *,
    framework: str = "netcoreapp3.1",
    name: str = "App",
    properties: str = "",
) -> Path:
    """An SDK-style project with ``PackageReference`` items (id, version)."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = "".join(f'    <PackageReference Include="{i}" Version="{v}" />\n' for i, v in references)
    path = folder / f"{name}.csproj"
    path.write_text(
        '<Project Sdk="Microsoft.NET.Sdk">\n'
        f"  <PropertyGroup>\n    <TargetFramework>{framework}</TargetFramework>\n{properties}  </PropertyGroup>\n"
        f"  <ItemGroup>\n{refs}  </ItemGroup>\n</Project>\n"
    )
    return path


def write_config(folder: Path, sources: dict[str, str], *, extra: str = "") -> Path:
    """A nuget.config that clears inherited sources and lists ``sources`` (name -> URL or folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    adds = "".join(f'    <add key="{k}" value="{v}" />\n' for k, v in sources.items())
    path = folder / "nuget.config"
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n  <packageSources>\n    <clear />\n{adds}'
        f"  </packageSources>\n{extra}</configuration>\n"
    )
    return path


@dataclass
class StaticFeed:
    """A V3 feed on loopback. ``packages``: (lower id, normalized lower version) -> .nupkg bytes; ``nuspecs``
    are derived from them. Faults: ``fail[path_suffix] = n`` answers 500 n times; ``hang`` holds matching requests
    for ``hang_seconds``; ``credentials`` = (user, password) requires basic auth."""

    base_url: str = ""
    packages: dict[tuple[str, str], bytes] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    hang_seconds: float = 30.0
    credentials: tuple[str, str] | None = None
    repository_signatures: bool = False
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def source(self) -> str:
        return f"{self.base_url}/v3/index.json"

    def add(self, data: bytes, package_id: str, version: str) -> None:
        self.packages[(package_id.lower(), version.lower())] = data

    def count(self, suffix: str) -> int:
        return sum(1 for r in self.requests if r.endswith(suffix))


def _nuspec_of(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = next(n for n in z.namelist() if "/" not in n and n.endswith(".nuspec"))
        return z.read(name)


@contextmanager
def static_feed() -> Iterator[StaticFeed]:
    """Start a :class:`StaticFeed` on 127.0.0.1 (port chosen by the OS); stopped on exit."""
    feed = StaticFeed()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with feed.lock:
                feed.requests.append(path)
                failing = next((k for k, v in feed.fail.items() if v > 0 and path.endswith(k)), None)
                if failing is not None:
                    feed.fail[failing] -= 1
            if any(path.endswith(h) for h in feed.hang):
                time.sleep(feed.hang_seconds)
                return
            if failing is not None:
                self._send(500, b"boom")
                return
            if feed.credentials is not None:
                expected = "Basic " + base64.b64encode(":".join(feed.credentials).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="feed"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if path == "/v3/index.json":
                resources = [{"@id": f"{feed.base_url}/flat/", "@type": "PackageBaseAddress/3.0.0"}]
                if feed.repository_signatures:
                    resources.append({"@id": f"{feed.base_url}/sigs.json", "@type": "RepositorySignatures/5.0.0"})
                body = json.dumps({"version": "3.0.0", "resources": resources}).encode()
                self._send(200, body)
                return
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "flat" and parts[2] == "index.json":
                versions = sorted(v for (i, v) in feed.packages if i == parts[1])
                if not versions:
                    self._send(404)
                    return
                self._send(200, json.dumps({"versions": versions}).encode())
                return
            if len(parts) == 4 and parts[0] == "flat":
                data = feed.packages.get((parts[1], parts[2]))
                if data is not None and parts[3] == f"{parts[1]}.{parts[2]}.nupkg":
                    self._send(200, data, "application/octet-stream")
                    return
                if data is not None and parts[3] == f"{parts[1]}.nuspec":
                    self._send(200, _nuspec_of(data), "application/xml")
                    return
            self._send(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    feed.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield feed
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------ dotnet
#: The script that runs the SDK (``dotnet.sh``).
DOTNET = DOTNET_SH
#: Where ``dotnet.sh setup`` installed the SDK, read when the tests are collected (before any test changes HOME).
SDK_HOME = installed_sdk_home()


def dotnet_restore(project: Path, gpf: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dotnet restore PROJECT`` (SDK 3.1, NuGet 5.4) into ``gpf``, isolated under ``home`` as
    :class:`feed.dotnet_support.DotnetCli` isolates a run (its own HOME, HTTP cache, and ``$DOTNET31_HOME`` linking
    the installed SDK, with a user NuGet.Config without sources): never a second SDK, never the user's settings."""
    cli = DotnetCli(home, installed=SDK_HOME)
    cli.packages = gpf
    return subprocess.run(
        ["bash", str(DOTNET), "restore", str(project), *args],
        env=cli.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def dotnet_available() -> str | None:
    """``None`` when the SDK is installed (``dotnet.sh setup``; CI: ``scripts/install-system-deps.sh``), else the
    reason. Tests reach only loopback, so they never install it themselves."""
    if sdk_installed(SDK_HOME):
        return None
    return f"the .NET Core 3.1 SDK is not installed in {SDK_HOME} (run {DOTNET} setup)"
