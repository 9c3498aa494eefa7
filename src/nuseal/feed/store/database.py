"""Engines, sessions and schema migrations for the feed's metadata database.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE``, which takes SQLite's single writer lock up front: two workers publishing at once then
queue instead of failing with "database is locked" half-way through. PostgreSQL uses ordinary transactions
plus a row lock on the package id's ``registrations`` row (see :mod:`nuseal.feed.publish`).

Migrations are Alembic scripts shipped in ``nuseal/feed/store/migrations`` and applied by :func:`migrate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nuseal.errors import ConfigError

__all__ = ["Database", "migrate"]

#: How long a SQLite writer waits for the lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: PostgreSQL connection pool per process.
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 30


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The two session factories a feed process uses: ``read()`` and ``write()``.

    Raises (constructor):
        ConfigError: the URL is not a database URL SQLAlchemy understands, or its driver is missing.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite"):
                self.read_engine = _sqlite_engine(url, immediate=False)
                self.write_engine = _sqlite_engine(url, immediate=True)
            else:
                if url.startswith("postgresql://"):
                    url = "postgresql+psycopg://" + url[len("postgresql://") :]
                self.read_engine = create_engine(
                    url, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW, pool_pre_ping=True
                )
                self.write_engine = self.read_engine
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot use the database URL {url!r}: {exc}") from exc
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.write_engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on normal exit, rolled back on an exception."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the shipped Alembic scripts (idempotent).

    On PostgreSQL a transaction-scoped advisory lock keeps several starting feed processes from migrating
    at once; on SQLite the ``BEGIN IMMEDIATE`` writer lock does the same.

    Raises:
        ConfigError: the database cannot be reached or the migration fails.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("nuseal.feed.store") / "migrations"))
    try:
        with db.write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise ConfigError(f"cannot migrate the feed database {db.url!r}: {exc.orig}") from exc
