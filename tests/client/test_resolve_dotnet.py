"""Differential tests of resolution against the real ``dotnet restore`` (.NET Core SDK 3.1, NuGet 5.4): graphs of
packages pushed to a real ``nuseal serve --no-signing`` on 127.0.0.1, one project per graph; the versions dotnet
picks (``obj/project.assets.json`` targets) and the NU codes it logs must be nuseal's.

Every case uses ids prefixed with its name so all graphs live on one feed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from feed.conftest import Feed, start_feed
from nuseal.client.feedclient import FeedClient
from nuseal.client.project import load_project
from nuseal.client.resolve import PackageProvider, resolve
from nuseal.client.settings import load_settings

from .restore_support import dotnet_available, dotnet_restore, package, write_config, write_project

pytestmark = [pytest.mark.dotnet, pytest.mark.slow]

NS = "netstandard2.0"
Pkg = tuple[str, str, dict[str, Sequence[tuple[str, str]]] | None]

#: name -> (packages, project references); ids are prefixed with "<name>." when pushed.
CASES: dict[str, tuple[list[Pkg], list[tuple[str, str]]]] = {
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


def _prefixed(name: str, text: str) -> str:
    return f"{name}.{text}"


def _prefix_groups(
    name: str, groups: dict[str, Sequence[tuple[str, str]]] | None
) -> dict[str, Sequence[tuple[str, str]]] | None:
    if groups is None:
        return None
    return {tfm: [(_prefixed(name, d), r) for d, r in deps] for tfm, deps in groups.items()}


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    reason = dotnet_available()
    if reason:
        pytest.skip(reason)
    f = start_feed(tmp_path_factory.mktemp("feed"))
    for name, (pkgs, _refs) in CASES.items():
        for pid, ver, groups in pkgs:
            r = f.push(package(_prefixed(name, pid), ver, _prefix_groups(name, groups)))
            assert r.status_code in (201, 202), r.text
    yield f
    f.stop()


def _dotnet_graph(project_dir: Path, tmp: Path) -> tuple[dict[str, str], set[str]]:
    run = dotnet_restore(project_dir / "App.csproj", tmp / "gpf-dotnet", tmp / "home")
    assets = json.loads((project_dir / "obj" / "project.assets.json").read_text())
    target = assets["targets"][".NETCoreApp,Version=v3.1"]
    picked = {key.split("/")[0]: key.split("/")[1] for key, v in target.items() if v.get("type") == "package"}
    codes = {log["code"] for log in assets.get("logs", [])}
    assert run.returncode == (1 if any(log["level"] == "Error" for log in assets.get("logs", [])) else 0), run.stdout
    return picked, codes


def _nuseal_graph(project_dir: Path) -> tuple[dict[str, str], set[str]]:
    project = load_project(project_dir / "App.csproj", environ={})
    settings = load_settings(project_dir)

    async def run() -> tuple[dict[str, str], set[str]]:
        async with FeedClient(settings.enabled_sources) as client:
            graph = await resolve(
                project.targets[0].references, "netcoreapp3.1", PackageProvider(client, settings), project_name="App"
            )
        return {p.id: p.version.normalized for p in graph.packages}, {d.code.value for d in graph.diagnostics}

    return asyncio.run(run())


@pytest.mark.parametrize("name", list(CASES))
def test_same_versions_and_codes_as_dotnet_restore(
    name: str, feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _pkgs, refs = CASES[name]
    project_dir = tmp_path / "App"
    write_project(project_dir, [(_prefixed(name, i), v) for i, v in refs])
    write_config(project_dir, {"feed": feed.source})
    theirs = _dotnet_graph(project_dir, tmp_path)
    ours = _nuseal_graph(project_dir)
    assert ours == theirs
