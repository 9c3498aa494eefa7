"""Alembic migrations of the feed database (applied by :func:`nuseal.feed.store.database.migrate`)."""
