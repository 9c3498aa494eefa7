"""The real dotnet CLI (.NET Core 3.1 SDK, NuGet 5.4) against `nuseal serve` on loopback (issue 18 item 2).

What a dotnet user does with a feed: ``dotnet nuget push`` (accepted, duplicate 409, refused with the feed's
reason in the error line, which comes from the HTTP reason phrase: docs/adr/0006-reason-phrase.md), ``dotnet nuget
delete`` (unlist), ``dotnet restore`` of netcoreapp3.1 / netstandard2.1 projects with floating and exact versions
and a dependency between two packages, ``RestorePackagesWithLockFile`` and ``--locked-mode`` (NU1004, NU1403), on
a plain feed (``--no-signing``) and on a signing feed (packages stored repository-signed).

netstandard2.0 projects reference the NETStandard.Library package, which lives on nuget.org; with loopback only,
the netstandard project here targets netstandard2.1 (its reference assemblies ship with the SDK).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from .conftest import Feed, make_package, start_feed
from .dotnet_support import DotnetCli, content_hash, dotnet_cli, write_project

pytestmark = [pytest.mark.dotnet, pytest.mark.slow]

#: .NET's ``HttpResponseMessage.EnsureSuccessStatusCode`` message, as NuGet prints it for a refused push/delete.
ERROR_LINE = re.compile(r"error: Response status code does not indicate success: (\d{3}) \((.*)\)\.$", re.M)


@pytest.fixture(scope="module")
def plain_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    feed = start_feed(tmp_path_factory.mktemp("plain"))
    yield feed
    feed.stop()


@pytest.fixture(scope="module")
def signing_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """``nuseal serve --signing`` on its embedded defaults (a dev PKI it makes; every package repository-signed)."""
    feed = start_feed(tmp_path_factory.mktemp("signing"), signing=True)
    yield feed
    feed.stop()


@pytest.fixture
def dotnet(tmp_path: Path) -> DotnetCli:
    return dotnet_cli(tmp_path / "dotnet")


def served(feed: Feed, package_id: str, version: str) -> bytes:
    low = package_id.lower()
    with feed.client() as c:
        r = c.get(f"/v3/flatcontainer/{low}/{version}/{low}.{version}.nupkg")
    assert r.status_code == 200, r.text
    return r.content


def push(dotnet: DotnetCli, feed: Feed, data: bytes, name: str, key: str = "alice", *, check: bool = True) -> str:
    package = dotnet.root / name
    package.write_bytes(data)
    proc = dotnet.run("nuget", "push", str(package), "-s", feed.source, "-k", feed.keys.get(key, key), check=check)
    return proc.stdout


def refusal(output: str) -> tuple[int, str]:
    """(status, reason) of the error line, after checking the warning line says the same."""
    m = ERROR_LINE.search(output)
    assert m, output
    assert f"warn : {m.group(2)}" in output  # X-NuGet-Warning, printed as NuGet's warning
    return int(m.group(1)), m.group(2)


def with_dependency(package_id: str, version: str, dependency: str, range_: str) -> bytes:
    group = (
        '    <dependencies>\n      <group targetFramework=".NETStandard2.0">\n'
        f'        <dependency id="{dependency}" version="{range_}" exclude="Build,Analyzers" />\n'
        "      </group>\n    </dependencies>\n"
    )
    return make_package(package_id, version, extra_metadata=group)


def lock_entries(project: Path, framework: str) -> dict[str, dict[str, object]]:
    doc = json.loads((project.parent / "packages.lock.json").read_text())
    assert doc["version"] == 1
    return doc["dependencies"][framework]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ push / delete
def test_push_to_a_plain_feed(plain_feed: Feed, dotnet: DotnetCli) -> None:
    pkg = make_package("Push.Plain", "1.0.0")
    assert "Your package was pushed." in push(dotnet, plain_feed, pkg, "Push.Plain.1.0.0.nupkg")
    assert served(plain_feed, "Push.Plain", "1.0.0") == pkg  # stored as pushed

    again = dotnet.run("nuget", "push", str(dotnet.root / "Push.Plain.1.0.0.nupkg"), "-s", plain_feed.source,
                       "-k", plain_feed.keys["alice"], check=False)  # fmt: skip
    assert again.returncode != 0
    assert refusal(again.stdout) == (
        409,
        "a package with id 'Push.Plain' and version '1.0.0' already exists and cannot be modified",
    )

    # bob may not push a version of alice's id: the reason is in the error line a CI log shows
    stolen = push(dotnet, plain_feed, make_package("Push.Plain", "2.0.0"), "Push.Plain.2.0.0.nupkg", "bob", check=False)
    status, reason = refusal(stolen)
    assert status == 403
    assert "Push.Plain" in reason and "owner" in reason, reason

    bad_key = push(dotnet, plain_feed, make_package("Push.Other", "1.0.0"), "Push.Other.1.0.0.nupkg", "no-such-key",
                   check=False)  # fmt: skip
    assert refusal(bad_key) == (403, "the API key is invalid, revoked or expired")


def test_push_to_a_signing_feed_and_restore_its_signed_package(signing_feed: Feed, dotnet: DotnetCli) -> None:
    pkg = make_package("Push.Signed", "1.0.0")
    assert "Your package was pushed." in push(dotnet, signing_feed, pkg, "Push.Signed.1.0.0.nupkg")
    signed = served(signing_feed, "Push.Signed", "1.0.0")
    assert signed != pkg and ".signature.p7s" in zipfile.ZipFile(BytesIO(signed)).namelist()

    duplicate = push(dotnet, signing_feed, pkg, "Push.Signed.1.0.0.nupkg", check=False)
    assert refusal(duplicate)[0] == 409

    # a signature file that is not a signature: refused, and the error line says why
    broken = make_package("Push.Broken", "1.0.0", files={".signature.p7s": b"not a PKCS #7 signature"})
    status, reason = refusal(push(dotnet, signing_feed, broken, "Push.Broken.1.0.0.nupkg", check=False))
    assert status == 400
    assert "signature" in reason, reason

    # restore puts the feed's repository-signed bytes in the global-packages folder
    project = write_project(dotnet.root / "signed-app", {"Push.Signed": "1.0.0"}, sources=[signing_feed.source])
    dotnet.run("restore", str(project))
    installed = dotnet.installed_package("Push.Signed", "1.0.0")
    assert installed.read_bytes() == signed
    assert installed.with_name("push.signed.1.0.0.nupkg.sha512").read_text() == content_hash(signed)


def test_delete_unlists_and_the_version_stays_restorable(plain_feed: Feed, dotnet: DotnetCli) -> None:
    for version in ("1.0.0", "1.1.0"):
        push(dotnet, plain_feed, make_package("Gone.Lib", version), f"Gone.Lib.{version}.nupkg")
    out = dotnet.run("nuget", "delete", "Gone.Lib", "1.1.0", "-s", plain_feed.source, "-k", plain_feed.keys["alice"],
                     "--non-interactive").stdout  # fmt: skip
    assert "Gone.Lib 1.1.0 was deleted successfully." in out

    with plain_feed.client() as c:
        hits = c.get("/v3/search", params={"q": "Gone.Lib", "prerelease": "true"}).json()["data"]
        assert [v["version"] for v in hits[0]["versions"]] == ["1.0.0"]
        assert c.get("/v3/registration-semver2/gone.lib/1.1.0.json").json()["listed"] is False

    # bob may not unlist alice's version: the reason is in the error line
    refused = dotnet.run("nuget", "delete", "Gone.Lib", "1.0.0", "-s", plain_feed.source, "-k", plain_feed.keys["bob"],
                         "--non-interactive", check=False)  # fmt: skip
    assert refused.returncode != 0
    status, reason = refusal(refused.stdout)
    assert status == 403 and "Gone.Lib" in reason, reason

    # unlisted, still restorable at its exact version (as on nuget.org): the lock of a project that has it works
    project = write_project(dotnet.root / "pinned", {"Gone.Lib": "[1.1.0]"}, sources=[plain_feed.source])
    dotnet.run("restore", str(project))
    assert dotnet.installed_package("Gone.Lib", "1.1.0").read_bytes() == served(plain_feed, "Gone.Lib", "1.1.0")


# ------------------------------------------------------------------------------------------------ restore
def test_restore_floating_exact_and_a_dependency_with_a_lock_file(plain_feed: Feed, dotnet: DotnetCli) -> None:
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        push(dotnet, plain_feed, make_package("Graph.Base", version), f"Graph.Base.{version}.nupkg")
    push(dotnet, plain_feed, with_dependency("Graph.Top", "1.0.0", "Graph.Base", "1.0.0"), "Graph.Top.1.0.0.nupkg")
    base = {v: served(plain_feed, "Graph.Base", v) for v in ("1.0.0", "1.1.0", "2.0.0")}
    top = served(plain_feed, "Graph.Top", "1.0.0")

    # floating: the highest 1.x
    floating = write_project(dotnet.root / "floating", {"Graph.Base": "1.*"}, sources=[plain_feed.source],
                             lock_file=True)  # fmt: skip
    dotnet.run("restore", str(floating))
    assert lock_entries(floating, ".NETCoreApp,Version=v3.1") == {
        "Graph.Base": {
            "type": "Direct",
            "requested": "[1.*, )",
            "resolved": "1.1.0",
            "contentHash": content_hash(base["1.1.0"]),
        }
    }
    assert dotnet.installed_package("Graph.Base", "1.1.0").read_bytes() == base["1.1.0"]

    # exact version of a package with a dependency: the dependency at the lowest version its range allows
    framework = ".NETStandard,Version=v2.1"
    app = write_project(dotnet.root / "app", {"Graph.Top": "[1.0.0]"}, sources=[plain_feed.source],
                        framework="netstandard2.1", lock_file=True)  # fmt: skip
    dotnet.run("restore", str(app))
    assert lock_entries(app, framework) == {
        "Graph.Top": {
            "type": "Direct",
            "requested": "[1.0.0, 1.0.0]",
            "resolved": "1.0.0",
            "contentHash": content_hash(top),
            "dependencies": {"Graph.Base": "1.0.0"},
        },
        "Graph.Base": {"type": "Transitive", "resolved": "1.0.0", "contentHash": content_hash(base["1.0.0"])},
    }
    lock = (app.parent / "packages.lock.json").read_bytes()

    # locked mode: the lock file holds, from a cold global-packages folder too
    dotnet.fresh_packages("cold")
    dotnet.run("restore", str(app), "--locked-mode")
    assert dotnet.installed_package("Graph.Base", "1.0.0").read_bytes() == base["1.0.0"]
    assert (app.parent / "packages.lock.json").read_bytes() == lock

    # the project asks for more than the lock file has: NU1004, the lock file untouched
    write_project(app.parent, {"Graph.Top": "[1.0.0]", "Graph.Base": "2.0.0"}, sources=[plain_feed.source],
                  framework="netstandard2.1", lock_file=True)  # fmt: skip
    changed = dotnet.run("restore", str(app), "--locked-mode", check=False)
    assert changed.returncode != 0
    assert "error NU1004" in changed.stdout, changed.stdout
    assert (app.parent / "packages.lock.json").read_bytes() == lock

    # without locked mode the lock file follows the project: Graph.Base is now direct at 2.0.0
    dotnet.run("restore", str(app))
    entries = lock_entries(app, framework)
    assert entries["Graph.Base"] == {
        "type": "Direct",
        "requested": "[2.0.0, )",
        "resolved": "2.0.0",
        "contentHash": content_hash(base["2.0.0"]),
    }


def test_locked_mode_refuses_a_package_whose_content_changed(
    plain_feed: Feed, signing_feed: Feed, dotnet: DotnetCli
) -> None:
    """The same id and version served with other content by another feed: NU1403."""
    push(dotnet, plain_feed, make_package("Hash.Lib", "1.0.0"), "first.nupkg")
    other = make_package("Hash.Lib", "1.0.0", files={"content/extra.txt": b"not the package the lock file saw\n"})
    push(dotnet, signing_feed, other, "second.nupkg")
    app = write_project(dotnet.root / "app", {"Hash.Lib": "1.0.0"}, sources=[plain_feed.source], lock_file=True)
    dotnet.run("restore", str(app))
    lock = (app.parent / "packages.lock.json").read_bytes()

    write_project(app.parent, {"Hash.Lib": "1.0.0"}, sources=[signing_feed.source], lock_file=True)
    packages = dotnet.fresh_packages("cold")
    refused = dotnet.run("restore", str(app), "--locked-mode", check=False)
    assert refused.returncode != 0
    assert "error NU1403" in refused.stdout and "Hash.Lib" in refused.stdout, refused.stdout
    assert (app.parent / "packages.lock.json").read_bytes() == lock
    locked = lock_entries(app, ".NETCoreApp,Version=v3.1")["Hash.Lib"]["contentHash"]
    assert locked == content_hash(served(plain_feed, "Hash.Lib", "1.0.0"))
    # NuGet compares after extracting: the other package is in the global-packages folder, its hash not the lock's
    installed = (packages / "hash.lib" / "1.0.0" / "hash.lib.1.0.0.nupkg").read_bytes()
    assert installed == served(signing_feed, "Hash.Lib", "1.0.0")
    assert content_hash(installed) != locked
