"""The read-through mirror's paged registrations and autocomplete (issue 16, point 1; docs/feed.md "Mirror"), end to
end against the test upstream of upstream_support (a ``nuseal serve`` holding the real nuget.org vectors, behind a
proxy that can answer chosen paths with other documents), the mirror served by uvicorn in a thread of this process
(``start_thread_mirror``: its clock is the upstream's, ``--min-release-age 3d``).

* An upstream id with more than ``INLINE_PAGE_THRESHOLD`` versions (a synthetic ``Many.Versions`` whose version list
  and nuget.org-style paged registration the proxy answers) gets a paged index (pages by ``@id`` and bounds only) whose
  page documents hold every visible version, and none held here or in its cooldown; Microsoft's NuGet.Protocol (the
  oracle's ``client metadata``) reads it back the same. An id with ``INLINE_PAGE_THRESHOLD`` versions stays inlined.
* Autocomplete: local ids first, then the upstream's ids that route to it and are not local; ``id=`` lists the
  mirror's visible versions.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from nuseal.feed.protocol.documents import INLINE_PAGE_THRESHOLD, PAGE_SIZE
from support.clock import VECTOR_NOW

from .conftest import make_package, multipart
from .headers_support import check_headers
from .test_mirror import CRADLE, ThreadMirror, start_thread_mirror
from .upstream_support import (
    NugetOrgUpstream,
    UpstreamProxy,
    nupkg_path,
    proxy_fixture,  # noqa: F401 - the proxy fixture (the upstream's RepositorySignatures as it is)
    upstream_fixture,  # noqa: F401 - the upstream fixture
)

pytestmark = pytest.mark.slow  # real servers: the upstream (12 vectors pushed) and a mirror per test

#: The mirrors' cooldown: versions published upstream less than this ago are not shown.
MIN_RELEASE_AGE = 3 * 86400


@pytest.fixture
def mirror(upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path) -> Iterator[ThreadMirror]:
    m = start_thread_mirror(tmp_path / "mirror", proxy, upstream.now(), min_release_age_seconds=MIN_RELEASE_AGE)
    yield m
    m.stop()


def synthetic_id(proxy: UpstreamProxy, package_id: str, versions: list[str], young: set[str]) -> None:
    """Make the proxy answer ``package_id`` as nuget.org answers an id with many versions: its flat container
    version list, and a registration index listing pages of ``PAGE_SIZE`` leaves by URL (separate page documents).
    Every version was published 30 days before the vectors' clock, those in ``young`` an hour before it."""
    lower = package_id.lower()
    base = f"{proxy.base_url}/v3/registration-semver2/{lower}"
    proxy.replace[f"/v3/flatcontainer/{lower}/index.json"] = json.dumps({"versions": versions}).encode()

    def leaf(version: str) -> dict[str, Any]:
        published = VECTOR_NOW - (timedelta(hours=1) if version in young else timedelta(days=30))
        return {
            "@id": f"{base}/{version}.json",
            "catalogEntry": {
                "@id": f"{proxy.base_url}/catalog/{lower}.{version}.json",
                "id": package_id,
                "version": version,
                "published": published.isoformat(),
                "listed": True,
                "description": "synthetic",
                "dependencyGroups": [],
            },
            "packageContent": f"{proxy.base_url}{nupkg_path(package_id, version)}",
        }

    pages = []
    for start in range(0, len(versions), PAGE_SIZE):
        chunk = versions[start : start + PAGE_SIZE]
        url = f"{base}/page/{chunk[0]}/{chunk[-1]}.json"
        proxy.replace[url.removeprefix(proxy.base_url)] = json.dumps({"items": [leaf(v) for v in chunk]}).encode()
        pages.append({"@id": url, "count": len(chunk), "lower": chunk[0], "upper": chunk[-1]})
    index = {"@id": f"{base}/index.json", "count": len(pages), "items": pages}
    proxy.replace[f"/v3/registration-semver2/{lower}/index.json"] = json.dumps(index).encode()


