"""Differential tests of resolution against the real ``dotnet restore`` (.NET Core SDK 3.1, NuGet 5.4): graphs of
packages pushed to a real ``nuseal serve --no-signing`` on 127.0.0.1, one project per graph, all in one solution
restored by one dotnet run; the versions dotnet picks (each project's ``obj/project.assets.json`` targets) and the
NU codes it logs must be nuseal's.

Every case uses ids prefixed with its name so all graphs live on one feed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .restore_support import (
    RESOLUTION_CASES,
    case_packages,
    dotnet_assets,
    dotnet_feed,
    dotnet_restore,
    nuseal_graph,
    write_case_solution,
)

pytestmark = [pytest.mark.dotnet, pytest.mark.slow]

@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every case's project in one solution on the feed, restored by one ``dotnet restore``: (the solution's
    folder, dotnet's run). The feed keeps running for nuseal's resolution."""
    tmp = tmp_path_factory.mktemp("resolve")
    with dotnet_feed(tmp / "feed", case_packages(RESOLUTION_CASES)) as feed:
        root = tmp / "sln"
        sln = write_case_solution(root, RESOLUTION_CASES, {"feed": feed.source})
        yield root, dotnet_restore(sln, tmp / "gpf-dotnet", tmp / "home-dotnet")


def _dotnet_graph(project_dir: Path) -> tuple[dict[str, str], set[str]]:
    assets = dotnet_assets(project_dir)
    target = assets["targets"][".NETCoreApp,Version=v3.1"]
    picked = {key.split("/")[0]: key.split("/")[1] for key, v in target.items() if v.get("type") == "package"}
    return picked, {log["code"] for log in assets.get("logs", [])}


def _has_errors(project_dir: Path) -> bool:
    return any(log["level"] == "Error" for log in dotnet_assets(project_dir).get("logs", []))


def _nuseal_graph(project: Path) -> tuple[dict[str, str], set[str]]:
    graph = nuseal_graph(project)
    return {p.id: p.version.normalized for p in graph.packages}, {d.code.value for d in graph.diagnostics}


@pytest.mark.parametrize("name", list(RESOLUTION_CASES))
def test_same_versions_and_codes_as_dotnet_restore(
    name: str,
    restored: tuple[Path, subprocess.CompletedProcess[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root, run = restored
    # dotnet fails the solution when one of its projects logs an error (this one's errors are compared below)
    assert run.returncode == (1 if any(_has_errors(root / case) for case in RESOLUTION_CASES) else 0), run.stdout
    theirs = _dotnet_graph(root / name)
    ours = _nuseal_graph(root / name / f"{name}.csproj")
    assert ours == theirs
