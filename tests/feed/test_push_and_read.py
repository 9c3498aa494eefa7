"""Push over HTTP to the feed (built by its composition root, called in-process), then read every V3 resource
back."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

import httpx
import pytest

from nuseal.feed.protocol.documents import INLINE_PAGE_THRESHOLD, PAGE_SIZE
from nuseal.package import NuGetVersion

from .conftest import Feed, make_package, nuspec_xml


@pytest.fixture
def feed(inprocess_feed: Feed) -> Feed:
    """In-process (the composition root's app through an ASGI client): nothing here needs a real server."""
    return inprocess_feed


@pytest.fixture(scope="module")
def shared_feed(shared_inprocess_feed: Feed) -> Feed:
    return shared_inprocess_feed


def _json(c: httpx.Client, url: str) -> dict:
    r = c.get(url)
    assert r.status_code == 200, (url, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    return r.json()


def _resources(c: httpx.Client) -> dict[str, dict]:
    index = _json(c, "/v3/index.json")
    assert index["version"] == "3.0.0"
    return {r["@type"]: r for r in index["resources"]}


def test_service_index_lists_every_resource_type(shared_feed: Feed) -> None:
    with shared_feed.client() as c:
        res = _resources(c)
    for t in (
        "PackagePublish/2.0.0",
        "PackageBaseAddress/3.0.0",
        "RegistrationsBaseUrl",
        "RegistrationsBaseUrl/3.0.0-rc",
        "RegistrationsBaseUrl/3.0.0-beta",
        "RegistrationsBaseUrl/3.4.0",
        "RegistrationsBaseUrl/3.6.0",
        "RegistrationsBaseUrl/Versioned",
        "SearchQueryService/3.5.0",
        "SearchAutocompleteService/3.5.0",
        "PackageDetailsUriTemplate/5.1.0",
    ):
        assert t in res, t
        assert res[t]["@id"].startswith(shared_feed.base_url + "/")
    # NuGet.exe 5.8 on Mono needs clientVersion on the Versioned entry (issue 4)
    assert res["RegistrationsBaseUrl/Versioned"]["clientVersion"]
    assert res["RegistrationsBaseUrl/3.6.0"]["@id"] != res["RegistrationsBaseUrl/3.4.0"]["@id"]


def test_push_makes_the_package_visible_everywhere(feed: Feed) -> None:
    data = make_package(
        "Contoso.Widgets",
        "1.2.3",
        extra_metadata="    <tags>widgets ui</tags>\n    <title>Contoso Widgets</title>\n"
        '    <dependencies><group targetFramework="net45"/><group targetFramework="netstandard2.0">'
        '<dependency id="Contoso.Core" version="[2.0.0, )"/></group></dependencies>\n',
    )
    r = feed.push(data)
    assert r.status_code == 201, r.text
    with feed.client() as c:
        res = _resources(c)
        flat = res["PackageBaseAddress/3.0.0"]["@id"]
        assert _json(c, f"{flat}contoso.widgets/index.json") == {"versions": ["1.2.3"]}
        nupkg = c.get(f"{flat}contoso.widgets/1.2.3/contoso.widgets.1.2.3.nupkg")
        assert nupkg.status_code == 200
        assert nupkg.content == data
        assert nupkg.headers["content-type"] == "application/octet-stream"
        assert "immutable" in nupkg.headers["cache-control"]
        nuspec = c.get(f"{flat}contoso.widgets/1.2.3/contoso.widgets.nuspec")
        assert nuspec.status_code == 200
        assert nuspec.content == zipfile.ZipFile(io.BytesIO(data)).read("Contoso.Widgets.nuspec")
        assert nuspec.headers["content-type"] == "application/xml"

        reg = _json(c, f"{res['RegistrationsBaseUrl/3.6.0']['@id']}contoso.widgets/index.json")
        assert reg["count"] == 1
        page = reg["items"][0]
        assert page["lower"] == page["upper"] == "1.2.3"
        leaf = page["items"][0]
        entry = leaf["catalogEntry"]
        assert entry["id"] == "Contoso.Widgets"
        assert entry["version"] == "1.2.3"
        assert entry["listed"] is True
        assert entry["tags"] == ["widgets", "ui"]
        assert entry["title"] == "Contoso Widgets"
        groups = entry["dependencyGroups"]
        assert [g.get("targetFramework") for g in groups] == ["net45", "netstandard2.0"]
        assert groups[0]["dependencies"] == []
        assert groups[1]["dependencies"][0]["id"] == "Contoso.Core"
        assert groups[1]["dependencies"][0]["range"] == "[2.0.0, )"
        assert c.get(leaf["packageContent"]).content == data
        leaf_doc = _json(c, leaf["@id"])
        assert leaf_doc["listed"] is True
        assert leaf_doc["packageContent"] == leaf["packageContent"]

        search = _json(c, f"{res['SearchQueryService/3.5.0']['@id']}?q=widgets")
        assert search["totalHits"] == 1
        hit = search["data"][0]
        assert (hit["id"], hit["version"]) == ("Contoso.Widgets", "1.2.3")
        assert hit["owners"] == ["alice"]
        assert [v["version"] for v in hit["versions"]] == ["1.2.3"]

        auto = _json(c, f"{res['SearchAutocompleteService/3.5.0']['@id']}?q=contoso")
        assert auto["data"] == ["Contoso.Widgets"]
        versions = _json(c, f"{res['SearchAutocompleteService/3.5.0']['@id']}?id=contoso.widgets")
        assert versions["data"] == ["1.2.3"]

        details = res["PackageDetailsUriTemplate/5.1.0"]["@id"]
        page_html = c.get(details.replace("{id}", "Contoso.Widgets").replace("{version}", "1.2.3"))
        assert page_html.status_code == 200
        assert "Contoso.Widgets" in page_html.text
        assert "alice" in page_html.text


def test_etags_and_conditional_requests(feed: Feed) -> None:
    first_package = make_package("Etag.Test", "1.0.0")
    assert feed.push(first_package).status_code == 201
    with feed.client() as c:
        for url in (
            "/v3/index.json",
            "/v3/flatcontainer/etag.test/index.json",
            "/v3/flatcontainer/etag.test/1.0.0/etag.test.1.0.0.nupkg",
            "/v3/registration-semver2/etag.test/index.json",
            "/v3/search?q=etag",
        ):
            first = c.get(url)
            etag = first.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            assert "cache-control" in first.headers
            again = c.get(url, headers={"If-None-Match": etag})
            assert again.status_code == 304, url
            assert again.content == b""
            assert c.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        before = c.get("/v3/flatcontainer/etag.test/index.json").headers["etag"]
        assert feed.push(make_package("Etag.Test", "1.1.0")).status_code == 201
        after = c.get("/v3/flatcontainer/etag.test/index.json", headers={"If-None-Match": before})
        assert after.status_code == 200
        assert after.json() == {"versions": ["1.0.0", "1.1.0"]}
        head = c.head("/v3/flatcontainer/etag.test/1.0.0/etag.test.1.0.0.nupkg")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(first_package)


def test_versions_are_normalized_and_ids_case_insensitive(feed: Feed) -> None:
    assert feed.push(make_package("Case.Pkg", "1.0")).status_code == 201
    r = feed.push(make_package("case.pkg", "1.0.0.0"))
    assert r.status_code == 409  # same normalized version, whatever the casing of the id
    assert "already exists" in r.text
    assert r.headers["x-nuget-warning"]
    assert feed.push(make_package("CASE.PKG", "1.0.1-Beta.2+build.7")).status_code == 201
    with feed.client() as c:
        assert c.get("/v3/flatcontainer/case.pkg/index.json").json() == {"versions": ["1.0.0", "1.0.1-beta.2"]}
        # the first push's casing is kept for the id
        reg = c.get("/v3/registration-semver2/case.pkg/index.json").json()
        entries = [i["catalogEntry"] for i in reg["items"][0]["items"]]
        assert [e["id"] for e in entries] == ["Case.Pkg", "Case.Pkg"]
        assert [e["version"] for e in entries] == ["1.0.0", "1.0.1-Beta.2+build.7"]
        # the SemVer 1 view leaves out the SemVer 2.0.0-only version
        semver1 = c.get("/v3/registration/case.pkg/index.json").json()
        assert [i["catalogEntry"]["version"] for i in semver1["items"][0]["items"]] == ["1.0.0"]
        # NuGet asks with lower-case paths, but upper-case still resolves
        assert c.get("/v3/flatcontainer/Case.Pkg/index.json").status_code == 200
        assert c.get("/v3/flatcontainer/case.pkg/1.0.1-beta.2/case.pkg.1.0.1-beta.2.nupkg").status_code == 200


def test_search_parameters(feed: Feed) -> None:
    for pid, ver, extra in (
        ("Alpha.Lib", "1.0.0", ""),
        ("Alpha.Lib", "2.0.0-preview", ""),
        ("Alpha.Lib", "3.0.0-rc.1", ""),
        ("Alpha.Tool", "1.0.0", '    <packageTypes><packageType name="DotnetTool"/></packageTypes>\n'),
        ("Beta.Lib", "0.1.0", "    <tags>alpha-compatible</tags>\n"),
    ):
        assert feed.push(make_package(pid, ver, extra_metadata=extra)).status_code == 201
    with feed.client() as c:

        def search(**params: str) -> dict:
            return c.get("/v3/search", params=params).json()

        stable = search(q="alpha.lib")
        assert stable["data"][0]["id"] == "Alpha.Lib"
        assert stable["data"][0]["version"] == "1.0.0"
        assert [v["version"] for v in stable["data"][0]["versions"]] == ["1.0.0"]
        pre = search(q="alpha.lib", prerelease="true")
        # without semVerLevel=2.0.0, a dotted release label (SemVer 2.0.0 only) is left out
        assert pre["data"][0]["version"] == "2.0.0-preview"
        sv2 = search(q="packageid:alpha.lib", prerelease="true", semVerLevel="2.0.0")
        assert sv2["totalHits"] == 1
        assert sv2["data"][0]["version"] == "3.0.0-rc.1"
        assert [v["version"] for v in sv2["data"][0]["versions"]] == ["1.0.0", "2.0.0-preview", "3.0.0-rc.1"]
        tools = search(packageType="DotnetTool")
        assert [d["id"] for d in tools["data"]] == ["Alpha.Tool"]
        everything = search(q="")
        assert everything["totalHits"] == 3
        page = search(q="", skip="1", take="1")
        assert page["totalHits"] == 3 and len(page["data"]) == 1
        assert page["data"][0]["id"] == everything["data"][1]["id"]
        assert search(q="tags:alpha-compatible")["data"][0]["id"] == "Beta.Lib"
        assert c.get("/v3/search", params={"take": "many"}).status_code == 400
        assert c.get("/v3/search", params={"skip": "-1"}).status_code == 400


def test_sha512_and_size_recorded(feed: Feed) -> None:
    data = make_package("Hash.Pkg", "3.0.0")
    assert feed.push(data).status_code == 201
    with feed.client() as c:
        page = c.get("/packages/Hash.Pkg/3.0.0").text
    assert base64.b64encode(hashlib.sha512(data).digest()).decode() in page
    assert f"{len(data)} bytes" in page


def test_unlist_and_relist(feed: Feed) -> None:
    assert feed.push(make_package("Unlist.Me", "1.0.0")).status_code == 201
    assert feed.push(make_package("Unlist.Me", "1.1.0")).status_code == 201
    with feed.client() as c:
        headers = {"X-NuGet-ApiKey": feed.keys["alice"]}
        assert c.delete("/api/v2/package/Unlist.Me/1.1.0", headers=headers).status_code == 204
        # still restorable: the flat container keeps unlisted versions
        assert c.get("/v3/flatcontainer/unlist.me/index.json").json() == {"versions": ["1.0.0", "1.1.0"]}
        assert c.get("/v3/flatcontainer/unlist.me/1.1.0/unlist.me.1.1.0.nupkg").status_code == 200
        reg = c.get("/v3/registration-semver2/unlist.me/index.json").json()
        listed = {i["catalogEntry"]["version"]: i["catalogEntry"]["listed"] for i in reg["items"][0]["items"]}
        assert listed == {"1.0.0": True, "1.1.0": False}
        assert c.get("/v3/registration-semver2/unlist.me/1.1.0.json").json()["listed"] is False
        hit = c.get("/v3/search", params={"q": "unlist.me"}).json()["data"][0]
        assert hit["version"] == "1.0.0"
        assert [v["version"] for v in hit["versions"]] == ["1.0.0"]
        assert c.delete("/api/v2/package/Unlist.Me/1.1.0", headers=headers).status_code == 204  # idempotent
        assert c.post("/api/v2/package/Unlist.Me/1.1.0", headers=headers).status_code == 200
        assert c.get("/v3/search", params={"q": "unlist.me"}).json()["data"][0]["version"] == "1.1.0"
        missing = c.delete("/api/v2/package/Unlist.Me/9.9.9", headers=headers)
        assert missing.status_code == 404
        other = c.delete("/api/v2/package/Unlist.Me/1.0.0", headers={"X-NuGet-ApiKey": feed.keys["bob"]})
        assert other.status_code == 403
        assert "other owners" in other.text


def test_registration_pages_past_the_inline_threshold(feed: Feed) -> None:
    n = INLINE_PAGE_THRESHOLD + 2
    with feed.client() as c:
        headers = {"X-NuGet-ApiKey": feed.keys["alice"]}
        for i in range(n):
            r = c.put(
                "/api/v2/package",
                files={"package": ("p.nupkg", make_package("Many.Versions", f"1.0.{i}"))},
                headers=headers,
            )
            assert r.status_code == 201
        reg = c.get("/v3/registration-semver2/many.versions/index.json").json()
        assert reg["count"] == -(-n // PAGE_SIZE)
        seen = []
        for page in reg["items"]:
            assert "items" not in page
            doc = c.get(page["@id"]).json()
            assert doc["count"] == len(doc["items"])
            seen += [i["catalogEntry"]["version"] for i in doc["items"]]
    assert seen == sorted((f"1.0.{i}" for i in range(n)), key=NuGetVersion.parse)


def test_web_pages(feed: Feed) -> None:
    assert (
        feed.push(make_package("Web.Pkg", "1.0.0", description="&lt;script&gt;alert(1)&lt;/script&gt;")).status_code
        == 201
    )
    with feed.client(follow_redirects=True) as c:
        home = c.get("/")
        assert home.status_code == 200 and "Web.Pkg" in home.text
        page = c.get("/packages/web.pkg")
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text  # escaped
        assert "&lt;script&gt;" in page.text
        assert "listed" in page.text
        assert c.get("/packages/No.Such.Package").status_code == 404
        assert c.get("/packages?q=web").text.count("Web.Pkg") >= 1


@pytest.mark.parametrize("path", ["/v3/flatcontainer/../../feed.db", "/v3/flatcontainer/%2e%2e/feed.db", "/v3/.x"])
def test_static_paths_cannot_escape_storage(shared_feed: Feed, path: str) -> None:
    with shared_feed.client() as c:
        assert c.get(path).status_code == 404


def test_nuspec_of_pushed_file_matches_bytes_in_storage(feed: Feed) -> None:
    raw = nuspec_xml("Exact.Bytes", "1.0.0", description="kept   byte  for byte")
    data = make_package("Exact.Bytes", "1.0.0", nuspec=raw)
    assert feed.push(data).status_code == 201
    assert (feed.data_dir / "storage/v3/flatcontainer/exact.bytes/1.0.0/exact.bytes.nuspec").read_bytes() == raw
