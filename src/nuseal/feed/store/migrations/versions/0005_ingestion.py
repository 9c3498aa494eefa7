"""Ingestion checks and quarantine (issue 16): ingest_holds, ingest_stage_results, accepted_signers,
reserved_prefixes, cooldown_overrides; users.is_admin; packages.origin (``push`` or ``upstream``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_holds",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id_lower", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("version_lower", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("upstream_url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha512", sa.String(length=100), nullable=False),
        sa.Column("stored_key", sa.Text(), nullable=False),
        sa.Column("pushed_by", sa.Integer(), nullable=True),
        sa.Column("upstream_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["pushed_by"], ["users.pk"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id_lower", "version_lower", name="uq_ingest_holds_id_version"),
    )
    with op.batch_alter_table("ingest_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_holds_state"), ["state"], unique=False)

    op.create_table(
        "ingest_stage_results",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id_lower", sa.String(length=128), nullable=False),
        sa.Column("version_lower", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id_lower", "version_lower", "stage", name="uq_ingest_stage_results_stage"),
    )
    op.create_table(
        "accepted_signers",
        sa.Column("id_lower", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("accepted_by", sa.String(length=64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_lower", "fingerprint"),
    )
    op.create_table(
        "reserved_prefixes",
        sa.Column("prefix_lower", sa.String(length=128), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_pk"], ["users.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("prefix_lower", "user_pk"),
    )
    op.create_table(
        "cooldown_overrides",
        sa.Column("id_lower", sa.String(length=128), nullable=False),
        sa.Column("version_lower", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_lower", "version_lower"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=16), server_default=sa.text("'push'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_admin")
    op.drop_table("cooldown_overrides")
    op.drop_table("reserved_prefixes")
    op.drop_table("accepted_signers")
    op.drop_table("ingest_stage_results")
    with op.batch_alter_table("ingest_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_holds_state"))
    op.drop_table("ingest_holds")
