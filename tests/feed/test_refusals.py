"""Bad input gets a clear 4xx and leaves the feed exactly as it was (files and database).

Each case compares a snapshot of the storage folder and the search index before and after. NuGet has NU codes
only for signature-entry problems (NU3005); those cases assert the code, the others the status and message.
"""

from __future__ import annotations

import io
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from nuseal.package import append_signature

from .conftest import Feed, make_package, nuspec_xml
from .inprocess import start_inprocess_feed

CAP = 200_000


@pytest.fixture
def feed(inprocess_feed: Feed) -> Feed:
    """In-process (the composition root's app through an ASGI client): the refusals need no real server."""
    return inprocess_feed


@pytest.fixture(scope="module")
def small_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    f = start_inprocess_feed(tmp_path_factory.mktemp("feed"), max_package_size=CAP, users=("alice", "bob", "carol"))
    # one package owned by bob, so others' pushes to it can be refused
    assert f.push(make_package("Bobs.Package", "1.0.0"), key="bob").status_code == 201
    yield f
    f.stop()


def _state(feed: Feed) -> tuple[dict[str, bytes], dict, list[str]]:
    with feed.client() as c:
        search = c.get("/v3/search", params={"q": "", "prerelease": "true", "semVerLevel": "2.0.0", "take": "1000"})
    staging = sorted(p.name for p in (feed.data_dir / "staging").iterdir())
    # storage and search say everything about visibility; staging must not keep uploads around
    snap = {k: v for k, v in feed.snapshot().items() if k != "v3/index.json"}
    return snap, search.json(), staging


def _no_zip() -> bytes:
    return b"this is not a zip file at all" * 10


def _zip_without_nuspec() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lib/net45/a.dll", b"x")
    return buf.getvalue()


def _two_nuspecs() -> bytes:
    return make_package("Two.Nuspecs", "1.0.0", files={"Other.nuspec": nuspec_xml("Other", "1.0.0")})


def _bad_id() -> bytes:
    return make_package("Bad..Id", "1.0.0", nuspec=nuspec_xml("Bad..Id", "1.0.0"))


def _bad_version() -> bytes:
    return make_package("Bad.Version", "1.0.0", nuspec=nuspec_xml("Bad.Version", "1.0.0.0.0"))


def _no_description() -> bytes:
    raw = nuspec_xml("No.Description", "1.0.0").replace(b"<description>A test package</description>", b"")
    return make_package("No.Description", "1.0.0", nuspec=raw)


def _entity_expansion() -> bytes:
    raw = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa">]><package><metadata><id>Xml.Bomb</id>'
        b"<version>1.0.0</version><authors>&a;</authors><description>d</description></metadata></package>"
    )
    return make_package("Xml.Bomb", "1.0.0", nuspec=raw)


def _path_traversal() -> bytes:
    return make_package("Traversal.Pkg", "1.0.0", files={"../../evil.txt": b"x"})


def _zip64() -> bytes:
    """A small package whose entries carry ZIP64 extra fields (zipfile's ``force_zip64``)."""
    buf = io.BytesIO(make_package("Zip64.Pkg", "1.0.0"))
    with zipfile.ZipFile(buf, "a") as z, z.open("content/big.bin", "w", force_zip64=True) as f:
        f.write(b"x" * 100)
    return buf.getvalue()


def _oversize() -> bytes:
    return make_package("Too.Big", "1.0.0", payload_size=CAP + 1)


BAD_PACKAGES: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "not a zip": (_no_zip, 400, "not a valid package"),
    "zip without nuspec": (_zip_without_nuspec, 400, "no .nuspec"),
    "two nuspecs": (_two_nuspecs, 400, "several .nuspec"),
    "bad id": (_bad_id, 400, "is not valid"),
    "bad version": (_bad_version, 400, "1 to 4 dot-separated numbers"),
    "no description": (_no_description, 400, "no <description>"),
    "xml entities": (_entity_expansion, 400, "not valid XML"),
    "path traversal entry": (_path_traversal, 400, "unsafe"),
    "zip64": (_zip64, 400, "ZIP64 archive"),
    "oversize": (_oversize, 413, "limit"),
}


@pytest.mark.parametrize("case", list(BAD_PACKAGES))
def test_bad_package_is_refused_and_feed_unchanged(small_feed: Feed, case: str) -> None:
    build, status, message = BAD_PACKAGES[case]
    before = _state(small_feed)
    r = small_feed.push(build(), key="alice")
    assert r.status_code == status, r.text
    assert message in r.text
    assert message in r.headers["x-nuget-warning"]
    assert _state(small_feed) == before


