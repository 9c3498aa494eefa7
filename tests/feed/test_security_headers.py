"""Security headers on every response of a real `nuseal serve` (issue 11, item 1 and its standing check).

What is asked is derived, not listed by hand: every route of the Starlette application (its path parameters
filled with a pushed package's values; a parameter with no known value fails the test), with every method it
accepts and one it does not; every file in the feed's storage folder (the whole static read side: service index,
flat-container indexes, ``.nupkg`` and ``.nuspec`` files, registrations), each resource of the service index, and
404s. Each response must carry the headers of its class (``nuseal.feed.http.headers``):

* a user's file (a stored file other than a JSON document): ``Content-Disposition: attachment`` with the file's
  name, the sandboxing CSP, ``nosniff``, and its content type unchanged (what NuGet clients get);
* an HTML page: a CSP with no inline script or style, ``frame-ancestors 'none'``, ``base-uri 'none'``,
  ``form-action 'self'``; ``X-Frame-Options: DENY``, ``Referrer-Policy``, ``nosniff``;
* anything else (JSON, XML, text, redirects, errors): the sandboxing CSP, ``nosniff``, ``X-Frame-Options``.

A route added later is requested too (it comes from the application's route table), so it cannot ship without
its headers, and the templates are checked for inline script, style and event handlers, which the CSP forbids.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from nuseal.feed.compose import build_feed
from nuseal.feed.config import FeedConfig
from nuseal.feed.http.headers import download_filename

from .conftest import Feed, _require, make_package, start_feed
from .headers_support import check_download, check_headers

PACKAGE_ID = "Probe.Headers"
VERSION = "1.0.0"
#: A value for each path parameter of the routes (a new parameter name must be added here).
PATH_VALUES = {"id": PACKAGE_ID, "version": VERSION, "user": "bob", "fingerprint": "ab" * 32, "action": "release"}
#: Content types NuGet clients are served for users' files (unchanged by the headers work).
USER_FILE_TYPES = {".nupkg": "application/octet-stream", ".nuspec": "application/xml"}
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "nuseal" / "feed" / "http" / "templates"


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    f = start_feed(tmp_path_factory.mktemp("feed"))
    pushed = f.push(make_package(PACKAGE_ID, VERSION))
    assert pushed.status_code == 201, pushed.text
    yield f
    f.stop()


def app_routes(data_dir: Path) -> list[Route]:
    """The route table of the application `nuseal serve` runs (built here on a scratch folder)."""
    feed = build_feed(FeedConfig(data_dir=data_dir, base_url="http://127.0.0.1:1"))
    try:
        routes = feed.app().app.routes
    finally:
        feed.close()
    assert routes and all(isinstance(r, Route) for r in routes), routes
    return [r for r in routes if isinstance(r, Route)]


def test_every_route_of_the_app_answers_with_the_headers_of_its_class(feed: Feed, tmp_path: Path) -> None:
    classes: dict[tuple[str, str], str] = {}
    with feed.client(follow_redirects=False) as c:
        for route in app_routes(tmp_path / "scratch"):
            missing = set(route.param_convertors) - set(PATH_VALUES)
            assert not missing, f"{route.path}: no test value for the path parameters {missing}; add to PATH_VALUES"
            path = route.path.format(**{k: PATH_VALUES[k] for k in route.param_convertors})
            assert route.methods, route.path
            for method in sorted(route.methods | {"PATCH"}):  # PATCH: no route takes it (405)
                r = c.request(method, path, headers={"Content-Length": "0"} if method in ("POST", "PUT") else {})
                assert r.status_code < 500, (method, path, r.status_code, r.text)
                classes[(method, route.path)] = check_headers(r, user_file=False)
    # the pages are pages, the API answers are not
    for method, path in (("GET", "/packages"), ("GET", "/packages/{id}"), ("GET", "/account/login")):
        assert classes[(method, path)] == "page", (method, path)
    for method, path in (("GET", "/v3/search"), ("GET", "/api/v2/Packages()"), ("PUT", "/api/v2/package")):
        assert classes[(method, path)] == "document", (method, path)


def test_every_stored_file_and_service_index_resource_has_the_headers_of_its_class(feed: Feed) -> None:
    stored = feed.snapshot()
    user_files = [k for k in stored if not k.endswith(".json")]
    assert {Path(k).suffix for k in user_files} >= {".nupkg", ".nuspec"}, sorted(stored)
    with feed.client(follow_redirects=False) as c:
        for key in sorted(stored):
            for method in ("GET", "HEAD"):
                r = c.request(method, "/" + key)
                assert r.status_code == 200, (key, r.status_code)
                check_headers(r, user_file=key in user_files)
                if method == "GET":
                    assert r.content == stored[key], key
                suffix = Path(key).suffix
                if suffix in USER_FILE_TYPES:
                    assert r.headers["content-type"] == USER_FILE_TYPES[suffix], key
            # a revalidation (304) keeps the headers too
            again = c.get("/" + key, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304, key
            check_headers(again, user_file=key in user_files)
        # every resource of the service index that this feed hosts
        index = c.get("/v3/index.json").json()
        for resource in index["resources"]:
            url = httpx.URL(resource["@id"])
            if url.host != c.base_url.host or url.port != c.base_url.port:
                continue
            r = c.get(url.path)
            check_headers(r, user_file=False)
        # 404s, under /v3/ (the static layer) and elsewhere, and an unknown user's file
        for path in (
            "/v3/flatcontainer/no.such/1.0.0/no.such.1.0.0.nupkg",
            "/v3/no/such.json",
            "/no/such/page",
            "/packages/No.Such.Package",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            check_headers(r, user_file=path.endswith(".nupkg"))


def test_the_flat_container_files_are_attachments_named_after_the_file(feed: Feed) -> None:
    base = f"/v3/flatcontainer/{PACKAGE_ID.lower()}/{VERSION}"
    with feed.client() as c:
        for name in (f"{PACKAGE_ID.lower()}.{VERSION}.nupkg", f"{PACKAGE_ID.lower()}.nuspec"):
            r = c.get(f"{base}/{name}")
            assert r.status_code == 200
            check_download(r, name)


def test_download_filenames_are_reduced_to_safe_characters() -> None:
    assert download_filename("/v3/flatcontainer/a.b/1.0.0-rc.1/a.b.1.0.0-rc.1.nupkg") == "a.b.1.0.0-rc.1.nupkg"
    assert download_filename('/x/a"b;c\r\nd é.nuspec') == "a_b_c__d__.nuspec"
    assert download_filename("/x/..") == "download"
    assert download_filename("/x/") == "download"
    assert len(download_filename("/" + "a" * 1000)) == 200


def test_the_templates_have_no_inline_script_style_or_event_handler() -> None:
    """The pages' CSP forbids them; the browser test (test_origin_isolation_browser) shows no violation."""
    forbidden = re.compile(r"<script|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.IGNORECASE)
    templates = sorted(TEMPLATES.glob("*.html"))
    assert templates
    for template in templates:
        found = forbidden.findall(template.read_text())
        assert not found, (template.name, found)


@pytest.mark.oracle
def test_nuget_protocol_pushes_lists_and_downloads_through_the_headers(feed: Feed, tmp_path: Path) -> None:
    """Microsoft's NuGet.Protocol 6.14.3 (the oracle's ``client``, what ``dotnet`` restore and push run) is
    untroubled by the headers: it pushes, lists, reads the metadata and search of, and downloads byte for byte a
    package whose nuspec and ``.nupkg`` are now served as sandboxed attachments."""
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        _require(reason)

    def client(*args: str) -> dict[str, Any]:
        run = subprocess.run(
            ["bash", str(oracle.RUN_SCRIPT), "client", *args], capture_output=True, text=True, timeout=300, check=False
        )
        assert run.returncode == 0 and run.stdout.strip(), run.stderr[-2000:]
        doc: dict[str, Any] = json.loads(run.stdout)
        return doc

    package = tmp_path / "Oracle.Headers.1.0.0.nupkg"
    package.write_bytes(make_package("Oracle.Headers", "1.0.0", description="served as an attachment"))
    pushed = client("push", feed.source, str(package), "--api-key", feed.keys["alice"])
    assert pushed["pushed"] is True, pushed.get("dotnetOutput")
    assert client("versions", feed.source, "Oracle.Headers")["versions"] == ["1.0.0"]
    out = tmp_path / "out.nupkg"
    downloaded = client("download", feed.source, "Oracle.Headers", "1.0.0", str(out))
    assert downloaded["found"] is True and out.read_bytes() == package.read_bytes()
    assert client("metadata", feed.source, "Oracle.Headers")["count"] == 1
    found = client("search", feed.source, "Oracle.Headers")
    assert [r["id"] for r in found["results"]] == ["Oracle.Headers"]
    with feed.client() as c:  # and it was served as an attachment
        r = c.get("/v3/flatcontainer/oracle.headers/1.0.0/oracle.headers.1.0.0.nupkg")
        check_download(r, "oracle.headers.1.0.0.nupkg")
