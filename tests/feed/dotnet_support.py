"""The real dotnet CLI (.NET Core 3.1 SDK, NuGet 5.4) for the tests: an isolated runner and a project writer.

``../shared/tools/dotnet-sdk/dotnet.sh`` runs the SDK installed once by ``dotnet.sh setup`` (CI:
``scripts/install-system-deps.sh``) under ``$DOTNET31_HOME`` (default ``~/.cache/dotnet-sdk31``). The script sets
``DOTNET_CLI_HOME`` to ``$DOTNET31_HOME/cli-home``, and NuGet in the dotnet CLI reads its user ``NuGet.Config``
from there, so :class:`DotnetCli` gives each test its own ``$DOTNET31_HOME``: a directory whose ``sdk`` and ``ssl``
are links to the installed ones, with its own ``cli-home`` (a user ``NuGet.Config`` without nuget.org), and its
own ``HOME``, ``NUGET_PACKAGES`` (global-packages folder) and ``NUGET_HTTP_CACHE_PATH``. Nothing a test does is
seen by another test or by the user's own dotnet.

:func:`write_project` writes an SDK-style project and a ``NuGet.Config`` naming only the given sources.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .conftest import VECTORS, _require

#: The script that runs the SDK (``shared/`` sits beside the repository, in CI too).
DOTNET_SH = VECTORS.parents[1] / "tools" / "dotnet-sdk" / "dotnet.sh"
#: Longest run of one dotnet command (seconds).
DOTNET_TIMEOUT = 180.0

_EMPTY_CONFIG = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    "<configuration><packageSources><clear /></packageSources></configuration>\n"
)


def installed_sdk_home() -> Path:
    """Where ``dotnet.sh setup`` installed the SDK (its own default, from the test process's environment)."""
    if os.environ.get("DOTNET31_HOME"):
        return Path(os.environ["DOTNET31_HOME"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "dotnet-sdk31"


def sdk_installed(home: Path | None = None) -> bool:
    home = home or installed_sdk_home()
    return (
        DOTNET_SH.is_file()
        and os.access(home / "sdk" / "dotnet", os.X_OK)
        and (home / "ssl" / "libssl.so.1.1").is_file()
    )


@dataclass
class DotnetCli:
    """``dotnet`` through ``dotnet.sh`` with everything it writes under ``root``."""

    root: Path
    #: The installed SDK to link (default :func:`installed_sdk_home`, from the environment when the runner is made;
    #: pass it when a test has changed ``HOME`` by then).
    installed: Path | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.sdk_home = self.root / "dotnet31"
        #: The global-packages folder (``NUGET_PACKAGES``); point it elsewhere for a cold one.
        self.packages = self.root / "global-packages"
        self.http_cache = self.root / "http-cache"
        for folder in (self.home, self.sdk_home / "cli-home" / ".nuget" / "NuGet", self.packages, self.http_cache):
            folder.mkdir(parents=True, exist_ok=True)
        installed = self.installed or installed_sdk_home()
        for name in ("sdk", "ssl"):
            link = self.sdk_home / name
            if not link.exists():
                link.symlink_to(installed / name, target_is_directory=True)
        (self.sdk_home / "cli-home" / ".nuget" / "NuGet" / "NuGet.Config").write_text(_EMPTY_CONFIG)

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "DOTNET31_HOME": str(self.sdk_home),
            "NUGET_PACKAGES": str(self.packages),
            "NUGET_HTTP_CACHE_PATH": str(self.http_cache),
            "MSBUILDDISABLENODEREUSE": "1",  # no MSBuild node outliving the command
            "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
        }

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True, timeout: float = DOTNET_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``dotnet ARGS``; stdout and stderr together in ``.stdout`` (dotnet writes errors to either)."""
        proc = subprocess.run(
            ["bash", str(DOTNET_SH), *args],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
            timeout=timeout,
            cwd=cwd or self.root,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"dotnet {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")
        return proc

    def fresh_packages(self, name: str) -> Path:
        """Switch to a new, empty global-packages folder and HTTP cache (a cold restore)."""
        self.packages = self.root / name
        self.http_cache = self.root / f"{name}-http-cache"
        self.packages.mkdir(parents=True)
        self.http_cache.mkdir(parents=True)
        return self.packages

    def installed_package(self, package_id: str, version: str) -> Path:
        """The ``.nupkg`` restore put in the global-packages folder (lower-case id and normalized version)."""
        low = package_id.lower()
        return self.packages / low / version.lower() / f"{low}.{version.lower()}.nupkg"


def dotnet_cli(root: Path) -> DotnetCli:
    """A :class:`DotnetCli` under ``root``; skips (fails in CI) when the SDK is not installed."""
    if not sdk_installed():
        _require("the .NET Core 3.1 SDK is not installed (../shared/tools/dotnet-sdk/dotnet.sh setup)")
    return DotnetCli(root)


def write_project(
    folder: Path,
    references: dict[str, str],
    *,
    sources: list[str],
    framework: str = "netcoreapp3.1",
    lock_file: bool = False,
    name: str = "App",
    properties: dict[str, str] | None = None,
) -> Path:
    """An SDK-style project ``folder/<name>.csproj`` with a ``PackageReference`` per ``references`` item (id to
    version or range, as written in a project), and ``folder/NuGet.Config`` with only ``sources`` (``<clear/>``
    first). ``lock_file`` sets ``RestorePackagesWithLockFile``. Rewriting changes the project in place."""
    folder.mkdir(parents=True, exist_ok=True)
    props = {"TargetFramework": framework, **(properties or {})}
    if lock_file:
        props["RestorePackagesWithLockFile"] = "true"
    lines = ['<Project Sdk="Microsoft.NET.Sdk">', "  <PropertyGroup>"]
    lines += [f"    <{key}>{value}</{key}>" for key, value in props.items()]
    lines += ["  </PropertyGroup>", "  <ItemGroup>"]
    lines += [
        f"    <PackageReference Include={quoteattr(pid)} Version={quoteattr(version)} />"
        for pid, version in references.items()
    ]
    lines += ["  </ItemGroup>", "</Project>", ""]
    project = folder / f"{name}.csproj"
    project.write_text("\n".join(lines))
    config = ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>", "  <packageSources>", "    <clear />"]
    config += [f"    <add key={quoteattr(f'feed{i}')} value={quoteattr(url)} />" for i, url in enumerate(sources)]
    config += ["  </packageSources>", "</configuration>", ""]
    (folder / "NuGet.Config").write_text("\n".join(config))
    return project


def content_hash(data: bytes) -> str:
    """NuGet's ``contentHash`` of a package file: base64 of its SHA-512 (``packages.lock.json``, ``.nupkg.sha512``)."""
    return base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
