"""Schema: the Alembic migrations produce exactly the models' schema, on SQLite and PostgreSQL; the feed works
the same on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from nuseal.feed.store.database import Database, migrate
from nuseal.feed.store.models import Base

from .conftest import PgCluster, make_package, start_feed


def _assert_schema_matches(url: str) -> None:
    db = Database(url)
    try:
        migrate(db)
        migrate(db)  # idempotent
        with db.write_engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert {
            "users",
            "api_keys",
            "registrations",
            "owners",
            "packages",
            "feed_settings",
            "alembic_version",
        } <= tables
    finally:
        db.dispose()


def test_migrations_match_models_sqlite(tmp_path: Path) -> None:
    _assert_schema_matches(f"sqlite:///{tmp_path / 'feed.db'}")


@pytest.mark.postgres
def test_migrations_match_models_postgres(pg_cluster: PgCluster) -> None:
    _assert_schema_matches(pg_cluster.new_database())


@pytest.mark.postgres
def test_feed_on_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    feed = start_feed(tmp_path / "feed", database_url=pg_cluster.new_database())
    try:
        assert not (tmp_path / "feed" / "feed.db").exists()  # metadata really is in PostgreSQL
        data = make_package("Pg.Pkg", "1.0.0")
        assert feed.push(data).status_code == 201
        assert feed.push(data).status_code == 409
        assert feed.push(make_package("Pg.Pkg", "1.1.0"), key="bob").status_code == 403
        assert feed.push(b"not a zip").status_code == 400
        with feed.client() as c:
            assert c.get("/v3/flatcontainer/pg.pkg/index.json").json() == {"versions": ["1.0.0"]}
            assert c.get("/v3/flatcontainer/pg.pkg/1.0.0/pg.pkg.1.0.0.nupkg").content == data
            assert c.get("/v3/search", params={"q": "pg"}).json()["data"][0]["owners"] == ["alice"]
            assert (
                c.delete("/api/v2/package/Pg.Pkg/1.0.0", headers={"X-NuGet-ApiKey": feed.keys["alice"]}).status_code
                == 204
            )
            assert c.get("/v3/search", params={"q": "pg"}).json()["totalHits"] == 0
            assert c.get("/packages/Pg.Pkg").status_code == 200
    finally:
        feed.stop()


def test_restart_on_another_url_rewrites_documents(tmp_path: Path) -> None:
    data = make_package("Moved.Pkg", "1.0.0")
    first = start_feed(tmp_path / "feed")
    try:
        assert first.push(data).status_code == 201
        keys = first.keys
    finally:
        first.stop()
    second = start_feed(tmp_path / "feed", users=())  # same data, new port: a new base URL
    second.keys = keys
    try:
        assert second.base_url != first.base_url
        with second.client() as c:
            reg = c.get("/v3/registration-semver2/moved.pkg/index.json").json()
            content = reg["items"][0]["items"][0]["packageContent"]
            assert content.startswith(second.base_url + "/")
            assert c.get(content).content == data
            index = c.get("/v3/index.json").json()
            assert all(r["@id"].startswith(second.base_url) for r in index["resources"])
        assert second.push(make_package("Moved.Pkg", "1.1.0")).status_code == 201  # keys survive restarts
    finally:
        second.stop()
