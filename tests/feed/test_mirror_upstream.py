"""The mirror's upstream client (nuseal.feed.mirror.upstream) against a real upstream on loopback: a second
``nuseal serve --no-signing`` holding the real nuget.org vectors (upstream_support), behind a proxy that counts
requests and breaks connections. Discovery, version lists, registrations (listed, published), RepositorySignatures,
search; 50 concurrent first requests -> one upstream download, identical bytes; a download cut mid-body or
cancelled by every caller leaves no file and the next call succeeds; metadata TTL with an injected clock and
stale answers while the upstream is down; an uncached id with the upstream down -> an error naming it; source
mapping (most specific pattern wins) and the local-ids-win hook."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.errors import ConfigError
from nuseal.feed.mirror.upstream import (
    FetchedPackage,
    UpstreamClient,
    UpstreamDocumentError,
    UpstreamPackageTooLargeError,
    Upstreams,
    UpstreamSource,
    UpstreamUnavailableError,
)
from nuseal.package.version import NuGetVersion

from . import upstream_support
from .conftest import make_package, start_feed
from .upstream_support import (
    NugetOrgUpstream,
    UpstreamProxy,
    nupkg_path,
    proxy_fixture,  # noqa: F401 - the proxy fixture
    upstream_fixture,  # noqa: F401 - the upstream fixture
)

T = TypeVar("T")
V = NuGetVersion.parse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(proxy: UpstreamProxy, name: str = "test", *patterns: str) -> UpstreamSource:
    return UpstreamSource(name, proxy.source, patterns or ("*",), allow_insecure_connections=True)


def run(make: Callable[[UpstreamClient], Awaitable[T]], client_source: UpstreamSource, work: Path, **kw: object) -> T:
    async def main() -> T:
        async with UpstreamClient(client_source, work_dir=work, **kw) as client:  # type: ignore[arg-type]
            return await make(client)

    return asyncio.run(main())


def sha512_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha512(data).digest()).decode()


# ------------------------------------------------------------------------------------------------ discovery
def test_discovery_version_list_registration_and_search(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    async def go(client: UpstreamClient) -> None:
        res = await client.resources()
        assert res.package_base_address == f"{proxy.base_url}/v3/flatcontainer/"
        assert res.registrations_base_url == f"{proxy.base_url}/v3/registration-semver2/"
        assert res.search_query_service == f"{proxy.base_url}/v3/search"
        assert await client.versions("NEWTONSOFT.JSON") == (V("12.0.3"),)
        assert await client.versions("No.Such.Id") == ()
        leaves = await client.registration("System.Memory")
        assert [leaf.version for leaf in leaves] == [V("4.5.3")]
        leaf = await client.registration_leaf("system.memory", V("4.5.3"))
        assert leaf is not None and leaf.listed and leaf.id == "System.Memory"
        assert leaf.published is not None and leaf.published.tzinfo is not None
        assert leaf.package_content == f"{proxy.base_url}{nupkg_path('system.memory', '4.5.3')}"
        assert await client.registration_leaf("system.memory", V("9.9.9")) is None
        assert await client.registration("No.Such.Id") == ()
        hits = await client.search("restsharp")
        assert [h["id"] for h in hits["data"]] == ["RestSharp"]

    run(go, source(proxy), tmp_path / "work")
    assert proxy.count(r"^/v3/index\.json$") == 1  # discovered once, then cached


def test_repository_signatures_list_nuget_orgs_certificates(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    async def go(client: UpstreamClient) -> None:
        doc = await client.repository_signatures()
        assert doc is not None
        expected = {upstream_support.sha256_fingerprint(c) for c in upstream.certificates}
        assert len(expected) == 2  # nuget.org's 2018 and 2021 repository certificates
        assert doc.fingerprints("2.16.840.1.101.3.4.2.1") == expected
        assert all("NuGet.org Repository by Microsoft" in c.subject for c in doc.certificates)

    run(go, source(proxy), tmp_path / "work")


def test_concurrent_first_metadata_requests_are_one_upstream_request(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    async def go(client: UpstreamClient) -> list[tuple[NuGetVersion, ...]]:
        return list(await asyncio.gather(*(client.versions("System.Runtime.WindowsRuntime") for _ in range(20))))

    answers = run(go, source(proxy), tmp_path / "work")
    assert answers == [(V("4.6.0"),)] * 20
    assert proxy.count(r"^/v3/index\.json$") == 1
    assert proxy.count(r"^/v3/flatcontainer/system\.runtime\.windowsruntime/index\.json$") == 1


def test_an_unlisted_version_reads_as_unlisted(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    feed = upstream.feed
    assert feed.push(make_package("Unlisted.Upstream", "1.0.0")).status_code == 201
    assert feed.push(make_package("Unlisted.Upstream", "2.0.0")).status_code == 201
    with feed.client() as c:
        r = c.delete("/api/v2/package/Unlisted.Upstream/2.0.0", headers={"X-NuGet-ApiKey": feed.keys["alice"]})
        assert r.status_code == 204

    async def go(client: UpstreamClient) -> None:
        assert await client.versions("unlisted.upstream") == (V("1.0.0"), V("2.0.0"))
        listed = {leaf.version: leaf.listed for leaf in await client.registration("Unlisted.Upstream")}
        assert listed == {V("1.0.0"): True, V("2.0.0"): False}

    run(go, source(proxy), tmp_path / "work")


def test_registration_pages_that_are_not_inlined_are_fetched(proxy: UpstreamProxy, tmp_path: Path) -> None:
    """As nuget.org answers for ids with many versions: the index lists pages by URL and bounds only."""

    def leaf(version: str, published: str, listed: str = "") -> str:
        extra = f', "listed": {listed}' if listed else ""
        entry = f'"id": "Paged.Id", "version": "{version}", "published": "{published}"{extra}'
        return '{"catalogEntry": {' + entry + "}}"

    base = "/v3/registration-semver2/paged.id"
    page1 = '{"items": [' + leaf("1.0.0", "2020-01-01T00:00:00Z") + "," + leaf("1.5.0", "2021-01-01T00:00:00Z") + "]}"
    page2 = '{"items": [' + leaf("2.0.0", "1900-01-01T00:00:00+00:00") + "]}"  # old shape: unlisted by its date
    pages = [(f"{base}/page/1.0.0/1.5.0.json", "1.0.0", "1.5.0"), (f"{base}/page/2.0.0/2.0.0.json", "2.0.0", "2.0.0")]
    index = ",".join(f'{{"@id": "{proxy.base_url}{u}", "lower": "{lo}", "upper": "{up}"}}' for u, lo, up in pages)
    proxy.replace[f"{base}/index.json"] = ('{"count": 2, "items": [' + index + "]}").encode()
    proxy.replace[pages[0][0]] = page1.encode()
    proxy.replace[pages[1][0]] = page2.encode()

    async def go(client: UpstreamClient) -> None:
        leaf2 = await client.registration_leaf("Paged.Id", V("2.0.0"))
        assert leaf2 is not None and leaf2.listed is False
        assert proxy.count(r"/page/2\.0\.0/") == 1 and proxy.count(r"/page/1\.0\.0/") == 0  # only its page
        all_leaves = await client.registration("paged.id")
        assert [(x.version, x.listed, x.published and x.published.year) for x in all_leaves] == [
            (V("1.0.0"), True, 2020),
            (V("1.5.0"), True, 2021),
            (V("2.0.0"), False, 1900),
        ]

    run(go, source(proxy), tmp_path / "work")


@pytest.mark.slow  # a signing feed with its dev PKI: ~9 s
def test_listed_certificates_follow_the_feeds_own_with_signing_on_and_a_bad_file_stops_the_start(
    tmp_path: Path,
) -> None:
    certs = upstream_support.nuget_org_repository_certificates()
    pem = tmp_path / "nuget-org.pem"
    pem.write_bytes(certs[0].public_bytes(Encoding.PEM))
    der = tmp_path / "nuget-org.cer"
    der.write_bytes(certs[1].public_bytes(Encoding.DER))
    option = upstream_support.CERTIFICATE_OPTION
    feed = start_feed(
        tmp_path / "signing",
        "--advertise-repository-signatures",
        "always",
        option,
        str(pem),
        option,
        str(der),
        signing=True,
    )
    try:
        with feed.client() as c:
            index = c.get("/v3/index.json").json()
            (url,) = [r["@id"] for r in index["resources"] if r["@type"] == "RepositorySignatures/5.0.0"]
            doc = c.get(url).json()
            listed = [next(iter(e["fingerprints"].values())) for e in doc["signingCertificates"]]
            assert listed[1:] == [upstream_support.sha256_fingerprint(c) for c in certs]
            assert "NuGet.org" not in doc["signingCertificates"][0]["subject"]  # the feed's own (dev PKI) first
            assert doc["allRepositorySigned"] is True
            served = c.get(doc["signingCertificates"][2]["contentUrl"]).content
            assert served == certs[1].public_bytes(Encoding.DER)
    finally:
        feed.stop()
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a certificate")
    (tmp_path / "bad").mkdir()
    with pytest.raises(AssertionError, match=r"listed repository certificate .*bad\.pem"):
        start_feed(tmp_path / "bad", option, str(bad), users=())


# ------------------------------------------------------------------------------------------------ downloads
def test_fifty_concurrent_first_requests_make_one_upstream_download(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    path = upstream.packages[("microsoft.data.sqlite", "6.0.9")]
    expected = path.read_bytes()
    target = nupkg_path("microsoft.data.sqlite", "6.0.9")
    proxy.hold = True
    work = tmp_path / "work"

    async def go(client: UpstreamClient) -> list[FetchedPackage | None]:
        first = [asyncio.create_task(client.fetch_package("Microsoft.Data.Sqlite", V("6.0.9"))) for _ in range(25)]
        for _ in range(500):  # the upstream has the request: the download is in flight
            if proxy.count(target):
                break
            await asyncio.sleep(0.01)
        assert proxy.count(target) == 1
        late = [asyncio.create_task(client.fetch_package("microsoft.data.sqlite", V("6.0.9"))) for _ in range(25)]
        await asyncio.sleep(0.05)
        proxy.release.set()
        return list(await asyncio.gather(*first, *late))

    results = run(go, source(proxy), work)
    assert proxy.count(target) == 1
    fetched = [r for r in results if r is not None]
    assert len(fetched) == 50
    assert len({f.path for f in fetched}) == 50  # each caller owns its file
    for f in fetched:
        assert f.path.read_bytes() == expected
        assert f.size == len(expected) and f.sha512 == sha512_b64(expected)
        f.discard()
    assert list(work.iterdir()) == []


def test_a_download_cut_mid_body_leaves_nothing_and_the_next_call_succeeds(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    expected = upstream.packages[("restsharp", "106.11.4")].read_bytes()
    target = nupkg_path("restsharp", "106.11.4")
    work = tmp_path / "work"

    async def go(client: UpstreamClient) -> FetchedPackage | None:
        proxy.cut_after = len(expected) // 2
        with pytest.raises(UpstreamUnavailableError) as info:
            await client.fetch_package("RestSharp", V("106.11.4"))
        assert info.value.upstream == "flaky" and "upstream 'flaky'" in str(info.value)
        assert list(work.iterdir()) == []  # no partial file
        proxy.cut_after = None
        return await client.fetch_package("RestSharp", V("106.11.4"))

    got = run(go, source(proxy, "flaky"), work)
    assert got is not None and got.path.read_bytes() == expected
    assert proxy.count(target) == 2


def test_every_caller_cancelled_stops_the_download_and_leaves_nothing(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    expected = upstream.packages[("system.buffers", "4.4.0")].read_bytes()
    target = nupkg_path("system.buffers", "4.4.0")
    work = tmp_path / "work"
    proxy.hold = True

    async def go(client: UpstreamClient) -> FetchedPackage | None:
        tasks = [asyncio.create_task(client.fetch_package("System.Buffers", V("4.4.0"))) for _ in range(3)]
        for _ in range(500):
            if proxy.count(target):
                break
            await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert list(work.iterdir()) == []
        proxy.hold = False
        proxy.release.set()
        return await client.fetch_package("System.Buffers", V("4.4.0"))

    got = run(go, source(proxy), work)
    assert got is not None and got.path.read_bytes() == expected
    got.discard()
    assert list(work.iterdir()) == []


def test_a_package_over_the_cap_is_refused_and_nothing_kept(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    work = tmp_path / "work"

    async def go(client: UpstreamClient) -> None:
        with pytest.raises(UpstreamPackageTooLargeError):
            await client.fetch_package("ILMerge", V("3.0.41"))
        assert await client.fetch_package("ILMerge", V("9.9.9")) is None  # 404: not on the upstream

    run(go, source(proxy), work, max_package_size=10_000)
    assert list(work.iterdir()) == []


def test_the_upstreams_bytes_are_served_even_when_tampered(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    """The client does not judge packages (ingestion does): a tampered package comes back as the upstream sent it,
    with the hash of what was received."""
    bad = upstream_support.tampered(upstream.packages[("sqlitepclraw.core", "2.1.2")])
    proxy.replace[nupkg_path("sqlitepclraw.core", "2.1.2")] = bad
    got = run(lambda c: c.fetch_package("SQLitePCLRaw.core", V("2.1.2")), source(proxy), tmp_path / "work")
    assert got is not None and got.path.read_bytes() == bad and got.sha512 == sha512_b64(bad)


# ------------------------------------------------------------------------------------------------ cache
def test_metadata_ttl_with_an_injected_clock(upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path) -> None:
    feed = upstream.feed
    assert feed.push(make_package("Ttl.Probe", "1.0.0")).status_code == 201
    clock = Clock()
    index = r"^/v3/flatcontainer/ttl\.probe/index\.json$"

    async def go(client: UpstreamClient) -> None:
        assert await client.versions("Ttl.Probe") == (V("1.0.0"),)
        assert feed.push(make_package("Ttl.Probe", "1.1.0")).status_code == 201
        clock.now += 59
        assert await client.versions("Ttl.Probe") == (V("1.0.0"),)  # fresh for 60 s: no request
        assert proxy.count(index) == 1
        clock.now += 2
        assert await client.versions("Ttl.Probe") == (V("1.0.0"), V("1.1.0"))
        assert proxy.count(index) == 2

    run(go, source(proxy), tmp_path / "work", clock=clock, metadata_ttl=60.0)


def test_upstream_down_cached_ids_keep_working_others_name_the_upstream(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    clock = Clock()

    async def go(client: UpstreamClient) -> None:
        assert await client.versions("Newtonsoft.Json") == (V("12.0.3"),)
        assert (await client.registration_leaf("Newtonsoft.Json", V("12.0.3"))) is not None
        proxy.down = True
        clock.now += 3600  # long expired: refreshing fails, the cached answers stay
        assert await client.versions("Newtonsoft.Json") == (V("12.0.3"),)
        assert (await client.registration_leaf("Newtonsoft.Json", V("12.0.3"))) is not None
        assert client.stale_served >= 2
        with pytest.raises(UpstreamUnavailableError) as info:
            await client.versions("RestSharp")
        assert info.value.upstream == "nuget-copy" and info.value.url == proxy.source
        assert "upstream 'nuget-copy'" in info.value.message and proxy.source in info.value.message
        proxy.down = False
        clock.now += 3600
        assert await client.versions("RestSharp") == (V("106.11.4"),)  # back

    run(go, source(proxy, "nuget-copy"), tmp_path / "work", clock=clock, metadata_ttl=60.0)


# ------------------------------------------------------------------------------------------------ mapping
def test_source_mapping_most_specific_pattern_wins_and_local_ids_win(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    local = {"ilmerge"}

    async def local_id(package_id: str) -> bool:
        return package_id.lower() in local

    async def go() -> None:
        everything = UpstreamClient(source(proxy, "everything", "*"), work_dir=tmp_path / "a")
        system = UpstreamClient(source(proxy, "system", "System.*", "Newtonsoft.Json"), work_dir=tmp_path / "b")
        memory = UpstreamClient(source(proxy, "memory", "System.Memory"), work_dir=tmp_path / "c")
        async with Upstreams([everything, system, memory], local_id=local_id) as ups:
            names = {i: [c.name for c in await ups.route(i)] for i in ("System.Buffers", "system.memory", "RestSharp")}
            assert names == {"System.Buffers": ["system"], "system.memory": ["memory"], "RestSharp": ["everything"]}
            assert [c.name for c in await ups.route("NEWTONSOFT.JSON")] == ["system"]  # exact id beats '*'
            assert [c.name for c in await ups.route("Newtonsoft.Json.Bson")] == ["everything"]
            assert await ups.route("ILMerge") == ()  # the feed holds it: never from upstream
            assert [c.name for c in ups.mapped("ILMerge")] == ["everything"]
            assert await ups.versions("ilmerge") == {}
            assert list(await ups.versions("system.memory")) == [V("4.5.3")]
            got = await ups.fetch_package("System.Memory", V("4.5.3"))
            assert got is not None and got.upstream == "memory"
            got.discard()
        only = Upstreams([UpstreamClient(source(proxy, "sys", "System.*"), work_dir=tmp_path / "d")])
        async with only:
            assert await only.route("RestSharp") == ()  # no pattern matches: no upstream, as NuGet

    asyncio.run(go())


def test_upstream_option_and_configuration_errors(tmp_path: Path) -> None:
    s = UpstreamSource.parse("nuget.org=https://api.nuget.org/v3/index.json#Newtonsoft.*, System.Memory")
    assert (s.name, s.url, s.patterns) == (
        "nuget.org",
        "https://api.nuget.org/v3/index.json",
        ("Newtonsoft.*", "System.Memory"),
    )
    assert UpstreamSource.parse("https://api.nuget.org/v3/index.json").patterns == ("*",)
    assert UpstreamSource.parse("https://api.nuget.org/v3/index.json").name == "api.nuget.org"
    with pytest.raises(ConfigError, match="plain http"):
        UpstreamSource.parse("http://127.0.0.1:1/v3/index.json")
    with pytest.raises(ConfigError, match="may only end a pattern"):
        UpstreamSource.parse("https://api.nuget.org/v3/index.json#Sys*tem")

    async def twice() -> None:
        a = UpstreamSource("a", "https://x/v3/index.json")
        async with UpstreamClient(a, work_dir=tmp_path) as one, UpstreamClient(a, work_dir=tmp_path) as two:
            with pytest.raises(ConfigError, match="same name"):
                Upstreams([one, two])

    asyncio.run(twice())


def test_files_a_killed_process_left_are_removed_once_older_than_a_download(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    old_part, old_done, fresh, owned = (work / n for n in (".part-a", ".done-b", ".part-c", "a.1.0.0.x.nupkg"))
    for f in (old_part, old_done, fresh, owned):
        f.write_bytes(b"x")
    for f in (old_part, old_done, owned):
        os.utime(f, (time.time() - 120, time.time() - 120))

    async def build() -> None:
        async with UpstreamClient(UpstreamSource("a", "https://x/v3/index.json"), work_dir=work, download_timeout=60):
            pass

    asyncio.run(build())
    assert sorted(p.name for p in work.iterdir()) == [".part-c", "a.1.0.0.x.nupkg"]  # callers' files are theirs


def test_a_search_answer_of_the_wrong_shape_is_an_invalid_document(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    """totalHits that is not an integer, or JSON nested deeper than the parser goes, is the upstream's bad document
    (the mirror then keeps its local answer), not an exception from the middle of the mirror's arithmetic."""
    answers = {
        "text-total": b'{"totalHits": "many", "data": []}',
        "bool-total": b'{"totalHits": true, "data": []}',
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }

    async def go(client: UpstreamClient) -> None:
        for query, body in answers.items():
            proxy.replace["/v3/search"] = body
            with pytest.raises(UpstreamDocumentError, match="not a search result"):
                await client.search(query)
        del proxy.replace["/v3/search"]
        hits = await client.search("restsharp")
        assert [h["id"] for h in hits["data"]] == ["RestSharp"] and isinstance(hits["totalHits"], int)

    run(go, source(proxy), tmp_path / "work")