def test_declared_oversize_body_is_refused_before_reading(small_feed: Feed) -> None:
    before = _state(small_feed)
    with small_feed.client() as c:
        r = c.put(
            "/api/v2/package",
            content=b"x" * (CAP * 2),
            headers={"X-NuGet-ApiKey": small_feed.keys["alice"], "Content-Type": "application/octet-stream"},
        )
    assert r.status_code == 413
    assert _state(small_feed) == before


def test_bad_signature_entry_reports_nu3005(small_feed: Feed) -> None:
    unsigned = make_package("Bad.Signature", "1.0.0")
    signed = bytearray(append_signature(unsigned, b"not a CMS signature", when=datetime(2024, 1, 1, tzinfo=UTC)))
    # non-zero external attributes on the signature's central directory record (NU3005, NUGET-SIGNING.md §1.2)
    cd = signed.rfind(b"PK\x01\x02")
    signed[cd + 38] = 0x20
    before = _state(small_feed)
    r = small_feed.push(bytes(signed))
    assert r.status_code == 400
    assert "NU3005" in r.text
    assert _state(small_feed) == before


def test_multipart_without_file_part(small_feed: Feed) -> None:
    before = _state(small_feed)
    with small_feed.client() as c:
        r = c.put(
            "/api/v2/package",
            headers={
                "X-NuGet-ApiKey": small_feed.keys["alice"],
                "Content-Type": "multipart/form-data; boundary=xyz",
            },
            content=b'--xyz\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n--xyz--\r\n',
        )
    assert r.status_code == 400
    assert "no package part" in r.text
    assert _state(small_feed) == before


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (None, 401, "API key is required"),
        ("nsk_not-a-real-key", 403, "invalid"),
        ("something-else", 403, "invalid"),
    ],
)
def test_missing_or_unknown_key(small_feed: Feed, key: str | None, status: int, message: str) -> None:
    before = _state(small_feed)
    r = small_feed.push(make_package("Keyless.Pkg", "1.0.0"), key=key)
    assert r.status_code == status
    assert message in r.text
    assert _state(small_feed) == before


def test_other_owners_id_is_refused(small_feed: Feed) -> None:
    before = _state(small_feed)
    r = small_feed.push(make_package("Bobs.Package", "2.0.0"), key="alice")
    assert r.status_code == 403
    assert "other owners" in r.text
    # case does not help
    assert small_feed.push(make_package("BOBS.PACKAGE", "2.0.0"), key="alice").status_code == 403
    assert _state(small_feed) == before


def test_duplicate_is_409_and_unchanged(small_feed: Feed) -> None:
    before = _state(small_feed)
    r = small_feed.push(make_package("Bobs.Package", "1.0.0"), key="bob")
    assert r.status_code == 409
    assert "already exists" in r.text
    assert _state(small_feed) == before


def _set_key_expiry(feed: Feed, user: str, when: str) -> None:
    with sqlite3.connect(feed.data_dir / "feed.db") as db:
        db.execute(
            "UPDATE api_keys SET expires_at = ? WHERE user_pk = (SELECT pk FROM users WHERE name = ?)", (when, user)
        )


def test_expired_and_revoked_keys(feed: Feed) -> None:
    key = feed.admin("create-api-key", "alice", "--expires-in-days", "1")
    assert feed.push(make_package("Expiring.Pkg", "1.0.0"), key=key).status_code == 201
    # move the expiry into the past (what a day passing does)
    with sqlite3.connect(feed.data_dir / "feed.db") as db:
        db.execute("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00.000000' WHERE expires_at IS NOT NULL")
    before = _state(feed)
    r = feed.push(make_package("Expiring.Pkg", "1.0.1"), key=key)
    assert r.status_code == 403
    assert "expired" in r.text
    assert _state(feed) == before
    feed.admin("revoke-api-key", feed.keys["bob"][:10])
    r = feed.push(make_package("Revoked.Pkg", "1.0.0"), key="bob")
    assert r.status_code == 403
    assert _state(feed) == before


def test_scopes_and_globs(feed: Feed) -> None:
    versions_only = feed.admin("create-api-key", "alice", "--scope", "push-version")
    contoso_only = feed.admin("create-api-key", "alice", "--glob", "Contoso.*")
    push_only = feed.admin("create-api-key", "alice", "--scope", "push-new")

    r = feed.push(make_package("Brand.New.Id", "1.0.0"), key=versions_only)
    assert r.status_code == 403 and "push new package ids" in r.text
    assert feed.push(make_package("Brand.New.Id", "1.0.0"), key="alice").status_code == 201
    assert feed.push(make_package("Brand.New.Id", "1.1.0"), key=versions_only).status_code == 201

    r = feed.push(make_package("Fabrikam.Lib", "1.0.0"), key=contoso_only)
    assert r.status_code == 403 and "does not cover" in r.text
    assert feed.push(make_package("contoso.lib", "1.0.0"), key=contoso_only).status_code == 201

    with feed.client() as c:
        r = c.delete("/api/v2/package/Brand.New.Id/1.0.0", headers={"X-NuGet-ApiKey": push_only})
        assert r.status_code == 403 and "unlist" in r.text
        assert (
            c.delete("/api/v2/package/Brand.New.Id/1.0.0", headers={"X-NuGet-ApiKey": feed.keys["alice"]}).status_code
            == 204
        )


