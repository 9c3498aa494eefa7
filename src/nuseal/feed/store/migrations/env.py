"""Alembic environment: runs on the connection :func:`nuseal.feed.store.database.migrate` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from nuseal.feed.store.models import Base

#: Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK_KEY = 0x6E7573656164


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("nuseal's migrations run through nuseal.feed.store.database.migrate()")
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
