"""The feed's persistent state: database models, engine and Alembic migrations, package file storage, the
audit log, and the crash points the crash-consistency tests arm."""