def read_registration(c: httpx.Client, view: str, id_lower: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the index, the versions of every page in order, the page URLs fetched) as a V3 client reads a registration:
    a page's inlined ``items``, else the page document its ``@id`` names (each answer's headers checked)."""
    r = c.get(f"/v3/{view}/{id_lower}/index.json")
    assert r.status_code == 200, r.text
    check_headers(r, user_file=False)
    index = r.json()
    versions: list[str] = []
    fetched: list[str] = []
    for page in index["items"]:
        items = page.get("items")
        if items is None:
            p = c.get(page["@id"])
            assert p.status_code == 200, page["@id"]
            check_headers(p, user_file=False)
            fetched.append(page["@id"])
            document = p.json()
            assert document["@id"] == page["@id"] and document["parent"] == index["@id"]
            assert (document["count"], document["lower"], document["upper"]) == (
                page["count"],
                page["lower"],
                page["upper"],
            )
            items = document["items"]
        assert len(items) == page["count"]
        versions += [i["catalogEntry"]["version"] for i in items]
    return index, versions, fetched


def oracle_client(*args: str) -> dict[str, Any]:
    """The oracle's NuGet.Protocol 6.14.3 ``client`` command; skips when the oracle cannot run here."""
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    run = subprocess.run(
        ["bash", str(oracle.RUN_SCRIPT), "client", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0 and run.stdout.strip(), run.stderr[-2000:]
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def test_many_versions_page_like_nuget_org_with_held_and_cooling_versions_left_out(
    proxy: UpstreamProxy, mirror: ThreadMirror
) -> None:
    many = [f"1.0.{i}" for i in range(300)]
    young = {"1.0.150", *many[-4:]}  # in their cooldown (one inside a page, the last ones)
    synthetic_id(proxy, "Many.Versions", many, young)
    held = "1.0.7"  # a download-and-run init.ps1: held by the scan when first fetched
    proxy.replace[nupkg_path("Many.Versions", held)] = make_package(
        "Many.Versions", held, files={"tools/init.ps1": CRADLE}
    )
    taken = "1.0.3"  # a clean package: ingested, its stored registration item merged in
    proxy.replace[nupkg_path("Many.Versions", taken)] = make_package("Many.Versions", taken)
    at_threshold = [f"2.0.{i}" for i in range(INLINE_PAGE_THRESHOLD)]
    synthetic_id(proxy, "Few.Versions", at_threshold, set())
    with mirror.client() as c:
        assert c.get(nupkg_path("Many.Versions", held)).status_code == 404
        assert c.get(nupkg_path("Many.Versions", taken)).status_code == 200
        visible = [v for v in many if v not in young and v != held]
        assert c.get("/v3/flatcontainer/many.versions/index.json").json() == {"versions": visible}

        for view in ("registration", "registration-semver2"):
            index, versions, fetched = read_registration(c, view, "many.versions")
            assert versions == visible  # every visible version, in order; none held or cooling
            assert all("items" not in page for page in index["items"])  # paged: nothing inlined
            assert [page["count"] for page in index["items"]] == [
                min(PAGE_SIZE, len(visible) - i) for i in range(0, len(visible), PAGE_SIZE)
            ]
            assert fetched == [
                f"{mirror.base_url}/v3/{view}/many.versions/page/{p['lower']}/{p['upper']}.json" for p in index["items"]
            ]
            big = len(c.get(f"/v3/{view}/many.versions/index.json").content)
            assert big < 4000, big  # the index no longer carries the 290 items

        # the ingested version is this feed's own item; the held one is in no page
        _, versions, _ = read_registration(c, "registration", "many.versions")
        assert taken in versions and held not in versions
        # a page asked for with bounds an older index named: what is visible in that range now
        stale = c.get("/v3/registration/many.versions/page/1.0.0/1.0.9.json")
        assert stale.status_code == 200
        check_headers(stale, user_file=False)
        assert [i["catalogEntry"]["version"] for i in stale.json()["items"]] == [
            v for v in visible if v in {f"1.0.{i}" for i in range(10)}
        ]
        gone = c.get("/v3/registration/many.versions/page/1.0.296/1.0.299.json")  # only cooling versions there
        assert gone.status_code == 404
        check_headers(gone, user_file=False)
        assert c.get("/v3/registration/many.versions/page/1.0.9/1.0.0.json").status_code == 404  # reversed

        # at the threshold the index stays inlined, as nuget.org's
        index, versions, fetched = read_registration(c, "registration", "few.versions")
        assert versions == at_threshold and fetched == []
        assert all("items" in page for page in index["items"])

    # Microsoft's client reads the paged registration back, following the page @ids
    found = oracle_client("metadata", f"{mirror.base_url}/v3/index.json", "Many.Versions")
    assert "exception" not in found, found.get("exception")
    assert [p["version"] for p in found["packages"]] == visible
    requested = " ".join(str(entry.get("message", "")) for entry in found.get("logs", []))
    assert "/page/" in requested


def test_autocomplete_lists_local_ids_first_then_upstream_ids_and_visible_versions(
    proxy: UpstreamProxy, mirror: ThreadMirror
) -> None:
    # local ids: one of the upstream's names pushed here (local wins), and one only here
    alice = {"X-NuGet-ApiKey": mirror.keys["alice"]}
    with mirror.client() as c:
        for package_id in ("System.Buffers", "System.Local.Only"):
            pushed = c.put("/api/v2/package", files=multipart(make_package(package_id, "99.0.0")), headers=alice)
            assert pushed.status_code == 201, pushed.text
        ids = c.get("/v3/autocomplete", params={"q": "system"}).json()["data"]
        local = ["System.Buffers", "System.Local.Only"]
        assert ids[:2] == local
        upstream_ids = ids[2:]
        assert "System.Memory" in upstream_ids and "System.Runtime.WindowsRuntime" in upstream_ids
        assert "System.Buffers" not in upstream_ids  # local wins: listed once, as the feed's own
        # an upstream-only id
        rest = c.get("/v3/autocomplete", params={"q": "restsh"})
        assert rest.status_code == 200 and rest.json()["data"] == ["RestSharp"]
        check_headers(rest, user_file=False)
        assert c.get("/v3/autocomplete", params={"q": "system", "take": "3"}).json()["data"] == [*local, ids[2]]

    # id=: the visible versions only (the version list's): the held one and the one in its cooldown left out
    synthetic_id(proxy, "Auto.Versions", ["1.0.0", "1.1.0", "2.0.0-beta", "2.0.0-rc.1", "2.0.0"], young={"2.0.0"})
    proxy.replace[nupkg_path("Auto.Versions", "1.1.0")] = make_package(
        "Auto.Versions", "1.1.0", files={"tools/init.ps1": CRADLE}
    )
    with mirror.client() as c:
        assert c.get(nupkg_path("Auto.Versions", "1.1.0")).status_code == 404  # held by the scan
        listed = c.get("/v3/flatcontainer/auto.versions/index.json").json()["versions"]
        assert listed == ["1.0.0", "2.0.0-beta", "2.0.0-rc.1"]
        every = c.get("/v3/autocomplete", params={"id": "Auto.Versions", "prerelease": "true", "semVerLevel": "2.0.0"})
        assert every.json()["data"] == listed and every.json()["totalHits"] == 3
        check_headers(every, user_file=False)
        semver1 = c.get("/v3/autocomplete", params={"id": "auto.versions", "prerelease": "true"}).json()["data"]
        assert semver1 == ["1.0.0", "2.0.0-beta"]  # 2.0.0-rc.1 is SemVer 2.0.0 only
        assert c.get("/v3/autocomplete", params={"id": "auto.versions"}).json()["data"] == ["1.0.0"]  # no prerelease
        # a local id's versions are the feed's own
        assert c.get("/v3/autocomplete", params={"id": "system.buffers"}).json()["data"] == ["99.0.0"]
