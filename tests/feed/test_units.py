"""Pure parts of the feed: document shapes, globs, key handling, scopes, download counting."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from nuseal.errors import UsageError
from nuseal.feed.accounts.keys import (
    API_KEY_PREFIX,
    Principal,
    Scope,
    authenticate,
    create_api_key,
    create_user,
    glob_matches,
    hash_api_key,
)
from nuseal.feed.config import FeedConfig
from nuseal.feed.errors import AuthenticationError, BadPackageError, ForbiddenError
from nuseal.feed.protocol import documents as docs
from nuseal.feed.protocol.static import CACHE_IMMUTABLE, CACHE_REVALIDATE, StaticDocuments
from nuseal.feed.publish.pipeline import default_pipeline
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.submission import StageContext, Submission
from nuseal.feed.publish.upload import StagedUpload
from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.storage import LocalStorage
from nuseal.package import NuGetVersion

from .conftest import Feed, make_package

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rec(version: str, *, listed: bool = True) -> docs.PackageRecord:
    return docs.PackageRecord(id="My.Pkg", version=NuGetVersion.parse(version), listed=listed, published=T0)


def test_flat_index_sorts_by_nuget_order() -> None:
    recs = [_rec(v) for v in ("1.0.10", "1.0.2", "1.0.2-beta", "1.0.2-Alpha.10", "1.0.2-alpha.9")]
    assert docs.flat_index(recs) == {"versions": ["1.0.2-alpha.9", "1.0.2-alpha.10", "1.0.2-beta", "1.0.2", "1.0.10"]}


def test_registration_views_split_semver2() -> None:
    urls = docs.Urls("http://feed.example:8080/")
    out = docs.registration_documents(
        urls, [_rec("1.0.0"), _rec("2.0.0+meta"), _rec("3.0.0-rc.1", listed=False)], commit_id="c", commit_time=T0
    )
    semver1 = json.loads(out["v3/registration/my.pkg/index.json"])
    semver2 = json.loads(out["v3/registration-semver2/my.pkg/index.json"])
    assert [i["catalogEntry"]["version"] for i in semver1["items"][0]["items"]] == ["1.0.0"]
    entries = [i["catalogEntry"] for i in semver2["items"][0]["items"]]
    assert [e["version"] for e in entries] == ["1.0.0", "2.0.0+meta", "3.0.0-rc.1"]
    assert [e["listed"] for e in entries] == [True, True, False]
    assert entries[2]["published"].startswith("1900-01-01")
    assert entries[0]["packageContent"] == "http://feed.example:8080/v3/flatcontainer/my.pkg/1.0.0/my.pkg.1.0.0.nupkg"
    assert set(out) >= {"v3/registration-semver2/my.pkg/2.0.0.json", "v3/registration/my.pkg/1.0.0.json"}
    assert "v3/registration/my.pkg/2.0.0.json" not in out


def test_service_index_versioned_registration_has_client_version() -> None:
    index = docs.service_index(docs.Urls("http://x"))
    versioned = [r for r in index["resources"] if r["@type"] == "RegistrationsBaseUrl/Versioned"]
    assert len(versioned) == 1 and versioned[0]["clientVersion"] == "4.3.0-alpha"


@pytest.mark.parametrize(
    ("glob", "pid", "ok"),
    [
        ("*", "Anything.At.All", True),
        ("Contoso.*", "contoso.lib", True),
        ("Contoso.*", "Contoso", False),
        ("contoso.lib", "Contoso.Lib", True),
        ("*.Tests", "My.Tests", True),
        ("My.?", "My.X", False),  # only * is special
        ("a*b*c", "a1b2c", True),
    ],
)
def test_glob_matching(glob: str, pid: str, ok: bool) -> None:
    assert glob_matches(glob, pid) is ok


def test_scope_rules() -> None:
    p = Principal(1, "alice", 1, frozenset({Scope.PUSH_VERSION}), ("Contoso.*",))
    p.require("Contoso.Lib", new_id=False)
    with pytest.raises(ForbiddenError, match="push new package ids"):
        p.require("Contoso.Lib", new_id=True)
    with pytest.raises(ForbiddenError, match="does not cover"):
        p.require("Fabrikam.Lib", new_id=False)
    with pytest.raises(ForbiddenError, match="unlist"):
        p.require("Contoso.Lib", new_id=False, action="unlist")


def test_keys_are_stored_as_hashes_and_expire(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    migrate(db)
    with db.write() as s:
        create_user(s, "alice", now=T0)
        created = create_api_key(s, "alice", now=T0, expires_in_days=2, globs=("A.*",))
    assert created.key.startswith(API_KEY_PREFIX)
    raw = sqlite3.connect(tmp_path / "f.db").execute("SELECT key_hash FROM api_keys").fetchall()
    assert raw == [(hash_api_key(created.key),)]
    assert created.key not in str(raw)
    with db.read() as s:
        principal = authenticate(s, created.key, now=T0 + timedelta(days=1))
        assert principal.globs == ("A.*",)
        with pytest.raises(AuthenticationError, match="expired"):
            authenticate(s, created.key, now=T0 + timedelta(days=2))
        with pytest.raises(AuthenticationError) as missing:
            authenticate(s, None, now=T0)
        assert missing.value.status == 401
    with db.write() as s, pytest.raises(UsageError, match="already exists"):
        create_user(s, "alice", now=T0)
    with db.write() as s, pytest.raises(UsageError, match="invalid package id glob"):
        create_api_key(s, "alice", now=T0, globs=("a/b",))
    db.dispose()


def test_storage_keys_cannot_escape(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    for bad in ("../x", "a/../../x", "/abs", "a//b", "a\\b", ""):
        with pytest.raises(UsageError):
            st.put_bytes(bad, b"x")
    st.put_bytes("a/b/c.json", b"1")
    assert st.read_bytes("a/b/c.json") == b"1"
    st.delete("a/b/c.json")
    assert not (tmp_path / "a").exists()  # empty folders pruned


def test_storage_reads_describe_the_version_they_read(tmp_path: Path) -> None:
    """``open`` streams the bytes of one stored version with its own ``info``; a replacement gets a new version
    and ETag while a reader that opened the old one still reads the old bytes; missing keys and folders are None."""
    st = LocalStorage(tmp_path)
    old = bytes(range(256)) * 3000  # 768000 bytes: several chunks
    st.put_bytes("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg", old)
    info = st.stat("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg")
    assert info is not None and info.size == len(old)
    reader = st.open("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg")
    assert reader is not None and reader.info == info
    first = reader.read(10)
    st.put_bytes("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg", b"new bytes")
    with reader:
        assert first + b"".join(reader.chunks(100_000)) == old
    now = st.stat("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg")
    assert now is not None and now.size == 9 and now.version != info.version and now.etag != info.etag
    assert st.version("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg") == now.version
    assert st.read_bytes("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg") == b"new bytes"
    for absent in ("v3/flatcontainer/a/1.0.0/b.nupkg", "v3/flatcontainer/a"):
        assert st.open(absent) is None and st.stat(absent) is None and st.read_bytes(absent) is None
        assert st.version(absent) is None
        assert not st.exists(absent)
    assert st.list_keys("v3/flatcontainer/") == ["v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg"]


def test_static_documents_are_served_from_the_storage(tmp_path: Path) -> None:
    """The /v3/ read side reads through Storage: the storage's ETag, 304 on If-None-Match, a large value streamed
    whole, a replaced document served new at once, HEAD without a body, and temporaries never served."""
    st = LocalStorage(tmp_path)
    big = bytes(range(256)) * 4096  # over the inline limit: streamed from a thread
    st.put_bytes("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg", big)
    st.put_bytes("v3/flatcontainer/a/index.json", b'{"versions": ["1.0.0"]}')
    downloads: list[tuple[str, str]] = []
    app = StaticDocuments(st, lambda i, v: downloads.append((i, v)))

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://feed.test") as c:
            r = await c.get("/v3/flatcontainer/A/1.0.0/a.1.0.0.nupkg")
            info = st.stat("v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg")
            assert info is not None
            assert r.status_code == 200 and r.content == big
            assert r.headers["etag"] == f'"{info.etag}"' and r.headers["cache-control"] == CACHE_IMMUTABLE
            r = await c.get("/v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg", headers={"If-None-Match": f'"{info.etag}"'})
            assert r.status_code == 304 and r.content == b""
            r = await c.head("/v3/flatcontainer/a/index.json")
            assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "23"
            first = (await c.get("/v3/flatcontainer/a/index.json")).headers["etag"]
            st.put_bytes("v3/flatcontainer/a/index.json", b'{"versions": ["1.0.0", "2.0.0"]}')
            r = await c.get("/v3/flatcontainer/a/index.json")
            assert r.json() == {"versions": ["1.0.0", "2.0.0"]} and r.headers["etag"] != first
            assert r.headers["cache-control"] == CACHE_REVALIDATE
            (tmp_path / "v3/flatcontainer/a/.index.json.0.tmp").write_bytes(b"torn")
            assert (await c.get("/v3/flatcontainer/a/.index.json.0.tmp")).status_code == 404
            assert (await c.get("/v3/flatcontainer/a/2.0.0/a.2.0.0.nupkg")).status_code == 404

    asyncio.run(run())
    assert downloads == [("a", "1.0.0")]  # one 200 GET of a .nupkg; the 304 is not a download


def test_downloads_are_counted(inprocess_feed: Feed) -> None:
    feed = inprocess_feed  # in-process: stop() ends the app's lifespan, which flushes the counts as a server does
    assert feed.push(make_package("Counted.Pkg", "1.0.0")).status_code == 201
    with feed.client() as c:
        for _ in range(3):
            assert c.get("/v3/flatcontainer/counted.pkg/1.0.0/counted.pkg.1.0.0.nupkg").status_code == 200
        assert c.get("/v3/flatcontainer/counted.pkg/1.0.0/counted.pkg.nuspec").status_code == 200  # not a download
    feed.stop()  # shutdown flushes the buffered counts
    with sqlite3.connect(feed.data_dir / "feed.db") as db:
        assert db.execute("SELECT downloads FROM packages WHERE id_lower = 'counted.pkg'").fetchall() == [(3,)]


def test_extra_stages_run_before_publish(tmp_path: Path) -> None:
    """Issue 5 adds signature checks and repository signing as stages; this is that hook, in-process."""

    service = FeedService.open(FeedConfig(data_dir=tmp_path, base_url="http://127.0.0.1:1"), clock=lambda: T0)
    service.setup()
    with service.db.write() as s:
        create_user(s, "alice", now=T0)
        key = create_api_key(s, "alice", now=T0).key
    with service.db.read() as s:
        principal = authenticate(s, key, now=T0)
    calls: list[str] = []

    def refuse_tagged(sub: Submission, ctx: StageContext, /) -> None:
        calls.append(sub.require_nuspec().id)
        if "blocked" in sub.require_nuspec().tags:
            raise BadPackageError("tagged blocked")

    def rewrite(sub: Submission, ctx: StageContext, /) -> None:
        # what repository signing does: new bytes in a new staging file
        new = ctx.config.staging_dir / "rewritten.nupkg"
        new.write_bytes(
            make_package(sub.require_nuspec().id, str(sub.require_nuspec().version), files={"repo-signed.txt": b"x"})
        )
        sub.replace_package(new)

    pipeline = default_pipeline(service).with_stages(refuse_tagged, rewrite)

    def submit(data: bytes) -> Submission:
        path = service.config.staging_dir / f"up-{len(calls)}.nupkg"
        path.write_bytes(data)
        return Submission(StagedUpload(path, len(data), ""), principal, T0)

    with pytest.raises(BadPackageError, match="tagged blocked"):
        pipeline.run(submit(make_package("Staged.Pkg", "1.0.0", extra_metadata="    <tags>blocked</tags>\n")))
    assert not (tmp_path / "storage/v3/flatcontainer/staged.pkg").exists()
    published = pipeline.run(submit(make_package("Staged.Pkg", "1.0.0")))
    assert calls == ["Staged.Pkg", "Staged.Pkg"]
    stored = (tmp_path / "storage/v3/flatcontainer/staged.pkg/1.0.0/staged.pkg.1.0.0.nupkg").read_bytes()
    assert b"repo-signed.txt" in stored  # the rewritten bytes were published
    assert published.size == len(stored)
    assert list(service.config.staging_dir.iterdir()) == []
    service.db.dispose()


@pytest.mark.parametrize(
    ("level", "semver2"),
    [("2.0.0", True), ("2", True), ("1.0.0", False), ("", False), ("two", False), ("2.0.0-", False)],
)
def test_search_semver_level_is_read_as_a_version(level: str, semver2: bool) -> None:
    """``semVerLevel`` that is not a version (PackageFormatError) means SemVer 1.0.0; nothing else is swallowed."""
    from nuseal.feed.protocol.search import parse_search_query  # noqa: PLC0415

    assert parse_search_query({"semVerLevel": level}).semver2 is semver2
