"""Concurrent pushes against a feed with two worker processes, on SQLite and on PostgreSQL.

200 pushes of distinct versions of one id and 50 pushes of one same version, all in flight together: every
distinct version must end up listed exactly once in every resource, and the same version accepted exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from .conftest import Feed, PgCluster, make_package, start_feed

DISTINCT = 200
SAME = 50
PACKAGE_ID = "Concurrent.Pkg"


async def _push_all(feed: Feed, bodies: list[bytes]) -> list[int]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=feed.base_url, timeout=300, limits=limits) as c:

        async def one(data: bytes) -> int:
            r = await c.put(
                "/api/v2/package",
                files={"package": ("p.nupkg", data, "application/octet-stream")},
                headers={"X-NuGet-ApiKey": feed.keys["alice"]},
            )
            return r.status_code

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def _check(feed: Feed) -> None:
    distinct = [make_package(PACKAGE_ID, f"1.0.{i}") for i in range(DISTINCT)]
    # the same version, with different bytes each time: only one may win
    same = [make_package(PACKAGE_ID, "2.0.0", description=f"candidate {i}") for i in range(SAME)]
    bodies = [b for pair in zip(distinct, same + [b""] * (DISTINCT - SAME), strict=True) for b in pair if b]
    statuses = asyncio.run(_push_all(feed, bodies))
    by_body = dict(zip(bodies, statuses, strict=True))
    assert [by_body[b] for b in distinct] == [201] * DISTINCT
    same_statuses = Counter(by_body[b] for b in same)
    assert same_statuses == {201: 1, 409: SAME - 1}
    winner = next(b for b in same if by_body[b] == 201)

    expected = sorted([f"1.0.{i}" for i in range(DISTINCT)] + ["2.0.0"], key=lambda v: tuple(map(int, v.split("."))))
    with feed.client() as c:
        flat = c.get(f"/v3/flatcontainer/{PACKAGE_ID.lower()}/index.json").json()["versions"]
        assert flat == expected
        for view in ("registration", "registration-semver2"):
            reg = c.get(f"/v3/{view}/{PACKAGE_ID.lower()}/index.json").json()
            seen = []
            for page in reg["items"]:
                items = page.get("items") or c.get(page["@id"]).json()["items"]
                seen += [i["catalogEntry"]["version"] for i in items]
            assert seen == expected, view
        hit = c.get("/v3/search", params={"q": f"packageid:{PACKAGE_ID}", "take": "1"}).json()["data"][0]
        assert [v["version"] for v in hit["versions"]] == expected
        assert c.get(f"/v3/flatcontainer/{PACKAGE_ID.lower()}/2.0.0/{PACKAGE_ID.lower()}.2.0.0.nupkg").content == winner
    assert not list((feed.data_dir / "staging").iterdir())


@pytest.mark.slow
def test_concurrent_pushes_sqlite(tmp_path: Path) -> None:
    feed = start_feed(tmp_path / "feed", workers=2)
    try:
        _check(feed)
    finally:
        feed.stop()


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_pushes_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    feed = start_feed(tmp_path / "feed", workers=2, database_url=pg_cluster.new_database())
    try:
        _check(feed)
    finally:
        feed.stop()
