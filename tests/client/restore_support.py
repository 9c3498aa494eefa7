"""Helpers for the restore tests: packages with dependency groups, projects and nuget.config files on disk, and
a small NuGet V3 server on 127.0.0.1 (service index + flat container) whose answers a test can break on purpose
(HTTP 500 a number of times, a hang, basic auth, a package replaced after the lock file was written).

The server is a real ``http.server`` in a thread (a real socket, real HTTP); restore talks to it exactly as to a
feed. Tests that need the real feed use ``tests/feed/conftest.py``'s ``start_feed`` (``nuseal serve``).

For the differential tests against the real ``dotnet restore`` (``test_*_dotnet``): test graphs as :data:`Cases`
(ids prefixed with the case's name, so every graph lives on one feed: :func:`case_packages`), a feed holding them
(:func:`dotnet_feed`), one project per case in one solution restored by one dotnet run
(:func:`write_case_solution`, :func:`write_sln`, :func:`dotnet_restore`), dotnet's ``project.assets.json``
(:func:`dotnet_assets`) and nuseal's resolution of the same project (:func:`nuseal_graph`).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from feed.conftest import Feed, start_feed
from feed.dotnet_support import DOTNET_SH, DotnetCli, installed_sdk_home, sdk_installed
from nuseal.client.feedclient import FeedClient
from nuseal.client.project import load_project
from nuseal.client.resolve import PackageProvider, TargetGraph, resolve
from nuseal.client.settings import load_settings
from support.packages import make_package

__all__ = [
    "DOTNET",
    "NS",
    "Cases",
    "Pkg",
    "RESOLUTION_CASES",
    "StaticFeed",
    "VECTOR_REFERENCES",
    "case_packages",
    "dotnet_assets",
    "dotnet_available",
    "dotnet_feed",
    "dotnet_restore",
    "nuseal_graph",
    "package",
    "static_feed",
    "write_case_solution",
    "write_config",
    "write_project",
    "write_sln",
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


# ------------------------------------------------------------------------------------- graphs against dotnet
NS = "netstandard2.0"
#: A package of a test graph: (id, version, dependency groups as :func:`package` takes them, or ``None``).
Pkg = tuple[str, str, dict[str, Sequence[tuple[str, str]]] | None]
#: Test graphs: name -> (packages, the project's references (id, version or range)); every id, dependencies' too,
#: gets the prefix ``"<name>."`` so that all graphs live on one feed.
Cases = dict[str, tuple[list[Pkg], list[tuple[str, str]]]]

#: The graphs ``test_resolve_dotnet`` restores with dotnet and nuseal (``test_restore_dotnet`` takes its error cases):
#: name -> (packages, project references); ids are prefixed with "<name>." when pushed.
RESOLUTION_CASES: Cases = {
    "lowest": (
        [("A", "1.0.0", {NS: [("B", "1.0.5")]}), ("B", "1.0.0", None), ("B", "1.1.0", None), ("B", "2.0.0", None)],
        [("A", "1.0.0")],
    ),
    "downgrade": (
        [("A", "1.0.0", {NS: [("B", "2.0.0")]}), ("B", "1.0.0", None), ("B", "2.0.0", None)],
        [("A", "1.0.0"), ("B", "1.0.0")],
    ),
    "nearest": (
        [
            ("A", "1.0.0", {NS: [("B", "1.5.0"), ("C", "1.0.0")]}),
            ("C", "1.0.0", {NS: [("B", "1.0.0")]}),
            ("B", "1.0.0", None),
            ("B", "1.5.0", None),
        ],
        [("A", "1.0.0")],
    ),
    "cousins": (
        [
            ("A", "1.0.0", {NS: [("C", "1.0.0")]}),
            ("B", "1.0.0", {NS: [("C", "2.0.0")]}),
            ("C", "1.0.0", {NS: [("Old", "1.0.0")]}),
            ("C", "2.0.0", None),
            ("Old", "1.0.0", None),
        ],
        [("A", "1.0.0"), ("B", "1.0.0")],
    ),
    "conflict": (
        [
            ("A", "1.0.0", {NS: [("C", "[1.0.0]")]}),
            ("B", "1.0.0", {NS: [("C", "[2.0.0]")]}),
            ("C", "1.0.0", None),
            ("C", "2.0.0", None),
        ],
        [("A", "1.0.0"), ("B", "1.0.0")],
    ),
    "above": (
        [("A", "1.0.0", {NS: [("C", "[1.0.0, 2.0.0)")]}), ("C", "1.0.0", None), ("C", "3.0.0", None)],
        [("A", "1.0.0"), ("C", "3.0.0")],
    ),
    "missing": (
        [("B", "1.0.0", None), ("B", "3.0.0", None), ("P", "1.0.0-beta", None)],
        [("Nope", "1.0.0"), ("B", "[2.0.0, 3.0.0)"), ("P", "1.0.0")],
    ),
    "groups": (
        [
            ("A", "1.0.0", {"net45": [("X", "1.0.0")], NS: [("Y", "1.0.0")], "netcoreapp2.1": []}),
            ("D", "1.0.0", {"net45": [("X", "1.0.0")], NS: [("Y", "1.0.0")]}),
            ("X", "1.0.0", None),
            ("Y", "1.0.0", None),
        ],
        [("A", "1.0.0"), ("D", "1.0.0")],
    ),
    "floating": (
        [
            ("F", "1.0.0", None),
            ("F", "1.2.0", None),
            ("F", "2.0.0", None),
            ("S", "1.1.0-beta", None),
            ("S", "1.2.0", None),
        ],
        [("F", "1.*"), ("S", "1.0.0")],
    ),
}

#: The nuget.org vectors (``feed.conftest.VECTORS``) whose dependencies for netcoreapp3.1 are all among the vectors
#: (checked by the resolution itself), as ``test_restore_vectors`` and ``test_restore_dotnet`` reference them.
VECTOR_REFERENCES = [
    ("Newtonsoft.Json", "12.0.3"),
    ("RestSharp", "106.11.4"),
    ("System.Buffers", "4.4.0"),
    ("SQLitePCLRaw.core", "2.1.2"),
    ("System.Security.Principal.Windows", "5.0.0"),
    ("ILMerge", "3.0.41"),
    ("NUnitTestAdapter", "2.3.0"),
    ("DockPanelSuite", "3.1.0"),
    ("InTheHand.BluetoothLE", "4.0.35"),
]


def case_packages(cases: Cases) -> list[bytes]:
    """The .nupkg of every package of ``cases``, ids and dependency ids prefixed with the case's name."""
    return [
        package(
            f"{name}.{pid}",
            version,
            None if groups is None else {t: [(f"{name}.{d}", r) for d, r in deps] for t, deps in groups.items()},
        )
        for name, (pkgs, _refs) in cases.items()
        for pid, version, groups in pkgs
    ]