def test_add_owner_lets_another_user_push(feed: Feed) -> None:
    assert feed.push(make_package("Shared.Pkg", "1.0.0"), key="alice").status_code == 201
    assert feed.push(make_package("Shared.Pkg", "1.1.0"), key="bob").status_code == 403
    feed.admin("add-owner", "shared.pkg", "bob")
    assert feed.push(make_package("Shared.Pkg", "1.1.0"), key="bob").status_code == 201
    with feed.client() as c:
        assert c.get("/v3/search", params={"q": "shared.pkg"}).json()["data"][0]["owners"] == ["alice", "bob"]


def test_failed_publish_leaves_nothing_behind(feed: Feed) -> None:
    """A real fault before the commit: a file where the push's pending entry must be written (docs/feed.md, Crash
    consistency). The package row is rolled back and nothing is stored; the next push of the same version succeeds."""
    assert feed.push(make_package("Fault.Pkg", "1.0.0")).status_code == 201
    before = _state(feed)
    blocker = feed.data_dir / "pending" / "fault.pkg"
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("blocks the pending entry")
    r = feed.push(make_package("Fault.Pkg", "1.1.0"))
    assert r.status_code == 500
    blocker.unlink()
    after = _state(feed)
    assert after == before  # storage, search, staging
    assert feed.push(make_package("Fault.Pkg", "1.1.0")).status_code == 201


def test_a_storage_fault_after_the_commit_is_finished_by_the_next_push(feed: Feed) -> None:
    """A real fault after the commit: a folder where the registration index must be written. The push answers 500
    but its version is committed: what is served is a subset of what was committed (never more), and the next push
    of the id, once the fault is gone, publishes the version fully; pushing it again is a duplicate."""
    assert feed.push(make_package("Fault.Late", "1.0.0")).status_code == 201
    blocker = feed.data_dir / "storage/v3/registration-semver2/fault.late/index.json"
    saved = blocker.read_bytes()
    blocker.unlink()
    blocker.mkdir()
    (blocker / "x").write_text("blocks the rename")
    assert feed.push(make_package("Fault.Late", "1.1.0")).status_code == 500
    (blocker / "x").unlink()
    blocker.rmdir()
    blocker.write_bytes(saved)
    with feed.client() as c:
        hit = c.get("/v3/search", params={"q": "fault.late"}).json()["data"][0]
        assert [v["version"] for v in hit["versions"]] == ["1.0.0", "1.1.0"]
    assert feed.push(make_package("Fault.Late", "1.1.0")).status_code == 409
    assert feed.push(make_package("Fault.Late", "1.2.0")).status_code == 201
    with feed.client() as c:
        reg = c.get("/v3/registration-semver2/fault.late/index.json").json()
        assert [i["catalogEntry"]["version"] for p in reg["items"] for i in p["items"]] == ["1.0.0", "1.1.0", "1.2.0"]
        assert c.get("/v3/flatcontainer/fault.late/1.1.0/fault.late.1.1.0.nupkg").status_code == 200
    assert not list((feed.data_dir / "pending").iterdir())


def test_owners_add_owners_over_http(feed: Feed) -> None:
    assert feed.push(make_package("Team.Pkg", "1.0.0"), key="alice").status_code == 201
    with feed.client() as c:
        alice = {"X-NuGet-ApiKey": feed.keys["alice"]}
        bob = {"X-NuGet-ApiKey": feed.keys["bob"]}
        r = c.put("/api/owners/Team.Pkg/bob", headers=bob)
        assert r.status_code == 403 and "only an owner" in r.text
        assert c.put("/api/owners/Team.Pkg/nobody", headers=alice).status_code == 404
        r = c.put("/api/owners/team.pkg/bob", headers=alice)
        assert r.status_code == 200 and r.json()["owners"] == ["alice", "bob"]
        assert feed.push(make_package("Team.Pkg", "1.1.0"), key="bob").status_code == 201
        assert c.delete("/api/owners/Team.Pkg/alice", headers=bob).json()["owners"] == ["bob"]
        r = c.delete("/api/owners/Team.Pkg/bob", headers=bob)
        assert r.status_code == 400 and "last owner" in r.text
    assert feed.push(make_package("Team.Pkg", "1.2.0"), key="alice").status_code == 403
