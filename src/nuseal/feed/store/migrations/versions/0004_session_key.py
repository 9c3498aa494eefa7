"""Key scopes (issue 11): web_sessions.api_key_pk, the API key a web session signed in with.

A session ends when that key is revoked, expires or is deleted. The table is recreated: sessions signed in
before this revision do not know their key, so they end (their users sign in again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _create(with_key: bool) -> None:
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
    ]
    if with_key:
        columns.append(sa.Column("api_key_pk", sa.Integer(), nullable=False))
    columns += [
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_pk"], ["users.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    ]
    if with_key:
        columns.append(sa.ForeignKeyConstraint(["api_key_pk"], ["api_keys.pk"], ondelete="CASCADE"))
    op.create_table("web_sessions", *columns)
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_pk"), ["user_pk"], unique=False)
        if with_key:
            batch_op.create_index(batch_op.f("ix_web_sessions_api_key_pk"), ["api_key_pk"], unique=False)


def upgrade() -> None:
    op.drop_table("web_sessions")
    _create(with_key=True)


def downgrade() -> None:
    op.drop_table("web_sessions")
    _create(with_key=False)