@contextmanager
def dotnet_feed(data_dir: Path, packages: Iterable[bytes]) -> Iterator[Feed]:
    """A real ``nuseal serve --no-signing`` on 127.0.0.1 (``start_feed``) holding ``packages`` (each push must be
    accepted, 201), stopped on exit. Skips when the .NET SDK is not installed (:func:`dotnet_available`)."""
    reason = dotnet_available()
    if reason:
        pytest.skip(reason)
    data_dir.mkdir(parents=True, exist_ok=True)
    feed = start_feed(data_dir)
    try:
        for data in packages:
            r = feed.push(data)
            assert r.status_code == 201, r.text
        yield feed
    finally:
        feed.stop()


_CSHARP = "{FAE04EC0-301F-11D3-BF4B-00C04F79EFBC}"


def write_sln(folder: Path, names: Sequence[str]) -> Path:
    """``folder/All.sln`` listing ``folder/<name>/<name>.csproj`` for each name (what ``dotnet new sln`` + ``sln
    add`` write): one ``dotnet restore`` of it restores them all."""
    lines = ["", "Microsoft Visual Studio Solution File, Format Version 12.00", "# Visual Studio 15"]
    guids = [f"{{00000000-0000-0000-0000-{i + 1:012d}}}" for i in range(len(names))]
    for name, guid in zip(names, guids, strict=True):
        lines += [f'Project("{_CSHARP}") = "{name}", "{name}\\{name}.csproj", "{guid}"', "EndProject"]
    lines += ["Global", "\tGlobalSection(SolutionConfigurationPlatforms) = preSolution"]
    lines += ["\t\tDebug|Any CPU = Debug|Any CPU", "\tEndGlobalSection"]
    lines += ["\tGlobalSection(ProjectConfigurationPlatforms) = postSolution"]
    for guid in guids:
        lines += [
            f"\t\t{guid}.Debug|Any CPU.ActiveCfg = Debug|Any CPU",
            f"\t\t{guid}.Debug|Any CPU.Build.0 = Debug|Any CPU",
        ]
    lines += ["\tEndGlobalSection", "EndGlobal", ""]
    path = folder / "All.sln"
    path.write_text("\r\n".join(lines))
    return path


def write_case_solution(root: Path, cases: Cases, sources: dict[str, str]) -> Path:
    """For each case ``root/<name>/<name>.csproj`` (netcoreapp3.1) referencing the case's prefixed references, a
    ``root/nuget.config`` listing ``sources`` (name -> URL or folder), and the solution ``root/All.sln``
    (returned) listing every project."""
    for name, (_pkgs, refs) in cases.items():
        write_project(root / name, [(f"{name}.{i}", v) for i, v in refs], name=name)
    write_config(root, sources)
    return write_sln(root, list(cases))


def dotnet_assets(project_dir: Path) -> dict[str, Any]:
    """dotnet's ``obj/project.assets.json`` of the project in ``project_dir`` (targets, logs)."""
    assets: dict[str, Any] = json.loads((project_dir / "obj" / "project.assets.json").read_text())
    return assets


def nuseal_graph(project: Path) -> TargetGraph:
    """nuseal's resolution of ``project``'s references for netcoreapp3.1, with the settings (sources) its folder
    gives, as ``nuseal restore`` resolves it: versions picked and NU diagnostics."""
    loaded = load_project(project, environ={})
    settings = load_settings(project.parent)

    async def run() -> TargetGraph:
        async with FeedClient(settings.enabled_sources) as client:
            return await resolve(
                loaded.targets[0].references,
                "netcoreapp3.1",
                PackageProvider(client, settings),
                project_name=loaded.name,
            )

    return asyncio.run(run())
